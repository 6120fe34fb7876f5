"""The GPU check's profile: where a training run's time goes on the device, as text.

    python benchmarks/gpu/part_profile.py --device cuda --results RESULTS.jsonl --text profile.txt [--tiny]

One short deepq.train run per preset (cartpole: one env, an MLP update every step; atari-pqn: 128 EnvPool envs,
Nature CNN); torch.profiler (CPU and CUDA activity) records a window of it: 300 env steps of cartpole after its
first 1,000, two rollouts of atari-pqn after the first. The loop's pieces are wrapped in named ranges and timed
on the host over the whole loop: env (the vector env's step), act (the Q forward pass that acting takes),
replay (adding and sampling, DQN), returns (PQN's λ-returns of a rollout), learn (the update: loss, backward,
optimizer step and its finite-loss check); other is the rest of the loop's time (ε, episode bookkeeping,
logging, target syncs). The text has that split and torch's operator tables of the window (the 25 operators
with the most self time on the device, then on the host). Rates are part_runs.py's.
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import missing_for, record

PROFILE_PRESETS = ("cartpole", "atari-pqn")
TINY = dict(num_envs=8, rollout_len=16, minibatches=4)


def timed(fn: Callable[..., Any], label: str, seconds: dict[str, float]) -> Callable[..., Any]:
    """fn in a profiler range named `label`, its host time added to seconds[label]; seconds["first"] and
    seconds["last"] keep the span of all such calls (the loop's time, without set-up and saving)."""
    import torch

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with torch.profiler.record_function(label):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            end = time.perf_counter()
            seconds[label] += end - t
            seconds["first"] = min(seconds.get("first", t), t)
            seconds["last"] = end
            return out
    return wrapper


def instrument(mode: Any, seconds: dict[str, float]) -> None:
    """Wrap the loop's pieces on this run's objects (nothing of deepq's code changes)."""
    mode.envs.step = timed(mode.envs.step, "env", seconds)
    policy = mode.agent.policy
    policy.q_values = timed(policy.q_values, "act", seconds)  # Policy.act and explore call it
    learner = mode.agent.learner
    for name in ("update", "fit_returns", "fit_targets"):
        setattr(learner, name, timed(getattr(learner, name), "learn", seconds))
    if hasattr(mode, "memory"):
        mode.memory.add = timed(mode.memory.add, "replay", seconds)
        mode.memory.sample = timed(mode.memory.sample, "replay", seconds)
    if hasattr(mode, "rollout"):
        mode.rollout.returns = timed(mode.rollout.returns, "returns", seconds)


def profile(preset: str, device: str, seconds: float, tiny: bool) -> tuple[dict[str, Any], str]:
    import torch

    import deepq
    from deepq.core.results import EvalResult
    from deepq.training import loop

    cfg = deepq.preset(preset, device=device, total_steps=10**9, max_minutes=seconds / 60, eval_interval=0,
                       stop_at_return=None, checkpoint_interval=0, progress=False, seed=0)
    if preset == "cartpole":
        cfg = cfg.replace(learning_starts=200)  # the profile is of the steady state: updates from the start
    if tiny and cfg.target == "pqn":
        cfg = cfg.replace(**TINY)
    # The profiler records a window of collect calls (and the updates after each), not the whole run: a whole
    # cartpole run is ~10^6 operator events, which took torch longer to tabulate than the run itself.
    wait, active = ((0, 1) if tiny else (1, 2)) if cfg.target == "pqn" else ((250, 50) if tiny else (1_000, 300))
    activities = [torch.profiler.ProfilerActivity.CPU]
    cuda = device.startswith("cuda")
    if cuda:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    prof = torch.profiler.profile(activities=activities,
                                  schedule=torch.profiler.schedule(wait=wait, warmup=1, active=active, repeat=1))
    spent: dict[str, float] = defaultdict(float)
    make_experience = loop.make_experience

    def instrumented(*args: Any, **kwargs: Any) -> Any:
        mode = make_experience(*args, **kwargs)
        instrument(mode, spent)
        collect = mode.collect

        def stepped(*a: Any, **k: Any) -> Any:
            got = collect(*a, **k)
            prof.step()  # one profiler step per collect call
            return got
        mode.collect = stepped
        return mode

    loop.make_experience = instrumented  # type: ignore[assignment]
    loop.evaluate_kind = lambda *a, **k: EvalResult([0.0], [0], "not evaluated: a profile")  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as d, prof:
        start = time.perf_counter()
        deepq.train(cfg.replace(run_dir=str(Path(d) / "run")))
        wall = time.perf_counter() - start
    span = spent.pop("last") - spent.pop("first")  # the loop, from its first env step or act to its last update
    split = {k: round(100 * v / span, 1) for k, v in sorted(spent.items())}
    split["other"] = round(100 - sum(split.values()), 1)
    averages = prof.key_averages()
    what = "collect calls (env steps)" if cfg.target != "pqn" else "rollouts"
    lines = [f"== {preset} on {device}: {span:.1f} s of training loop ({wall:.1f} s of deepq.train with set-up) ==",
             "share of the loop's time (host clocks, whole loop): " + ", ".join(f"{k} {v}%" for k, v in split.items()),
             f"operator tables: {active} {what} after the first {wait + 1}, and their updates"
             + ("" if len(averages) else " (the run ended before them: no table)"), ""]
    if cuda and len(averages):
        lines += ["-- operators by self time on the device --",
                  averages.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60), ""]
    if len(averages):
        lines += ["-- operators by self time on the host --",
                  averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60), ""]
    return {"loop_s": round(span, 1), "percent_of_loop": split}, "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--text", type=Path, required=True, help="the profile tables are appended here")
    ap.add_argument("--seconds", type=float, default=8.0, help="training seconds per profiled run (default 8)")
    ap.add_argument("--preset", choices=PROFILE_PRESETS, help="one preset (run.sh runs each in its own process)")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    for preset in [args.preset] if args.preset else PROFILE_PRESETS:
        why = missing_for(preset)
        if why:
            record(args.results, "profile", preset=preset, skipped=why)
            continue
        summary, text = profile(preset, args.device, args.seconds, args.tiny)
        with open(args.text, "a") as f:
            f.write(text + "\n")
        record(args.results, "profile", preset=preset, device=args.device, **summary)


if __name__ == "__main__":
    main()
