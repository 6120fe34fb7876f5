"""Distributed training (Ape-X on Ray) against the single-process loop, side by side in one run.

    python benchmarks/distributed.py                      # everything (about 13 minutes on 2 cores)
    python benchmarks/distributed.py --parts throughput   # env steps/s and updates/s only
    python benchmarks/distributed.py --parts solve --seeds 0,1,2
    python benchmarks/distributed.py --parts minatar --minutes 3   # MinAtar Breakout at equal wall-clock, seed 0

throughput: for the single-process loop and for 1, 2 and 4 actors, env steps/s and updates/s over a fixed
window of wall-clock time after learning starts, on CartPole (MLP 64-64, batch 64, one env per actor) at two
replay ratios: one update per 32 env steps (collection-bound: what the actors can deliver) and one per env step
(the cartpole preset's ratio: learner-bound). The loop driven is the training loop's inner step (collect, the
ratio's updates, target sync and weight broadcast), without evaluations or checkpoints. Scaling efficiency is
(rate with N actors) / (N × rate with 1 actor). Bytes shipped per transition are the arrays' bytes received by
the learner (CartPole and MinAtar Breakout frames), divided by the transitions received.

solve: wall-clock seconds until the cartpole preset's evaluation first reaches 475, single process against
2 actors at the same replay ratio, for each seed (a local Ray's start-up, ~5 s, is inside the distributed
time). minatar: the minatar-breakout preset for the same wall-clock minutes (max_minutes), one process against
2 actors, first seed only: env steps reached, periodic and final evaluations. One Ray is started for the whole
run, on loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deepq  # after the path: the checkout's deepq
from deepq.core.agent import set_cpu_threads
from deepq.training.control import LoopState, crossings
from deepq.training.dqn import exploration
from deepq.training.loop import make_experience
from deepq.training.setup import env_kind

CARTPOLE = dict(env="CartPole-v1", hidden_sizes=(64, 64), batch_size=64, buffer_size=50_000, learning_starts=1_000,
                target_update_interval=100, lr=1e-3, double=True, loss="huber", eps_decay_steps=5_000,
                progress=False, eval_interval=0, checkpoint_interval=0, gradient_steps=1)


class NoLog:
    def episode(self, *args: Any) -> None:
        pass


def drive(cfg: deepq.Config, seconds: float) -> dict[str, float]:
    """The loop's inner step for `seconds` after learning_starts; returns env steps/s, updates/s and bytes."""
    torch.manual_seed(cfg.seed)
    set_cpu_threads(cfg.threads)  # as deepq.train sets up the learner's process
    torch.set_flush_denormal(cfg.flush_denormal)
    rng = np.random.default_rng(cfg.seed)
    mode = make_experience(cfg, rng, env_kind(cfg))
    mode.start()
    state = LoopState(ep_return=[0.0] * cfg.num_envs, ep_length=[0] * cfg.num_envs)
    eps_at, log = exploration(cfg), NoLog()

    def step() -> None:
        prev = state.step
        mode.collect(state, eps_at, log)  # type: ignore[arg-type]
        if state.step >= cfg.learning_starts and mode.can_learn():
            for _ in range(cfg.gradient_steps * crossings(prev, state.step, cfg.train_freq)):
                mode.learn(state.step)
                state.updates += 1
        mode.after_updates(prev, state.step)

    try:
        while state.step < cfg.learning_starts:
            step()
        t0, s0, u0 = time.perf_counter(), state.step, state.updates
        while time.perf_counter() - t0 < seconds:
            step()
        dt = time.perf_counter() - t0
        out = {"steps_per_s": (state.step - s0) / dt, "updates_per_s": (state.updates - u0) / dt}
        if cfg.num_actors:
            out["bytes_per_transition"] = mode.bytes_received / max(mode.transitions_received, 1)  # type: ignore[attr-defined]
        return out
    finally:
        mode.close()


def throughput(seconds: float, actor_counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    workloads = (("collection-bound (1 update / 32 env steps)", 32), ("learner-bound (1 update / env step)", 1))
    for name, train_freq in workloads:
        base = None
        for n in [0, *actor_counts]:
            cfg = deepq.Config(**CARTPOLE, train_freq=train_freq, num_actors=n, actor_eps="schedule", total_steps=10**9)
            r = drive(cfg, seconds)
            if n == 1:
                base = r["steps_per_s"]
            eff = r["steps_per_s"] / (n * base) if n and base else None
            rows.append({"workload": name, "actors": n, **r, "efficiency": eff})
            print(json.dumps(rows[-1]), flush=True)
    frames = drive(deepq.Config(env="MinAtar/Breakout-v0", arch="small_cnn", batch_size=32, buffer_size=20_000,
                                learning_starts=1_000, train_freq=32, num_actors=1, progress=False, eval_interval=0,
                                checkpoint_interval=0, total_steps=10**9), min(seconds, 10))
    rows.append({"workload": "MinAtar Breakout frames (10x10x4 bool), 1 actor", "actors": 1, **frames,
                 "efficiency": None})
    print(json.dumps(rows[-1]), flush=True)
    return rows


def solve(seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        for n in (0, 2):
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                agent = deepq.train(deepq.preset("cartpole", seed=seed, num_actors=n, progress=False,
                                                 run_dir=str(Path(d) / "run")))
                seconds = time.perf_counter() - t0
                metrics = (Path(d) / "run" / "metrics.csv").read_text().splitlines()
            solved = next((int(line.split(",")[0]) for line in metrics[1:]
                           if ",periodic" in line and float(line.split(",")[6]) >= 475), None)
            rows.append({"seed": seed, "actors": n, "seconds": seconds, "solved_at_step": solved,
                         "final_eval": agent.final_evaluation.mean})  # type: ignore[attr-defined]
            print(json.dumps(rows[-1]), flush=True)
    return rows


def minatar(minutes: float, seeds: list[int]) -> list[dict[str, Any]]:
    """The minatar-breakout preset for the same wall-clock minutes, one process against 2 actors: env steps
    reached, the periodic evaluations (every 25,000 env steps, 10 episodes) and the final one."""
    rows = []
    for seed in seeds:
        for n in (0, 2):
            with tempfile.TemporaryDirectory() as d:
                cfg = deepq.preset("minatar-breakout", seed=seed, num_actors=n, progress=False, max_minutes=minutes,
                                   eval_interval=25_000, eval_episodes=10, run_dir=str(Path(d) / "run"))
                agent = deepq.train(cfg)
                lines = (Path(d) / "run" / "metrics.csv").read_text().splitlines()
            evals = [(int(line.split(",")[0]), float(line.split(",")[6])) for line in lines[1:] if ",periodic" in line]
            last_step = max(int(line.split(",")[0]) for line in lines[1:])
            rows.append({"seed": seed, "actors": n, "minutes": minutes, "env_steps": last_step, "evals": evals,
                         "final_eval": agent.final_evaluation.mean})  # type: ignore[attr-defined]
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="throughput,solve,minatar")
    ap.add_argument("--seconds", type=float, default=20.0, help="measuring window per throughput setting")
    ap.add_argument("--actors", default="1,2,4")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock minutes per MinAtar run")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on loopback only
    import ray

    ray.init(num_cpus=max(os.cpu_count() or 1, 4), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="ERROR")
    print(f"machine: {os.cpu_count()} cores; deepq {deepq.__version__}; ray {ray.__version__}", flush=True)
    results: dict[str, Any] = {}
    if "throughput" in args.parts:
        results["throughput"] = throughput(args.seconds, [int(n) for n in args.actors.split(",")])
    if "solve" in args.parts:
        results["solve"] = solve([int(s) for s in args.seeds.split(",")])
    if "minatar" in args.parts:
        results["minatar"] = minatar(args.minutes, [int(s) for s in args.seeds.split(",")][:1])
    ray.shutdown()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
