"""Env steps per second of deepq's training loop on CartPole-v1 with CleanRL's default DQN settings.

    python benchmarks/speed_cartpole.py --steps 20000 --repeats 3

Settings (deepq.Config's defaults are CleanRL's): MLP 120-84, batch 128, buffer 10k, target every
500 env steps, learning_starts 1000, Adam 2.5e-4; (a) train every 10 env steps, (b) every step.
Evaluation, checkpoints and the progress bar are off; the rate is the marginal one between
runs of N/2 and N steps, so a run's fixed costs cancel. One process,
one torch thread; the median and the spread of the repeats are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import deepq

WORKLOADS = {"(a) train every 10": {"train_freq": 10}, "(b) train every step": {"train_freq": 1}}


def wall_time(steps: int, seed: int, **overrides: object) -> float:
    with tempfile.TemporaryDirectory() as d:
        cfg = deepq.Config(env="CartPole-v1", total_steps=steps, seed=seed, eval_interval=0, checkpoint_interval=0,
                           progress=False, run_dir=d, **overrides)  # type: ignore[arg-type]
        start = time.perf_counter()
        deepq.train(cfg)
        return time.perf_counter() - start


def steps_per_sec(steps: int, seed: int, **overrides: object) -> float:
    """Marginal rate between a run of steps/2 and one of steps: the fixed costs of a run (TensorBoard
    writer, saving, plotting) cancel, and both halves are past learning_starts."""
    return (steps - steps // 2) / (wall_time(steps, seed, **overrides) - wall_time(steps // 2, seed, **overrides))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"deepq {deepq.__version__}, CartPole-v1, {args.steps:,} env steps per run, {args.repeats} repeats")
    for name, overrides in WORKLOADS.items():
        rates = [steps_per_sec(args.steps, seed, **overrides) for seed in range(args.repeats)]
        print(f"{name:<22} median {statistics.median(rates):>8,.0f} env steps/s   "
              f"(min {min(rates):,.0f}, max {max(rates):,.0f})")


if __name__ == "__main__":
    main()
