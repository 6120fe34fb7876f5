"""n-step transitions made final where they are collected, for a process that ships them (a distributed actor).

The single-process replay (deepq/core/replay.py) stores one-step transitions and sums n-step returns when it
samples. A distributed actor cannot: what it ships must be final. `NStepFolder` keeps the steps of the batch
being collected, plus the n − 1 steps before it, in a small ReplayMemory of its own, and `take()` hands out every
transition whose window is complete as the replay computes it: the same n-step sums, discounts γ^m (0 if
terminal), true final observations on truncation and legal-move masks, by the same code. A transition is
complete once its n − 1 successors are stored (a window that stops at an episode's end is final too, but waits
for the same n − 1 steps: it keeps the bookkeeping to one counter).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deepq.core.replay import ReplayMemory


class Folded(NamedTuple):
    """n-step transitions ready for a folded ReplayMemory (one row each), as NumPy arrays."""

    obs: np.ndarray  # (B, *obs_shape)
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32: Σ_k γ^k r_k over the window
    next_obs: np.ndarray  # (B, *obs_shape): s' after the window's last step
    terminated: np.ndarray  # (B,) float32: 1.0 where the window ended in a terminal state
    discounts: np.ndarray  # (B,) float32: γ^m, 0 where terminal
    next_legal: np.ndarray | None  # (B, A) bool, games: the legal actions in next_obs

    def __len__(self) -> int:
        return len(self.actions)


class NStepFolder:
    """A staging replay for `num_envs` envs that holds `batch_steps` vector steps beyond the n − 1 a window needs."""

    def __init__(self, num_envs: int, n_step: int, gamma: float, batch_steps: int, obs_shape: tuple[int, ...],
                 obs_dtype: Any = np.float32, legal_actions: int = 0) -> None:
        """gamma: the discount per step (−γ for two-player games, as the replay's); legal_actions: A for games."""
        self.num_envs, self.n_step, self.batch_steps = num_envs, n_step, batch_steps
        self.memory = ReplayMemory((batch_steps + n_step - 1) * num_envs, obs_shape, obs_dtype=obs_dtype,
                                   num_envs=num_envs, n_step=n_step, gamma=gamma, legal_actions=legal_actions)
        self.added = 0  # vector steps stored
        self.taken = 0  # vector steps whose transitions were handed out

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, ended: np.ndarray, next_legal: np.ndarray | None = None) -> None:
        """One vector step (N envs), as ReplayMemory.add takes it."""
        if self.added - self.taken >= self.batch_steps + self.n_step - 1:
            raise RuntimeError(f"take() at least every {self.batch_steps} steps: older steps would be overwritten")
        self.memory.add(obs, actions, rewards, next_obs, terminated, ended, next_legal)
        self.added += 1

    def take(self) -> Folded | None:
        """Every transition whose window became complete since the last take (None if there is none)."""
        complete = self.added - (self.n_step - 1)  # vector steps whose n − 1 successors are stored
        if complete <= self.taken:
            return None
        steps = np.arange(self.taken, complete)
        rows = ((steps[:, None] * self.num_envs + np.arange(self.num_envs)) % self.memory.capacity).ravel()
        self.taken = complete
        b = self.memory.batch_slots(rows)
        return Folded(b.obs.numpy(), b.actions.numpy(), b.rewards.numpy(), b.next_obs.numpy(), b.terminated.numpy(),
                      b.discounts.numpy(), None if b.next_legal is None else b.next_legal.numpy())
