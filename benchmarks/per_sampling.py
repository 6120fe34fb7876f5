"""Prioritized replay at capacity 1,000,000: µs per sample() and per update() of 32 and 256 slots.

    python benchmarks/per_sampling.py                   # a few seconds
    python benchmarks/per_sampling.py --repeats 5000 --capacity 100000

deepq.core.per.PrioritizedSampler (alpha 0.6, eps 1e-6) over --capacity slots, all added and then given
priorities from random TD errors (|N(0, 1)|, so priorities spread over orders of magnitude), as
after a long run. Figures:
- sample(B): stratified draw of B slots plus their importance weights (beta 0.4), as returned to
  the training loop: slots (B,) int64, weights (B,) float32.
- update(B): new priorities (|delta| + eps)^alpha for B random slots, propagated to the root.
Each figure is the median over --repeats calls (after 50 warm-up calls), each call timed on its
own with perf_counter; the inputs of update() are made beforehand, outside the timing. Medians,
because the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

from deepq.core.per import PrioritizedSampler


def median_us(call: Callable[[int], object], repeats: int) -> float:
    """Median µs of call(i) over `repeats` calls, after 50 warm-up calls."""
    for i in range(50):
        call(i)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, nargs="+", default=[32, 256])
    p.add_argument("--repeats", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    per = PrioritizedSampler(args.capacity, alpha=0.6, eps=1e-6)
    slots = np.arange(args.capacity)
    per.add(slots)
    per.update(slots, rng.normal(size=args.capacity))

    print("$ " + " ".join(["python", *sys.argv]))
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()} {os.cpu_count()} CPUs; "
          f"capacity {args.capacity:,} (sum tree depth {per.tree.depth}), median of {args.repeats} calls\n")
    print("| batch | sample + weights, µs | update, µs |")
    print("|---:|---:|---:|")
    for b in args.batch:
        n = 50 + args.repeats  # warm-up calls too
        upd_slots = rng.integers(0, args.capacity, size=(n, b))
        upd_td = rng.normal(size=(n, b))

        def sample(i: int, b: int = b) -> object:
            return per.sample(b, rng, 0.4)

        def update(i: int, s: np.ndarray = upd_slots, d: np.ndarray = upd_td) -> None:
            per.update(s[i], d[i])

        t_sample, t_update = median_us(sample, args.repeats), median_us(update, args.repeats)
        print(f"| {b} | {t_sample:.1f} | {t_update:.1f} |")


if __name__ == "__main__":
    main()
