"""Each component's own small config, made from the run's flat Config: the one place where the user's single
surface (deepq.Config, the CLI's fields) meets the core's pieces, which never see it (deepq/core imports nothing of
deepq.config: tests/test_architecture.py).

    network_config(cfg, arch)   -> core.networks.NetworkConfig   (arch: the env kind's resolution of cfg.arch)
    learner_config(cfg)         -> core.learner_config.LearnerConfig
    epsilon_schedule(cfg)       -> core.explore.EpsilonSchedule
    mcts_config(cfg, seed)      -> core.mcts.MCTSConfig           (training targets and search at play share it)
"""

from __future__ import annotations

from deepq.config import Config
from deepq.core.explore import EpsilonSchedule
from deepq.core.learner_config import LearnerConfig
from deepq.core.mcts import MCTSConfig
from deepq.core.networks import NetworkConfig


def network_config(cfg: Config, arch: str) -> NetworkConfig:
    """The network cfg describes, with `arch` already resolved from 'auto' (EnvKind.arch; networks.resolve_arch)."""
    return NetworkConfig(arch=arch, hidden_sizes=tuple(cfg.hidden_sizes), layer_norm=cfg.layer_norm,
                         dueling=cfg.dueling, noisy=cfg.noisy, noisy_sigma=cfg.noisy_sigma, atoms=cfg.atoms,
                         v_min=cfg.v_min, v_max=cfg.v_max, factory=cfg.network)


def learner_config(cfg: Config) -> LearnerConfig:
    return LearnerConfig(target=cfg.target, optimizer=cfg.optimizer, lr=cfg.lr, loss=cfg.loss, double=cfg.double,
                         tau=cfg.tau, max_grad_norm=cfg.max_grad_norm, weighted=cfg.prioritized, fast=cfg.fused)


def epsilon_schedule(cfg: Config) -> EpsilonSchedule:
    return EpsilonSchedule(cfg.eps_schedule, cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps)


def mcts_config(cfg: Config, seed: int) -> MCTSConfig:
    """The search a run's mcts_* settings describe (training targets and search-augmented play share it)."""
    return MCTSConfig(simulations=cfg.mcts_simulations, c_puct=cfg.mcts_c_puct, gamma=cfg.gamma, leaf=cfg.mcts_leaf,
                      batch=cfg.mcts_batch, seed=seed)
