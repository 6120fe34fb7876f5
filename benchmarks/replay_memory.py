"""Replay memory for Atari frame stacks: bytes per transition and sampling time, deepq vs SB3.

    python benchmarks/replay_memory.py                  # about a minute on 2 cores; peak about 6 GB
    python benchmarks/replay_memory.py --fill 20000     # a quick check

Memories compared, all for obs (4, 84, 84) uint8 (FrameStackObservation of 84x84 grey
frames), one env, 18 actions: deepq's FrameReplay (each frame stored once, stacks rebuilt
by index), and Stable-Baselines3's ReplayBuffer with optimize_memory_usage=False (obs and
next_obs stacks stored per transition) and =True (one stack per transition, next_obs read
from the next slot; SB3 requires handle_timeout_termination=False with it).

Three figures per memory:
- bytes per transition at capacity 1,000,000: the nbytes of every preallocated array
  (FrameReplay.nbytes(); SB3's observations, next_observations (absent when optimized),
  actions, rewards, dones, timeouts) divided by the capacity. Both allocate with np.zeros,
  so nothing is touched. SB3's arrays are all (buffer_size, n_envs, ...), so where the OS
  refuses a 1M SB3 buffer outright (Linux's heuristic overcommit rejects a single 26 GiB
  np.zeros on a machine with less RAM than that) it is counted at buffer_size 10,000 and
  scaled, which is exact; the table says so.
- real bytes per transition: a fresh subprocess per memory builds it with capacity --fill,
  adds --fill transitions of random frames (episodes of --episode steps, the stacks shifted
  as FrameStackObservation does, so deepq stores its extra reset frame per episode), and
  divides the growth of its resident set (/proc/self/statm) over the filling by --fill.
- µs per sampled batch of 32 and of 256 from that filled memory: the median over --repeats
  calls (after 20 warm-up calls) of the call that returns a batch of torch tensors on the CPU
  (deepq FrameReplay.sample; SB3 ReplayBuffer.sample), with one torch thread. Medians,
  because the machine may be shared; each call allocates fresh output arrays, so page
  faults on them are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch

OBS = (4, 84, 84)
ACTIONS = 18
BIG = 1_000_000
KINDS = {"deepq": "deepq FrameReplay", "sb3": "SB3 ReplayBuffer",
         "sb3-optimized": "SB3 ReplayBuffer, optimize_memory_usage"}


def make(kind: str, capacity: int) -> Any:
    """A memory of `kind` for OBS uint8 observations, one env."""
    if kind == "deepq":
        from deepq.core.frame_replay import FrameReplay
        return FrameReplay(capacity, OBS)
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer
    optimized = kind == "sb3-optimized"
    return ReplayBuffer(capacity, spaces.Box(0, 255, OBS, np.uint8), spaces.Discrete(ACTIONS), device="cpu",
                        optimize_memory_usage=optimized, handle_timeout_termination=not optimized)


def nbytes(kind: str, memory: Any) -> int:
    if kind == "deepq":
        return int(memory.nbytes())
    arrays = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
    return sum(getattr(memory, a).nbytes for a in arrays if getattr(memory, a, None) is not None)


def bytes_per_transition(kind: str) -> tuple[float, str]:
    """nbytes / capacity at capacity 1M, or scaled from 10k where the OS refuses the 1M allocation."""
    try:
        return nbytes(kind, make(kind, BIG)) / BIG, ""
    except MemoryError:
        small = 10_000
        return nbytes(kind, make(kind, small)) / small, f" (counted at {small:,}: 1M refused by the OS)"


def rss() -> int:
    """Resident set size of this process, bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(kind: str, fill: int, episode: int, repeats: int) -> dict[str, Any]:
    """Fill a fresh memory with `fill` transitions; its RSS growth per transition and sample times."""
    # one torch thread: SB3's sample copies with torch.tensor, whose 2-thread copy stalls for
    # milliseconds whenever the other core is busy (a shared machine); deepq's sample is NumPy
    torch.set_num_threads(1)
    memory = make(kind, fill)
    rng = np.random.default_rng(0)
    np.random.seed(0)  # SB3 samples with the global NumPy generator

    def frame() -> np.ndarray:
        return np.frombuffer(rng.bytes(84 * 84), np.uint8).reshape(1, 1, 84, 84)  # (1, 1, 84, 84)

    obs = frame().repeat(OBS[0], axis=1)  # (1, 4, 84, 84): [f0, f0, f0, f0] at reset
    before = rss()
    for t in range(fill):
        next_obs = np.concatenate([obs[:, 1:], frame()], axis=1)  # (1, 4, 84, 84)
        action, reward = np.array([t % ACTIONS]), np.array([1.0], np.float32)
        ended = np.array([t % episode == episode - 1])  # game over: terminated and reset
        if kind == "deepq":
            memory.add(obs, action, reward, next_obs, ended, ended)
        else:
            memory.add(obs, next_obs, action, reward, ended, [{}])
        obs = frame().repeat(OBS[0], axis=1) if ended[0] else next_obs
    growth = rss() - before
    times = {}
    for batch_size in (32, 256):
        def sample(n: int = batch_size) -> Any:
            return memory.sample(n, rng) if kind == "deepq" else memory.sample(n)
        for _ in range(20):
            sample()
        calls = []
        for _ in range(repeats):
            start = time.perf_counter()
            sample()
            calls.append(time.perf_counter() - start)
        times[batch_size] = statistics.median(calls) * 1e6
    return {"rss_per_transition": growth / fill, "us_32": times[32], "us_256": times[256]}


def versions() -> str:
    import stable_baselines3
    return (f"Python {platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}, "
            f"stable-baselines3 {stable_baselines3.__version__}, {platform.machine()} {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fill", type=int, default=100_000, help="transitions added for the RSS and timing figures")
    parser.add_argument("--episode", type=int, default=1000, help="episode length of the fill, agent steps")
    parser.add_argument("--repeats", type=int, default=200, help="timed sample calls per batch size")
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--worker", choices=list(KINDS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # a fresh process per memory, so one memory's pages never count towards another's
        print(json.dumps(worker(args.worker, args.fill, args.episode, args.repeats)))
        return

    rows = []
    for kind in args.kinds:
        per_transition, note = bytes_per_transition(kind)
        out = subprocess.run([sys.executable, __file__, "--worker", kind, "--fill", str(args.fill),
                              "--episode", str(args.episode), "--repeats", str(args.repeats)],
                             check=True, capture_output=True, text=True).stdout
        m = json.loads(out.splitlines()[-1])
        rows.append(f"| {KINDS[kind]} | {per_transition:,.0f}{note} | {m['rss_per_transition']:,.0f} "
                    f"| {m['us_32']:,.0f} | {m['us_256']:,.0f} |")
        print(f"done: {kind}", file=sys.stderr)
    print("$ " + " ".join(["python", *sys.argv]))
    print(versions())
    print(f"obs {OBS} uint8; RSS and sampling after filling {args.fill:,} transitions "
          f"(episodes of {args.episode} steps); sample times are medians of {args.repeats} calls\n")
    print(f"| memory | bytes/transition, nbytes at capacity {BIG:,} | RSS growth/transition, filled {args.fill:,} "
          "| µs per batch of 32 | µs per batch of 256 |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
