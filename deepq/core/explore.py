"""Epsilon schedules: a pure function of the env step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EpsilonSchedule:
    """eps(step): 'linear' reaches `end` after `decay_steps`; 'exponential' has e-folding time `decay_steps`."""

    kind: str
    start: float
    end: float
    decay_steps: int

    def __call__(self, step: int) -> float:
        if self.decay_steps == 0:
            return self.end
        if self.kind == "linear":
            frac = min(step / self.decay_steps, 1.0)
            return self.start + frac * (self.end - self.start)
        return self.end + (self.start - self.end) * math.exp(-step / self.decay_steps)


def epsilon_greedy(greedy: Callable[[np.ndarray], np.ndarray], obs: np.ndarray, eps: float, n_actions: int,
                   rng: np.random.Generator) -> np.ndarray:
    """One action per row of obs: uniform random with probability eps, else greedy(obs).

    The RNG draws the same numbers whatever eps is, so runs stay reproducible; the forward
    pass is skipped when every env explores (always, before learning starts with eps=1).
    """
    n = len(obs)
    if n == 1:  # the common single-env case, with scalar draws: the same random stream, less overhead
        explore_one, random_one = rng.random() < eps, rng.integers(n_actions)
        return np.array([random_one]) if explore_one else np.asarray(greedy(obs))
    explore = rng.random(n) < eps  # (N,)
    random_actions = rng.integers(n_actions, size=n)  # (N,)
    if explore.all():
        return random_actions
    return np.where(explore, random_actions, greedy(obs))


def random_legal(legal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N,) one uniformly random legal action per row of `legal` (N, A) bool; every row needs one."""
    k = (rng.random(len(legal)) * legal.sum(axis=1)).astype(np.int64)  # (N,) pick the k-th legal action
    return np.argmax(np.cumsum(legal, axis=1) > k[:, None], axis=1)


def masked_epsilon_greedy(greedy: Callable[[np.ndarray, np.ndarray], np.ndarray], obs: np.ndarray,
                          legal: np.ndarray, eps: float, rng: np.random.Generator) -> np.ndarray:
    """epsilon_greedy for games: both the random and the greedy choice are among the legal actions
    (legal (N, A) bool; greedy(obs, legal) -> (N,) actions). The RNG draws do not depend on eps."""
    explore = rng.random(len(obs)) < eps  # (N,)
    random_actions = random_legal(legal, rng)  # (N,)
    if explore.all():
        return random_actions
    return np.where(explore, random_actions, greedy(obs, legal))
