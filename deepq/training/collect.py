"""Collection, written once: one vectorized step acts on every env's observation, steps all the envs and returns what
happened as values. DQN's replay (deepq/training/dqn.py), PQN's rollout (deepq/training/pqn.py) and an Ape-X actor's
n-step folder (deepq/training/actor.py) consume it; the episodes it finished are counted by
deepq/training/control.py's `finished` and logged by the loop, never here.

    a  = ε-greedy(Q(s; θ))                     (players.act: legal actions only in games and masked envs; a
                                               snapshot's seat in games)
    s', r, terminated, truncated = env.step(a) (every env at once; an env whose episode ended is reset)
    r  = sign(r) where rewards are clipped     (the rewards trained on; the raw ones are logged)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import numpy as np
from torch import nn

from deepq.config import Config
from deepq.core.policy import Policy
from deepq.envs.base import Step, VecEnv
from deepq.errors import EnvError


class Players(Protocol):
    """Who moves in the training envs, and what of their steps is logged and checkpointed."""

    def act(self, policy: Policy, obs: np.ndarray, eps: float, rng: np.random.Generator,
            q: np.ndarray | None = None) -> np.ndarray:
        """(N,) actions for obs (N, *obs_shape), exploring with probability eps; `q` (N, A): the learner's Q values
        of obs where the caller computed them (Policy.explore)."""

    def logged(self, rewards: np.ndarray) -> np.ndarray:
        """The step's rewards (N,) as metrics.csv counts episode returns."""

    def new_episodes(self, ended: np.ndarray, rng: np.random.Generator) -> None:
        """After each step: the envs ended (N,) bool start new episodes."""

    def target_synced(self, online: nn.Module) -> None:
        """The target network was just synced to `online`."""

    def state_dict(self) -> dict[str, Any] | None: ...

    def load_state_dict(self, state: dict[str, Any] | None, online: nn.Module) -> None: ...


class SingleAgent:
    """Players of a single-agent env: the agent acts ε-greedily (among the legal actions, in an env that masks
    them: envs.legal); returns are logged as they are."""

    def __init__(self, envs: VecEnv) -> None:
        self.envs = envs

    def act(self, policy: Policy, obs: np.ndarray, eps: float, rng: np.random.Generator,
            q: np.ndarray | None = None) -> np.ndarray:
        return policy.explore(obs, eps, rng, self.envs.legal, q)  # (N,)

    def logged(self, rewards: np.ndarray) -> np.ndarray:
        return rewards

    def new_episodes(self, ended: np.ndarray, rng: np.random.Generator) -> None:
        pass

    def target_synced(self, online: nn.Module) -> None:
        pass

    def state_dict(self) -> dict[str, Any] | None:
        return None  # a checkpoint's "pool" entry: games' opponent pool, none here

    def load_state_dict(self, state: dict[str, Any] | None, online: nn.Module) -> None:
        pass


class VectorStep(NamedTuple):
    """One step of every env, as values."""

    obs: np.ndarray  # (N, *obs_shape) s: the observations acted on
    actions: np.ndarray  # (N,) int64
    rewards: np.ndarray  # (N,) float32 as trained on: sign-clipped where cfg.clip_rewards
    logged: np.ndarray  # (N,) the rewards as metrics.csv counts returns (games: the first player's)
    out: Step  # the envs' step: s' (out.final_obs), terminated, ended, next_legal; out.obs is acted on next


class Collector:
    """Steps `envs` with `players` acting from `policy`; keeps the observations to act on next (`obs`)."""

    def __init__(self, cfg: Config, envs: VecEnv, players: Players, policy: Policy, rng: np.random.Generator) -> None:
        self.cfg, self.envs, self.players, self.policy, self.rng = cfg, envs, players, policy, rng
        self.obs = np.empty(0)  # (N, *obs_shape) set by start() or a resume

    def start(self) -> None:
        """Reset every env (a fresh run)."""
        self.obs = self.envs.reset()

    def step(self, eps: float, at_step: int, q: np.ndarray | None = None) -> VectorStep:
        """One ε-greedy action per env, every env stepped. `at_step`: the run's env step before it (for messages);
        `q` (N, A): the Q values of `obs` where the caller computed them."""
        s = self.obs
        actions = self.players.act(self.policy, s, eps, self.rng, q)  # (N,)
        try:
            out = self.envs.step(actions)
        except EnvError as e:
            raise EnvError(f"{e} (training env step {at_step + self.envs.num_envs:,})") from None
        rewards = np.sign(out.rewards) if self.cfg.clip_rewards else out.rewards  # (N,) float32
        self.players.new_episodes(out.ended, self.rng)
        self.obs = out.obs
        return VectorStep(s, actions, rewards, self.players.logged(out.rewards), out)
