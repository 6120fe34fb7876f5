"""target="mcts": Q values estimated by tree search, the seed's alternative to a target network.

    repeat:
        play `mcts_episodes` episodes; at every state s, search from s with the Q-network guiding
            (deepq/mcts.py), record (s, Q_mcts(s, ·)) for the actions the search tried, and play its
            most visited action (a uniformly random legal one with probability ε)
        after the episodes end: gradient steps on mean over searched (s, a) of (Q(s, a) − Q_mcts(s, a))²,
            minibatches drawn from a replay of such pairs
        (an action the search never tried gets no target: no value is invented for it)

The targets come from search, not from a copy of the network, so there is no target network.
Games (OpenSpiel, PettingZoo) and single-agent envs that can be cloned (deepq/search_envs.py) work.
Checkpoints are written between rounds, when no episode is in progress, so resuming needs no env state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepq.agent import Agent, atomic_save, safe_load, set_cpu_threads
from deepq.config import Config
from deepq.errors import ConfigError
from deepq.explore import EpsilonSchedule, random_legal
from deepq.games.adapters import is_game, make_game
from deepq.mcts import MCTS, MCTSConfig
from deepq.progress import Progress
from deepq.runlog import RunLog, new_run_dir, plot_learning_curve, write_config

CHECKPOINT_FORMAT = "deepq-checkpoint"


class TargetMemory:
    """Circular store of (s, Q_mcts(s, ·), which actions were searched); the oldest go first."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], n_actions: int) -> None:
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.targets = np.zeros((capacity, n_actions), np.float32)  # 0 where not searched (masked out)
        self.searched = np.zeros((capacity, n_actions), bool)

    def add(self, obs: np.ndarray, q: np.ndarray) -> None:
        """One searched state; q (A,) is NaN for the actions the search never tried."""
        i = self.pos
        self.obs[i], self.searched[i] = obs, ~np.isnan(q)
        self.targets[i] = np.nan_to_num(q, nan=0.0)
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch_size)
        return tuple(torch.from_numpy(a[idx]) for a in (self.obs, self.targets, self.searched))

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"pos": self.pos, "size": n, "obs": torch.from_numpy(self.obs[:n].copy()),
                "targets": torch.from_numpy(self.targets[:n].copy()),
                "searched": torch.from_numpy(self.searched[:n].copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        self.obs[:n], self.targets[:n] = state["obs"].numpy(), state["targets"].numpy()
        self.searched[:n] = state["searched"].numpy()
        self.pos, self.size = state["pos"], n


def search_config(cfg: Config, seed: int) -> MCTSConfig:
    return MCTSConfig(simulations=cfg.mcts_simulations, c_puct=cfg.mcts_c_puct, gamma=cfg.gamma,
                      leaf=cfg.mcts_leaf, batch=cfg.mcts_batch, seed=seed)


def make_searchable(cfg: Config) -> Any:
    """A fresh searchable env for cfg.env (games, or a clonable single-agent env)."""
    if is_game(cfg.env):
        return make_game(cfg.env)
    if not isinstance(cfg.env, str):
        raise ConfigError("target='mcts' needs an env id it can clone (a game, classic control or ALE), "
                          "not an env factory")
    from deepq.search_envs import make_search_env

    return make_search_env(cfg.env, cfg)


def train_mcts(cfg: Config, resume: str | Path | None = None) -> Agent:
    """The training loop for target='mcts' (see the module doc); called by deepq.train."""
    from deepq.train import (
        LoopState,
        _DeferredInterrupt,
        _evaluate,
        _mean,
        checkpoint_and_stop,
        checkpoint_path,
        crossings,
        running,
        time_limit,
    )

    cfg.validate()
    torch.manual_seed(cfg.seed)
    set_cpu_threads(cfg.threads)
    torch.set_flush_denormal(cfg.flush_denormal)
    rng = np.random.default_rng(cfg.seed)  # ε draws, random actions, minibatches
    env = make_searchable(cfg)
    two_player = is_game(cfg.env)
    agent = Agent(tuple(env.obs_shape), env.n_actions, cfg)
    search = MCTS(agent.q_values, search_config(cfg, cfg.seed), two_player)
    memory = TargetMemory(cfg.buffer_size, tuple(env.obs_shape), env.n_actions)
    eps_at = EpsilonSchedule.from_config(cfg)
    state = LoopState(ep_return=[0.0], ep_length=[0])
    if resume is None:
        run_dir = new_run_dir(cfg)
    else:
        run_dir = Path(resume)
        data = safe_load(checkpoint_path(run_dir), CHECKPOINT_FORMAT)
        agent.load_state_dict(data["agent"])
        memory.load_state_dict(data["memory"])
        rng.bit_generator.state = data["rng"]
        search.rng.bit_generator.state = data["search_rng"]
        torch.set_rng_state(data["torch_rng"])
        for k, v in data["loop"].items():
            setattr(state, k, v)
    write_config(run_dir, cfg)
    log = RunLog(run_dir, resume_step=state.step if resume is not None else None)
    bar = Progress(cfg.total_steps, state.step, enabled=cfg.progress, title=cfg.run_name)

    def save_checkpoint() -> None:
        atomic_save({"format": CHECKPOINT_FORMAT, "version": 1, "config": cfg.to_dict(), "agent": agent.state_dict(),
                     "memory": memory.state_dict(), "rng": rng.bit_generator.state,
                     "search_rng": search.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                     "loop": vars(state).copy()}, checkpoint_path(run_dir))

    out_of_time = time_limit(cfg)
    interrupted = _DeferredInterrupt()
    try:
        with interrupted:
            while running(state, cfg, interrupted, out_of_time):
                prev = state.step
                for _ in range(cfg.mcts_episodes):  # play and search; Q_mcts recorded at every state
                    _play_episode(env, agent, search, memory, eps_at(state.step), rng, state, log, bar, cfg)
                # after the episodes: regress Q toward the search's values, as many steps as the TD mode takes
                for _ in range(cfg.gradient_steps * crossings(prev, state.step, cfg.train_freq)):
                    if memory.size >= cfg.batch_size and state.step >= cfg.learning_starts:
                        loss = agent.fit_targets(*memory.sample(cfg.batch_size, rng))
                        state.loss_sum += float(loss)
                        state.loss_count += 1
                        state.updates += 1
                if crossings(prev, state.step, cfg.eval_interval):
                    _evaluate(agent, cfg, state, log, bar)
                if crossings(prev, state.step, cfg.checkpoint_interval):
                    save_checkpoint()
                    log.flush()
        if interrupted.requested:
            checkpoint_and_stop(state.step, run_dir, save_checkpoint)
    finally:
        bar.update(state.step, eps_at(state.step), _mean(state.recent), state.last_eval)
        bar.close()
        log.close()
    agent.save(run_dir / "agent.pt")
    save_checkpoint()
    plot_learning_curve(run_dir, title=f"{cfg.run_name} (seed {cfg.seed}, MCTS targets)")
    if cfg.progress:
        print(f"done: {state.step:,} env steps, {state.episodes:,} episodes; run directory {run_dir}")
    agent.run_dir = run_dir  # type: ignore[attr-defined]
    return agent


def _play_episode(env: Any, agent: Agent, search: MCTS, memory: TargetMemory, eps: float,
                  rng: np.random.Generator, state: Any, log: RunLog, bar: Progress, cfg: Config) -> None:
    from deepq.train import _track_episodes

    env.reset(int(np.random.SeedSequence([cfg.seed, 0x3C75, state.episodes]).generate_state(1)[0]))
    while not env.is_terminal:
        result = search.search(env)
        memory.add(env.observation(), result.q)  # (A,) NaN where unsearched: those actions get no target
        explore = rng.random() < eps
        legal = env.legal_mask()
        a = int(random_legal(legal[None], rng)[0]) if explore else result.action()
        mover = env.to_move
        r = env.step(a)
        state.step += 1
        logged = r if mover == 0 else -r  # games: the first player's return, as the TD mode logs it
        _track_episodes(state, np.array([logged]), np.array([env.is_terminal]), eps, log)
        if state.step % 64 == 0:
            bar.update(state.step, eps, sum(state.recent) / len(state.recent) if state.recent else None,
                       state.last_eval)
