"""What runs inside one measuring process of benchmarks/throughput.py (its docstring says how and why), and the
workloads' deepq configs and FLOPs, which the parent reads too. Run as

    python benchmarks/throughput_worker.py '{"kind": "train", "workload": "pqn-cartpole", "seed": 0,
        "total_steps": 51200, "window_start": 10240}'          # also kind "acting" and "peak"

it prints one `RESULT {json}` line. torch, deepq and selfplay_speed are imported inside the functions, so the parent
can import this module for the configs and the FLOPs alone.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FINAL_EVAL_EPISODES = 10  # the final (greedy) evaluation after the window: a learning check


def deepq_config(key: str, steps: int, seed: int, run_dir: str) -> Any:
    """The workload's deepq.Config, with the benchmark's run settings (no periodic eval or checkpoints)."""
    import deepq

    run: dict[str, Any] = {
        "total_steps": steps, "seed": seed, "eval_interval": 0, "checkpoint_interval": 0, "progress": False,
        "eval_episodes": FINAL_EVAL_EPISODES, "stop_at_return": None, "run_dir": run_dir, "device": "cpu", "threads": 1}
    if key == "pqn-cartpole":
        return deepq.preset("cartpole-pqn", **run)
    if key == "pqn-breakout-mlp":
        return deepq.preset("minatar-breakout-pqn", arch="mlp", hidden_sizes=(256, 256), **run)
    if key == "pqn-breakout-cnn":
        return deepq.preset("minatar-breakout-pqn", **run)
    if key == "dqn-cartpole":
        from speed import SETTINGS

        return deepq.Config(env="CartPole-v1", num_envs=1, train_freq=1, gradient_steps=1, loss="mse", double=False,
                            max_grad_norm=0.0, target="hard", eps_schedule="linear", **SETTINGS, **run)
    if key in ("c4-dqn", "c4-acting"):  # acting: only the network (its FLOPs) is read
        return deepq.preset("connect4", **run)
    if key == "c4-pqn-preset":
        return deepq.preset("connect4-pqn", **run)
    if key == "c4-pqn":
        pqn = deepq.preset("minatar-breakout-pqn")
        fields = ("target", "layer_norm", "optimizer", "max_grad_norm", "loss", "learning_starts", "num_envs",
                  "rollout_len", "q_lambda", "epochs", "minibatches", "lr", "lr_decay")
        return deepq.preset("connect4", double=False, **{f: getattr(pqn, f) for f in fields}, **run)
    raise KeyError(key)


def forward_flops(cfg: Any, obs_shape: tuple[int, ...], n_actions: int) -> int:
    """Multiply-adds x 2 of one forward pass (one observation) of the built-in MLP or small CNN."""
    if cfg.arch == "small_cnn":
        c, h, w = math.prod(obs_shape[:-2]), obs_shape[-2], obs_shape[-1]
        flat = 16 * (h - 2) * (w - 2)
        return 2 * (flat * c * 9 + flat * 128 + 128 * n_actions)
    dims = [math.prod(obs_shape), *cfg.hidden_sizes, n_actions]
    return 2 * sum(a * b for a, b in itertools.pairwise(dims))


def flops_per_step(cfg: Any, fwd: int, kind: str) -> float:
    """Network FLOPs per env step (module docstring: acting, the target or λ-return pass, training)."""
    if kind == "acting":
        return fwd
    if cfg.target == "pqn":
        return fwd * (1 + 3 * cfg.epochs * (2 if cfg.mirror else 1))
    per_sample = fwd * (1 + int(cfg.double) + 3)
    return fwd + cfg.gradient_steps / cfg.train_freq * cfg.batch_size * per_sample


def measured_forward_flops(net: Any, obs_shape: tuple[int, ...]) -> int:
    """The same count from the network itself: forward hooks on its Linear and Conv2d layers, one observation."""
    import torch
    from torch import nn

    total = 0

    def hook(mod: nn.Module, inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Linear):
            total += 2 * mod.in_features * mod.out_features
        elif isinstance(mod, nn.Conv2d):
            k = math.prod(mod.kernel_size) * mod.in_channels // mod.groups
            total += 2 * k * out[0].numel()

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with torch.no_grad():
            net(torch.zeros((1, *obs_shape)))
    finally:
        for h in handles:
            h.remove()
    return total


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """Reads wall and CPU time the first time the env step count reaches `start`, and `stop`."""

    def __init__(self, start: int, stop: int) -> None:
        self.start, self.stop = start, stop
        self.marks: list[tuple[int, float, float]] = []

    def mark(self, step: int) -> None:
        if (not self.marks and step >= self.start) or (len(self.marks) == 1 and step >= self.stop):
            self.marks.append((step, time.perf_counter(), cpu_seconds()))

    def result(self) -> dict[str, float]:
        if len(self.marks) != 2:
            raise RuntimeError(f"the clock read {len(self.marks)} of its 2 marks: deepq's loop no longer calls "
                               "deepq.training.loop.make_experience, or the run stopped early; update the hook")
        (s0, t0, c0), (s1, t1, c1) = self.marks
        return {"steps": s1 - s0, "seconds": t1 - t0, "cpu_per_wall": (c1 - c0) / (t1 - t0)}


def train_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """deepq.train on the workload, timed between the collects that reach window_start and total_steps."""
    import torch

    torch.set_num_threads(1)
    import deepq
    from deepq.training import loop

    clock = Clock(spec["window_start"], spec["total_steps"])
    make_experience = loop.make_experience

    def clocked(*args: Any, **kwargs: Any) -> Any:  # the loop's mode, its collect followed by a clock mark
        mode = make_experience(*args, **kwargs)
        collect = mode.collect

        def timed(state: Any, *rest: Any, **named: Any) -> Any:  # collect(state, eps_at, ...) -> what it returns
            got = collect(state, *rest, **named)
            clock.mark(state.step)
            return got
        mode.collect = timed  # type: ignore[method-assign]
        return mode

    loop.make_experience = clocked  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as d:
        cfg = deepq_config(spec["workload"], spec["total_steps"], spec["seed"], str(Path(d) / "run"))
        agent = deepq.train(cfg)
    final = agent.final_evaluation  # type: ignore[attr-defined]
    out: dict[str, Any] = {**clock.result(), "final_return": float(final.mean), "deepq_path": deepq.__file__}
    try:
        out["obs_shape"], out["n_actions"] = list(agent.obs_shape), agent.n_actions
        out["fwd_flops_measured"] = measured_forward_flops(agent.online, tuple(agent.obs_shape))
    except Exception as e:  # only a check; deepq's internals may move
        out["fwd_flops_measured"] = f"not measured: {type(e).__name__}: {e}"
    return out


def acting_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """selfplay_speed.acting_rate in this pinned process; its plies/s is the rate."""
    import torch

    torch.set_num_threads(1)
    from selfplay_speed import acting_rate  # benchmarks/ is sys.path[0]: this file's folder

    result = acting_rate(spec["backend"], spec["num_envs"], spec["seconds"])
    if "plies_per_s" not in result:
        raise RuntimeError(f"acting_rate returned no plies_per_s among {sorted(result)}")
    rate, per_cpu = float(result["plies_per_s"]), result.get("plies_per_cpu_s")
    return {"rate": rate, "cpu_per_wall": rate / per_cpu if per_cpu else 1.0,
            "acting_rate": {k: v for k, v in result.items() if isinstance(v, (int, float, str))}}


def peak_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """Single-thread float32 sgemm GFLOP/s: best of 3 rounds of at least 0.5 s of 2048x2048 products, per second
    of this thread's CPU time (so another process sharing the core does not lower it; per wall second beside)."""
    import torch

    torch.set_num_threads(1)
    n = spec.get("n", 2048)
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = a @ b
    best, best_wall = 0.0, 0.0
    for _ in range(3):
        t, w, k = time.thread_time(), time.perf_counter(), 0
        while time.thread_time() - t < 0.5:
            torch.mm(a, b, out=c)
            k += 1
        best = max(best, 2 * n**3 * k / (time.thread_time() - t))
        best_wall = max(best_wall, 2 * n**3 * k / (time.perf_counter() - w))
    return {"gflops": best / 1e9, "gflops_wall": best_wall / 1e9, "n": n, "threads": torch.get_num_threads()}


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    out = {"train": train_worker, "acting": acting_worker, "peak": peak_worker}[spec["kind"]](spec)
    return {**out, "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("RESULT " + json.dumps(worker(json.loads(sys.argv[1]))), flush=True)
