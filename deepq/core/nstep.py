"""n-step transitions folded as they are collected, for a process that ships them (a distributed actor).

The single-process replay (deepq/core/replay.py) stores one-step transitions and sums n-step returns when it
samples. A distributed actor cannot: what it ships must be final. `NStepFolder` keeps, per vector env, the last
n raw steps, and hands out a transition as soon as its window is complete: n steps later, or when the episode
stops (terminated: no bootstrap; ended by a time limit: bootstrap from the true final observation). The values
are those `ReplayMemory.batch_slots` computes for the same stream once the window is stored: the same
float64 sum of γ^k r_k, the same discount γ^m (0 if terminal), the s' after the window's last step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from deepq.core.replay import discounts


class Folded(NamedTuple):
    """n-step transitions ready for a folded ReplayMemory (one row each)."""

    obs: np.ndarray  # (B, *obs_shape)
    actions: np.ndarray  # (B,) int64
    returns: np.ndarray  # (B,) float32: Σ_k γ^k r_k over the window
    next_obs: np.ndarray  # (B, *obs_shape): s' after the window's last step
    terminated: np.ndarray  # (B,) float32: 1.0 where the window ended in a terminal state
    discounts: np.ndarray  # (B,) float32: γ^m, 0 where terminal
    next_legal: np.ndarray | None  # (B, A) bool, games: the legal actions in next_obs

    def __len__(self) -> int:
        return len(self.actions)

    @staticmethod
    def concat(parts: list[Folded]) -> Folded:
        def cat(field: str) -> np.ndarray:
            return np.concatenate([getattr(p, field) for p in parts])

        legal = None if parts[0].next_legal is None else cat("next_legal")
        return Folded(cat("obs"), cat("actions"), cat("returns"), cat("next_obs"), cat("terminated"),
                      cat("discounts"), legal)


class NStepFolder:
    """Per env, the pending steps whose n-step window is not complete yet (at most n − 1 between calls)."""

    def __init__(self, num_envs: int, n_step: int, gamma: float) -> None:
        """gamma: the discount per step (−γ for two-player games, as the replay's)."""
        self.n_step, self.gamma = n_step, gamma
        self.pending: list[list[tuple[Any, ...]]] = [[] for _ in range(num_envs)]

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, ended: np.ndarray, next_legal: np.ndarray | None = None) -> list[Folded]:
        """One vector step (N envs); returns the transitions whose windows it completed, oldest first per env."""
        out: list[Folded] = []
        for i, pending in enumerate(self.pending):
            legal = None if next_legal is None else next_legal[i]
            pending.append((obs[i], int(actions[i]), np.float32(rewards[i]), next_obs[i], bool(terminated[i]), legal))
            if terminated[i] or ended[i]:  # the episode stops here: every pending window ends at this step
                out.append(self._fold(pending, len(pending)))
                pending.clear()
            elif len(pending) == self.n_step:  # the oldest window is complete
                out.append(self._fold(pending, 1))
                del pending[0]
        return out

    def _fold(self, steps: list[tuple[Any, ...]], count: int) -> Folded:
        """The transitions starting at steps[0 .. count-1], each window running to the last of `steps`."""
        last = steps[-1]
        rewards = np.array([s[2] for s in steps], dtype=np.float32)
        returns, m = np.zeros(count, dtype=np.float64), np.zeros(count, dtype=np.int64)
        for j in range(count):
            for k, r in enumerate(rewards[j:]):
                returns[j] += self.gamma ** k * r  # replay.window_returns' float64 sum, term by term
            m[j] = len(steps) - j
        terminated = np.full(count, float(last[4]), dtype=np.float32)
        legal = None if last[5] is None else np.repeat(last[5][None], count, axis=0)
        return Folded(np.stack([s[0] for s in steps[:count]]), np.array([s[1] for s in steps[:count]], np.int64),
                      returns.astype(np.float32), np.repeat(np.asarray(last[3])[None], count, axis=0),
                      terminated, discounts(self.gamma, m if self.n_step > 1 else None, terminated), legal)

    def reset(self) -> None:
        """New episodes everywhere (the envs were reset): pending steps belong to episodes that are gone."""
        for pending in self.pending:
            pending.clear()
