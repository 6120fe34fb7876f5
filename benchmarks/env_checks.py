"""What checking every env step costs: VecEnv.step on CartPole with its checks (observation shape and dtype
against the space, NaN/inf in observations and rewards, non-numeric rewards) against the same class with
the checks taken out, interleaved in one process.

    python benchmarks/env_checks.py [--steps 20000] [--repeats 7] [--envs 1]

Prints µs per VecEnv.step for each, their difference and ratio (median over repeats, min-max). Pin it to
one core (taskset -c 1) on a quiet machine; compare the difference with the training loop's µs per env step
(benchmarks/speed.py's profile: ~70 µs in workload (a)).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

from deepq.envs.gym import GymVecEnv, make_env


class Unchecked(GymVecEnv):
    """GymVecEnv with the per-step checks removed: the observation is only converted."""

    def _checked(self, i: int, obs: Any, what: str) -> np.ndarray:
        return self._convert(obs)

    def _check_finite(self, first: int, obs: np.ndarray) -> None:
        pass


def per_step_us(cls: type[GymVecEnv], steps: int, num_envs: int, seed: int) -> float:
    vec = cls([lambda: make_env("CartPole-v1") for _ in range(num_envs)], seed=0)
    vec.reset()
    actions = np.random.default_rng(seed).integers(2, size=(steps, num_envs))
    start = time.perf_counter()
    for a in actions:
        vec.step(a)
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--envs", type=int, default=1)
    args = ap.parse_args()
    checked, bare = [], []
    for r in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        checked.append(per_step_us(GymVecEnv, args.steps, args.envs, r))
        bare.append(per_step_us(Unchecked, args.steps, args.envs, r))
    diffs = [c - b for c, b in zip(checked, bare, strict=True)]
    ratios = [c / b for c, b in zip(checked, bare, strict=True)]
    med = statistics.median
    print(f"CartPole-v1, {args.envs} env(s), {args.steps:,} steps x {args.repeats} repeats")
    print(f"checked   {med(checked):6.2f} µs per VecEnv.step ({min(checked):.2f}-{max(checked):.2f})")
    print(f"unchecked {med(bare):6.2f} µs per VecEnv.step ({min(bare):.2f}-{max(bare):.2f})")
    print(f"checks cost {med(diffs):.2f} µs per step ({min(diffs):.2f}-{max(diffs):.2f}); "
          f"ratio {med(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})")


if __name__ == "__main__":
    main()
