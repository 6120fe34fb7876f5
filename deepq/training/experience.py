"""The Experience protocol: what deepq/training/loop.py's loop asks of a training mode.

Modes, one per file: DQN transitions (deepq/training/dqn.py: env steps into replay, TD updates; for two-player
games with deepq/games/selfplay.py's SelfPlay deciding who moves and how plies are logged), MCTS searched
episodes (deepq/training/mcts.py: Q regressed toward tree-search values) and PQN rollouts (deepq/training/pqn.py:
Q regressed toward a rollout's λ-returns, no replay, no target network). loop.make_experience picks one from the
env kind and cfg.target.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import torch

from deepq.agent import Agent
from deepq.training.control import Episodes, LoopState


class Collected(NamedTuple):
    """What one collection finished, for the loop to log (deepq/training/control.py's log_episodes)."""

    episodes: Episodes  # the episodes that ended, in order
    eps: float  # the exploration rate of the collection (at its first step; a distributed actor's own)
    actor: int | None = None  # a distributed run: the actor whose episodes they were


class Experience(Protocol):
    """What the loop asks of a training mode."""

    agent: Agent
    env_label: str  # how the envs call themselves (names a run trained on an anonymous env factory)

    def start(self) -> None:
        """A fresh run (not a resumed one): reset the envs."""

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        """Act (exploration rate ε = eps_at(env step)) and store what happened; advances state.step and the
        episodes in progress, and returns those that ended (the loop logs them)."""

    def can_learn(self) -> bool:
        """Enough is stored to draw a minibatch."""

    def updates(self, prev: int, step: int) -> int:
        """Gradient steps due after collecting env steps (prev, step]: the replay ratio's `gradient_steps` per
        `train_freq` env steps (replay_ratio_updates), or PQN's epochs × minibatches per rollout."""

    def learn(self, step: int) -> torch.Tensor:
        """One gradient step; returns its loss (detached)."""

    def after_updates(self, prev: int, step: int) -> None:
        """Once per iteration, after its gradient steps: anything scheduled by env step (target syncs)."""

    def state_dict(self) -> dict[str, Any]:
        """The mode's part of a checkpoint (replay, env state, ...), beside the agent, RNGs and loop counters."""

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from a whole checkpoint dict."""

    def close(self) -> None: ...
