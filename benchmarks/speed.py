"""Env steps per second of deepq side by side with Stable-Baselines3's DQN and a textbook PyTorch loop.

    python benchmarks/speed.py                                  # everything (about 7 minutes on 2 cores)
    python benchmarks/speed.py --steps 4000 --repeats 1         # a quick check
    python benchmarks/speed.py --workloads b --peers textbook   # one workload, one peer

Identical settings for every loop (deepq.Config's defaults are CleanRL's; all are passed
explicitly): CartPole-v1, MLP 120-84, batch 128, replay 10k, hard target copy every 500 env
steps, learning_starts 1000, Adam lr 2.5e-4, gamma 0.99, ε linear 1 → 0.05 over 5000 env
steps, one torch thread, CPU. Workloads: (a) 1 env, one gradient step every 10 env steps;
(b) 1 env, one every env step; (c) 8 envs, one every 10 env steps counted over all envs
(SB3: train_freq=5 vector steps with gradient_steps=4; see sb3_peer.py).
Loops: deepq via `deepq.train(deepq.Config(...))` (eval, checkpoints, progress off; every
other field at its default, so deepq runs as users get it); textbook_dqn.py (plain env for
1 env, gymnasium's SyncVectorEnv for 8); SB3's DQN with make_vec_env (DummyVecEnv).

How the rate is measured (the same for all three): each run is a fresh Python process
(same interpreter) training for N env steps. Every env is gym.make("CartPole-v1") inside a
thin wrapper that counts env steps over all of the run's envs and reads the clock when the
count reaches N/2 and N; the rate is N/2 divided by that time. So imports, set-up, the
replay warm-up before learning_starts, the ε decay (over by N/2 when N >= 10,000) and
end-of-run work (deepq's saving and plot) are outside the window, and everything the loop
does per step inside it is counted (deepq's per-episode metrics rows, SB3's logger and
callbacks). Repeats use seeds 0, 1, ...; within a repeat the loops run one after another
on the same seed, so a ratio is taken between runs seconds apart: the table shows the
median over repeats of the per-repeat ratio, with its min–max.

Profile (deepq, textbook, SB3; one extra run per loop and workload, not used for the rates):
the same window, with perf_counter timers around the same operations in each loop:
env = inside the Gymnasium env's step/reset; act = the greedy forward pass (deepq
Agent.act, textbook greedy_action, SB3 policy.predict; ε-exploring steps skip it);
learn = minibatch sampling plus the TD update (deepq ReplayMemory.sample + Agent.update,
textbook ReplayBuffer.sample + update, SB3 DQN.train); other = the rest of the wall time
(replay add, vector-env plumbing, ε draws, episode bookkeeping and logging, target syncs).
The timers add well under 1 µs per call. A profile is a single run, so it is noisier than
the rates; `acts` counts greedy forward passes (deepq draws ε per env and skips the pass
only when all envs explore; the textbook loop and SB3 draw one ε for all envs).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
from machine import cpu_model

ENV_ID = "CartPole-v1"
# CleanRL's DQN settings (deepq.Config field names); train_freq and num_envs come from the workload.
SETTINGS: dict[str, Any] = {
    "hidden_sizes": (120, 84), "batch_size": 128, "buffer_size": 10_000, "target_update_interval": 500,
    "learning_starts": 1_000, "lr": 2.5e-4, "gamma": 0.99, "eps_start": 1.0, "eps_end": 0.05,
    "eps_decay_steps": 5_000,
}
PEERS = ("textbook", "sb3")
LOOP_NAMES = {"deepq": "deepq", "textbook": "textbook", "sb3": "SB3"}


@dataclass(frozen=True)
class Workload:
    """What varies between workloads; everything else is SETTINGS."""

    title: str
    num_envs: int
    train_freq: int  # env steps (summed over envs) per gradient step


WORKLOADS = {
    "a": Workload("(a) 1 env, train every 10", 1, 10),
    "b": Workload("(b) 1 env, train every step", 1, 1),
    "c": Workload("(c) 8 envs, train every 10", 8, 10),
}


# ---- inside a worker process -------------------------------------------------------------
class Clock:
    """Counts env steps over all envs of a run; snapshots the time and the timers at two marks."""

    def __init__(self, start: int, stop: int) -> None:
        self.count = 0
        self.start, self.stop = start, stop
        self.seconds: dict[str, float] = defaultdict(float)  # profile timers
        self.calls: dict[str, int] = defaultdict(int)
        self.marks: list[tuple[int, float, dict[str, float], dict[str, int]]] = []

    def tick(self) -> None:
        self.count += 1
        if self.count == self.start or self.count == self.stop:
            self.marks.append((self.count, time.perf_counter(), dict(self.seconds), dict(self.calls)))

    def timed(self, key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """fn with its wall time and calls added to the timers under key."""
        seconds, calls, clock = self.seconds, self.calls, time.perf_counter

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = clock()
            out = fn(*args, **kwargs)
            seconds[key] += clock() - t
            calls[key] += 1
            return out
        return wrapper

    def result(self) -> dict[str, Any]:
        if len(self.marks) != 2:
            raise RuntimeError(f"the run made {self.count} env steps, fewer than the {self.stop} asked for")
        (c0, t0, s0, n0), (c1, t1, s1, n1) = self.marks
        return {"steps": c1 - c0, "seconds": t1 - t0,
                "timers": {k: s1.get(k, 0.0) - s0.get(k, 0.0) for k in s1},
                "calls": {k: n1.get(k, 0) - n0.get(k, 0) for k in n1}}


class ClockedEnv(gym.Wrapper):  # type: ignore[type-arg]
    """Ticks the shared clock on every step."""

    def __init__(self, env: gym.Env, clock: Clock) -> None:  # type: ignore[type-arg]
        super().__init__(env)
        self.clock = clock

    def step(self, action: Any) -> Any:
        self.clock.tick()
        return self.env.step(action)


class ProfiledEnv(ClockedEnv):
    """Also times the env's own step and reset."""

    def step(self, action: Any) -> Any:
        self.clock.tick()
        t = time.perf_counter()
        out = self.env.step(action)
        self.clock.seconds["env"] += time.perf_counter() - t
        return out

    def reset(self, **kwargs: Any) -> Any:
        t = time.perf_counter()
        out = self.env.reset(**kwargs)
        self.clock.seconds["env"] += time.perf_counter() - t
        return out


def run_deepq(env_fn: Callable[[], gym.Env], steps: int, w: Workload, seed: int, threads: int,
              clock: Clock | None) -> None:
    """deepq.train on the benchmark settings; with a clock, time Policy.act (the greedy choice ε-greedy calls),
    Learner.update and ReplayMemory.sample."""
    import deepq
    from deepq.core.learner import Learner
    from deepq.core.policy import Policy
    from deepq.core.replay import ReplayMemory

    if clock is not None:
        Policy.act = clock.timed("act", Policy.act)  # type: ignore[method-assign]
        Learner.update = clock.timed("update", Learner.update)  # type: ignore[method-assign]
        ReplayMemory.sample = clock.timed("sample", ReplayMemory.sample)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as d:
        deepq.train(deepq.Config(
            env=env_fn, total_steps=steps, seed=seed, num_envs=w.num_envs, train_freq=w.train_freq,
            gradient_steps=1, loss="mse", double=False, max_grad_norm=0.0, target="hard", eps_schedule="linear",
            eval_interval=0, checkpoint_interval=0, progress=False, run_dir=d, device="cpu", threads=threads,
            **SETTINGS))


def run_textbook(env_fn: Callable[[], gym.Env], steps: int, w: Workload, seed: int, clock: Clock | None) -> None:
    """textbook_dqn.train on the benchmark settings; with a clock, time its greedy_action, update and sample."""
    import textbook_dqn as tb

    if clock is not None:
        tb.greedy_action = clock.timed("act", tb.greedy_action)
        tb.update = clock.timed("update", tb.update)
        tb.ReplayBuffer.sample = clock.timed("sample", tb.ReplayBuffer.sample)  # type: ignore[method-assign]
    s = SETTINGS
    tb.train(env_fn, steps, w.num_envs, seed, hidden=s["hidden_sizes"], lr=s["lr"], gamma=s["gamma"],
             batch_size=s["batch_size"], buffer_size=s["buffer_size"], learning_starts=s["learning_starts"],
             train_freq=w.train_freq, target_every=s["target_update_interval"], eps_start=s["eps_start"],
             eps_end=s["eps_end"], eps_decay_steps=s["eps_decay_steps"])


def run_sb3(env_fn: Callable[[], gym.Env], steps: int, w: Workload, seed: int, clock: Clock | None) -> None:
    """SB3's DQN (sb3_peer.train); with a clock, time DQNPolicy.predict and DQN.train (sampling included)."""
    import sb3_peer
    from stable_baselines3 import DQN
    from stable_baselines3.dqn.policies import DQNPolicy

    if clock is not None:
        DQNPolicy.predict = clock.timed("act", DQNPolicy.predict)  # type: ignore[method-assign]
        train = DQN.train

        def timed_train(self: DQN, gradient_steps: int, batch_size: int = 100) -> None:
            t = time.perf_counter()
            train(self, gradient_steps, batch_size)
            clock.seconds["update"] += time.perf_counter() - t  # sampling included
            clock.calls["update"] += gradient_steps
        DQN.train = timed_train  # type: ignore[method-assign]
    sb3_peer.train(env_fn, steps, w.num_envs, seed, {**SETTINGS, "train_freq": w.train_freq})


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "gymnasium", "numpy", "stable-baselines3", "deepq"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One run in this process: {"loop", "workload", "steps", "seed", "threads", "profile"} -> measurements."""
    import torch

    torch.set_num_threads(spec["threads"])
    w, steps = WORKLOADS[spec["workload"]], spec["steps"]
    clock = Clock(steps // 2, steps)
    wrapper = ProfiledEnv if spec["profile"] else ClockedEnv

    def env_fn() -> gym.Env:  # type: ignore[type-arg]
        return wrapper(gym.make(ENV_ID), clock)

    prof = clock if spec["profile"] else None
    if spec["loop"] == "deepq":
        run_deepq(env_fn, steps, w, spec["seed"], spec["threads"], prof)
    elif spec["loop"] == "textbook":
        run_textbook(env_fn, steps, w, spec["seed"], prof)
    else:
        run_sb3(env_fn, steps, w, spec["seed"], prof)
    return {**clock.result(), "versions": versions()}


# ---- the parent process ------------------------------------------------------------------
def run_worker(python: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run `worker(spec)` in a fresh process of `python`; exit with its stderr if it fails."""
    proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"run {spec} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def round_steps(steps: int, w: Workload) -> int:
    """Round up so that both marks (N/2, N) fall at the end of a vector step and of an update period."""
    unit = 2 * math.lcm(w.num_envs, w.train_freq)
    return max(unit, -(-steps // unit) * unit)


def fmt_rate(xs: list[float]) -> str:
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}–{max(xs):,.0f})"


def fmt_ratio(xs: list[float]) -> str:
    return f"**{statistics.median(xs):.2f}×** ({min(xs):.2f}–{max(xs):.2f})"


def rate_table(loops: list[str], workloads: list[str], rates: dict[tuple[str, str], list[float]]) -> list[str]:
    head = ["workload", *(f"{LOOP_NAMES[n]} env steps/s" for n in loops),
            *(f"deepq/{LOOP_NAMES[p]}" for p in loops if p != "deepq")]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for wk in workloads:
        cells = [WORKLOADS[wk].title, *(fmt_rate(rates[wk, n]) for n in loops)]
        for p in loops[1:]:
            cells.append(fmt_ratio([d / x for d, x in zip(rates[wk, "deepq"], rates[wk, p], strict=True)]))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def profile_table(loops: list[str], workloads: list[str], prof: dict[tuple[str, str], dict[str, Any]]) -> list[str]:
    head = ["workload", "loop", "env steps/s", "µs per env step", "env", "act", "learn", "other",
            "µs per act", "µs per update", "acts", "updates"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for wk in workloads:
        for n in loops:
            r = prof[wk, n]
            wall, t, c = r["seconds"], r["timers"], r["calls"]
            learn = t.get("sample", 0.0) + t.get("update", 0.0)
            parts = [t.get("env", 0.0), t.get("act", 0.0), learn]
            shares = [*parts, wall - sum(parts)]
            acts, updates = c.get("act", 0), c.get("update", 0)
            rows.append("| " + " | ".join([
                WORKLOADS[wk].title, LOOP_NAMES[n], f"{r['steps'] / wall:,.0f}", f"{1e6 * wall / r['steps']:.0f}",
                *(f"{100 * x / wall:.0f}%" for x in shares),
                f"{1e6 * t.get('act', 0.0) / acts:.0f}" if acts else "–",
                f"{1e6 * learn / updates:.0f}" if updates else "–",
                f"{acts:,}", f"{updates:,}"]) + " |")
    return rows


def machine_line(cmd: str, v: dict[str, str], threads: int, loads: tuple[float, float], seconds: float) -> str:
    """One line: the command, the machine and the versions."""
    cpu = cpu_model()
    vs = ", ".join(f"{k} {v[k]}" for k in ("torch", "gymnasium", "numpy", "stable-baselines3", "deepq") if k in v)
    return (f"`{cmd}` on {cpu}, nproc {os.cpu_count()} (1-min load average {loads[0]:.2f} at start, "
            f"{loads[1]:.2f} at end), Python {v['python']}, {vs}; {threads} torch thread(s) per run, CPU; "
            f"took {seconds:.0f} s.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20_000,
                    help="env steps per run; the rate is measured over the second half (default 20000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per loop and workload, seeds 0.. (default 3)")
    ap.add_argument("--workloads", default="a,b,c", help="comma-separated subset of a,b,c (default a,b,c)")
    ap.add_argument("--peers", default="sb3,textbook", help="comma-separated subset of sb3,textbook, or none")
    ap.add_argument("--no-profile", action="store_true", help="skip the profile runs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads in every run (default 1)")
    ap.add_argument("--python", default=sys.executable,
                    help="interpreter for the runs; it needs deepq, and stable-baselines3 for --peers sb3")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    peers = [p.strip() for p in args.peers.split(",") if p.strip() and p.strip() != "none"]
    bad = [w for w in workloads if w not in WORKLOADS] + [p for p in peers if p not in PEERS]
    if bad or not workloads or args.steps < 2 or args.repeats < 1:
        ap.error(f"unknown or empty choice {bad}: workloads are a,b,c; peers are sb3,textbook; "
                 "--steps >= 2, --repeats >= 1")
    loops = ["deepq", *(p for p in PEERS if p in peers)]
    if "sb3" in loops:
        check = subprocess.run([args.python, "-c", "import stable_baselines3"], capture_output=True, check=False)
        if check.returncode != 0:
            sys.exit(f"stable-baselines3 is not importable by {args.python}: install it with "
                     f"`{args.python} -m pip install stable-baselines3==2.9.2`, or pass --peers textbook")

    load = os.getloadavg()[0]
    start = time.perf_counter()
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    v: dict[str, str] = {}
    for rep in range(args.repeats):
        for wk in workloads:
            steps = round_steps(args.steps, WORKLOADS[wk])
            for loop in loops:  # interleaved, so background load hits every loop alike
                spec = {"loop": loop, "workload": wk, "steps": steps, "seed": rep, "threads": args.threads,
                        "profile": False}
                r = run_worker(args.python, spec)
                v = r["versions"]
                rates[wk, loop].append(r["steps"] / r["seconds"])
                print(f"  repeat {rep + 1}/{args.repeats} {WORKLOADS[wk].title:<28} {LOOP_NAMES[loop]:<8} "
                      f"{rates[wk, loop][-1]:>8,.0f} env steps/s", file=sys.stderr, flush=True)
    prof: dict[tuple[str, str], dict[str, Any]] = {}
    if not args.no_profile:
        for wk in workloads:
            for loop in loops:
                spec = {"loop": loop, "workload": wk, "steps": round_steps(args.steps, WORKLOADS[wk]), "seed": 0,
                        "threads": args.threads, "profile": True}
                prof[wk, loop] = run_worker(args.python, spec)
                print(f"  profiled {WORKLOADS[wk].title:<28} {LOOP_NAMES[loop]}", file=sys.stderr, flush=True)

    cmd = " ".join(["python benchmarks/speed.py", *sys.argv[1:]])
    print("\n" + machine_line(cmd, v, args.threads, (load, os.getloadavg()[0]), time.perf_counter() - start))
    print(f"\nEnv steps/s over the second half of {args.steps:,}-step runs (rounded up per workload to whole "
          f"update periods), median (min–max) of {args.repeats} repeat(s); ratio = median of per-repeat "
          "deepq/peer, > 1 means deepq is faster.\n")
    print("\n".join(rate_table(loops, workloads, rates)))
    if prof:
        print("\nProfile (one timed run per loop, seed 0, same window): share of wall time in the env, "
              "acting (greedy forward), learning (sample + update) and everything else.\n")
        print("\n".join(profile_table(loops, workloads, prof)))
    defaults = _config_defaults_differ()
    if defaults:
        print(f"\nNote: deepq.Config's defaults differ from these settings in {defaults}; the benchmark passes "
              "every setting explicitly.")


def _config_defaults_differ() -> str:
    try:
        import deepq
    except ImportError:
        return ""
    cfg = deepq.Config()
    diff = [f"{k}={getattr(cfg, k)!r} (benchmark: {v!r})" for k, v in SETTINGS.items() if getattr(cfg, k) != v]
    return ", ".join(diff)


if __name__ == "__main__":
    main()
