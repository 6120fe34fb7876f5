"""Atari env steps per second: deepq's two backends side by side, same preprocessing, same actions.

    python benchmarks/atari_envs.py                      # Breakout, 1 and 8 envs, 3 repeats
    python benchmarks/atari_envs.py --game ALE/Pong-v5 --envs 1 4 16 --steps 4000

Backends: backend='gymnasium' (deepq.envs.gym.GymVecEnv over ale-py envs with deepq/envs/atari.py's
preprocessing, stepped one after another in this process) and backend='envpool'
(deepq.envs.atari.EnvPoolVecEnv: EnvPool's C++ envs, stepped in its thread pool, one thread per
core). Both give (k, 84, 84) uint8 stacks with frame skip 4 and max-pooling, and both reset
an env on the step its game ends. Each run steps N envs with uniform random actions for
--steps env steps (summed over envs) after 200 warm-up vector steps; the rate is env steps
(agent steps, 4 emulator frames each) per second of wall time. Repeats alternate backends,
and the table gives the median and the median per-repeat ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import deepq
from deepq.envs.kinds import make_vec_env


def rate(game: str, backend: str, num_envs: int, steps: int, seed: int) -> float:
    cfg = deepq.preset("atari", env=game, backend=backend, num_envs=num_envs, seed=seed)
    envs = make_vec_env(cfg)
    envs.reset()
    rng = np.random.default_rng(seed)
    for _ in range(200):
        envs.step(rng.integers(envs.n_actions, size=num_envs))
    vector_steps = max(1, steps // num_envs)
    start = time.perf_counter()
    for _ in range(vector_steps):
        envs.step(rng.integers(envs.n_actions, size=num_envs))
    elapsed = time.perf_counter() - start
    envs.close()
    return vector_steps * num_envs / elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--game", default="ALE/Breakout-v5")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 8])
    p.add_argument("--steps", type=int, default=4_000, help="env steps per run, summed over envs")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(f"`python benchmarks/atari_envs.py --game {args.game} --envs {' '.join(map(str, args.envs))} "
          f"--steps {args.steps} --repeats {args.repeats}`, nproc {os.cpu_count()}\n")
    print("| envs | gymnasium (ale-py) env steps/s | envpool env steps/s | envpool/gymnasium |")
    print("|---|---|---|---|")
    for n in args.envs:
        gym_rates, pool_rates = [], []
        for r in range(args.repeats):
            gym_rates.append(rate(args.game, "gymnasium", n, args.steps, r))
            pool_rates.append(rate(args.game, "envpool", n, args.steps, r))
        ratio = statistics.median(p / g for p, g in zip(pool_rates, gym_rates, strict=True))
        print(f"| {n} | {statistics.median(gym_rates):,.0f} | {statistics.median(pool_rates):,.0f} | "
              f"**{ratio:.2f}×** |", flush=True)


if __name__ == "__main__":
    main()
