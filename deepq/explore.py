"""Epsilon schedules: a pure function of the env step."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepq.config import Config


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

    @classmethod
    def from_config(cls, cfg: Config) -> EpsilonSchedule:
        return cls(cfg.eps_schedule, cfg.eps_start, cfg.eps_end, cfg.eps_decay_steps)


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
