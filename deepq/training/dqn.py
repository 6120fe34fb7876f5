"""DQN's experience for deepq/training/loop.py's loop: env steps stored in a replay memory, TD updates on minibatches
drawn from it (prioritized when asked), the target network synced every C env steps.

Collection is deepq/training/collect.py's one vectorized step; who moves is a `Players` object there: `SingleAgent`
(ε-greedy on the agent's Q values) for single-agent envs, or deepq/games/selfplay.py's `SelfPlay` for two-player
games (legal moves only, the learner or a past snapshot of it moving, each game's return logged for the first
player). The replay, PER and update plumbing here is the same
for both; a game's replay also stores the legal moves of s' and discounts by −γ (see make_replay)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from deepq.agent import Agent
from deepq.components import epsilon_schedule
from deepq.config import Config
from deepq.core.frame_replay import FrameReplay
from deepq.core.frame_streams import FrameStreams
from deepq.core.per import PrioritizedSampler, beta_schedule
from deepq.core.replay import ReplayMemory
from deepq.envs.base import VecEnv
from deepq.envs.kinds import EnvKind
from deepq.errors import ConfigError
from deepq.training.collect import Collector, Players
from deepq.training.control import LoopState, crossings, finished, replay_ratio_updates
from deepq.training.experience import Collected

Replay = ReplayMemory | FrameReplay | FrameStreams


def make_replay(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, device: torch.device,
                n_actions: int, kind: EnvKind, arch: str, folded: bool = False, masked: bool = False) -> Replay:
    """Frame histories (frame_stack > 1) store each frame once; anything else is stored as is.
    The discount stored is the env kind's (kind.discount): games store −γ, since each ply hands the turn to the
    opponent, whose value is ours negated (see td_target), and the legal moves of s'. `arch`: the network the
    kind resolved (its training state is counted).
    First the memory the run needs is checked against the memory available: a run that cannot fit stops here,
    in one ConfigError line, before anything is allocated (the Agent checked and built its networks already).
    `folded`: a distributed learner's memory, whose n-step transitions arrive summed (deepq/core/nstep.py), or
    for frame stacks whose frames arrive once each, in one stream per actor (deepq/core/frame_streams.py).
    `masked`: the envs mask actions (VecEnv.legal): the legal actions of s' are stored, as a game's are."""
    from deepq.memory import check_memory

    legal = n_actions if kind.two_player or masked else 0
    check_memory(cfg, obs_shape, obs_dtype, n_actions, arch, device, networks=False, game=kind.two_player,
                 masked=masked)
    if cfg.frame_stack > 1 and folded:
        if legal:
            raise ConfigError("distributed actors with frame_stack > 1 do not ship action masks yet: train this "
                              "env that masks actions with num_actors=0, or frame_stack=1")
        return FrameStreams(cfg.num_actors, cfg.buffer_size, obs_shape, cfg.num_envs, obs_dtype=obs_dtype,
                            device=device, n_step=cfg.n_step, gamma=cfg.gamma)
    if cfg.frame_stack > 1:
        return FrameReplay(cfg.buffer_size, obs_shape, cfg.num_envs, obs_dtype=obs_dtype, device=device,
                           n_step=cfg.n_step, gamma=cfg.gamma, legal_actions=legal)
    return ReplayMemory(cfg.buffer_size, obs_shape, obs_dtype=obs_dtype, device=device,
                        num_envs=1 if folded else cfg.num_envs, n_step=1 if folded else cfg.n_step,
                        gamma=kind.discount(cfg.gamma), legal_actions=legal,
                        folded=folded)


class ReplayLearning:
    """DQN's learning from a replay: a TD update on a minibatch (prioritized when cfg.prioritized), the replay ratio,
    θ⁻ ← θ every C env steps. The single-process Transitions and Ape-X's learner (deepq/training/distributed.py)
    each feed one; `on_sync(online)` hears of each target sync (games: the opponent pool takes a snapshot)."""

    def __init__(self, cfg: Config, rng: np.random.Generator, agent: Agent, memory: Replay,
                 on_sync: Callable[[nn.Module], None]) -> None:
        self.cfg, self.rng, self.agent, self.memory, self.on_sync = cfg, rng, agent, memory, on_sync
        self.per = PrioritizedSampler(memory.num_slots, cfg.per_alpha) if cfg.prioritized else None

    def can_learn(self) -> bool:
        return len(self.memory) >= self.cfg.batch_size

    def updates(self, prev: int, step: int) -> int:
        return replay_ratio_updates(self.cfg, prev, step)

    def learn(self, step: int) -> torch.Tensor:
        if self.per is None:
            return self.agent.learner.update(self.memory.sample(self.cfg.batch_size, self.rng)).loss
        return self._prioritized_update(step)

    def _prioritized_update(self, step: int) -> torch.Tensor:
        """Sample by priority, weight the loss by importance weights (beta annealed to 1), then set the
        sampled transitions' priorities from their new TD errors."""
        cfg, per, memory = self.cfg, self.per, self.memory
        assert per is not None
        beta = beta_schedule(step, cfg.per_beta, cfg.total_steps)
        slots, weights = per.sample(cfg.batch_size, self.rng, beta)
        while not (ok := memory.valid_slots(slots)).all():  # FrameReplay: frames overwritten since the last add
            per.set_invalid(slots[~ok])
            slots, weights = per.sample(cfg.batch_size, self.rng, beta)
        out = self.agent.learner.update(memory.batch_slots(slots), torch.from_numpy(weights).to(self.agent.device))
        per.update(slots, out.td_errors.cpu().numpy())
        return out.loss

    def after_updates(self, prev: int, step: int) -> bool:
        """θ⁻ ← θ where the env steps crossed a multiple of target_update_interval; returns whether it did."""
        if self.cfg.target == "hard" and crossings(prev, step, self.cfg.target_update_interval):
            self.agent.learner.sync_target()
            self.on_sync(self.agent.online)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "per": self.per.state_dict() if self.per is not None else None}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.memory.load_state_dict(data["memory"])
        if self.per is not None:
            self.per.load_state_dict(data["per"])


class Transitions:
    """DQN's experience: each iteration steps every env once and stores the transitions; learning is
    ReplayLearning's (a TD update on a minibatch, θ⁻ ← θ every C env steps).
    `players` say who moves in `envs` (SingleAgent, or a game's SelfPlay); `kind` is cfg.env's; `agent` (learner
    and policy) is built for `envs` by loop.make_experience."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind, envs: VecEnv, players: Players,
                 agent: Agent) -> None:
        self.cfg, self.rng, self.envs, self.players, self.agent = cfg, rng, envs, players, agent
        memory = make_replay(cfg, envs.obs_shape, envs.obs_dtype, self.agent.device, envs.n_actions, kind,
                             self.agent.arch, masked=envs.legal is not None)
        self.learning = ReplayLearning(cfg, rng, self.agent, memory, players.target_synced)
        self.memory, self.per = memory, self.learning.per  # the same objects, named for the collection below
        self.collector = Collector(cfg, envs, players, self.agent.policy, rng)
        self.env_label = envs.env_label

    def start(self) -> None:
        self.collector.start()

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        eps = eps_at(state.step)
        vs = self.collector.step(eps, state.step)
        out = vs.out
        # s' is the true final observation where an episode ended (terminated or truncated);
        # only `terminated` stops the bootstrap. Clipped rewards train; raw rewards are logged.
        # FrameStreams: a distributed learner's, never here
        slots = self.memory.add(vs.obs, vs.actions, vs.rewards, out.final_obs, out.terminated,  # type: ignore[union-attr]
                                 out.ended, out.next_legal)
        if self.per is not None:
            self.per.add(slots)  # new transitions get the highest priority so far
        state.step += self.envs.num_envs
        return Collected(finished(state, vs.logged, out.ended), eps)

    def can_learn(self) -> bool:
        return self.learning.can_learn()

    def updates(self, prev: int, step: int) -> int:
        return self.learning.updates(prev, step)

    def learn(self, step: int) -> torch.Tensor:
        return self.learning.learn(step)

    def after_updates(self, prev: int, step: int) -> None:
        self.learning.after_updates(prev, step)

    def state_dict(self) -> dict[str, Any]:
        learned = self.learning.state_dict()  # (the checkpoint's keys in the order deepq 0.1.0 wrote them)
        return {"memory": learned["memory"], "envs": self.envs.state_dict(), "per": learned["per"],
                "pool": self.players.state_dict()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if data.get("distributed") is not None:
            raise ValueError("it was written by a distributed run, whose replay holds summed n-step transitions "
                             "from its actors; resume it with --num_actors N (N >= 1)")
        self.learning.load_state_dict(data)
        self.players.load_state_dict(data["pool"], self.agent.online)
        self.collector.obs = self.envs.load_state_dict(data["envs"])
        if not self.envs.exact_resume:  # EnvPool: the episodes in progress were restarted, not restored
            print("resume: this backend cannot restore the episodes in progress; they restart (new episodes)",
                  file=sys.stderr)
            if isinstance(self.memory, FrameReplay):
                self.memory.mark_reset()

    def close(self) -> None:
        self.envs.close()


def exploration(cfg: Config) -> Callable[[int], float]:
    """ε by env step. Noisy nets (unless eps_with_noisy): uniform actions until learning starts (one fixed
    noise draw would fill the replay with one action), then the noise explores: ε = 0."""
    if cfg.noisy and not cfg.eps_with_noisy:
        return lambda step: 1.0 if step < cfg.learning_starts else 0.0
    return epsilon_schedule(cfg)
