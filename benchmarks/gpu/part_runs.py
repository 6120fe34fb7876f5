"""The GPU check's whole-run speed: env steps per second of deepq.train on a preset, on the device and on CPU.

    python benchmarks/gpu/part_runs.py --device cuda --results RESULTS.jsonl [--seconds 10] [--tiny]

Each run is a fresh process (as benchmarks/speed.py's) training the preset as users get it, with
max_minutes bounding it, no periodic evaluation or checkpoint, and the final evaluation skipped. The clock is read
after every collect call (an env step for DQN presets, a whole rollout for PQN ones); the rate is taken from the
first reading after a quarter of the run (and after learning_starts) to the last, so start-up, the imports and
the replay warm-up are outside it, and everything the loop does per step (acting, storing, the updates, λ-returns,
logging) inside. Presets: cartpole (1 env, an MLP update every step), minatar-breakout-pqn (128 MinAtar envs,
small CNN) and atari-pqn (128 EnvPool Atari envs on all cores, Nature CNN). CPU runs use 1 torch thread for the
MLP and MinAtar, all cores for Atari. The dry run (--tiny) shrinks the PQN rollouts to 8 envs x 16 steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Deadline, cpu_threads, device_name, missing_for, record

RUN_PRESETS = ("cartpole", "minatar-breakout-pqn", "atari-pqn")
TINY = dict(num_envs=8, rollout_len=16, minibatches=4)  # the dry run's PQN rollouts


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One timed deepq.train run in this process."""
    import deepq
    from deepq.core.results import EvalResult
    from deepq.training import loop

    marks: list[tuple[float, int]] = []
    make_experience = loop.make_experience

    def timed_experience(*args: Any, **kwargs: Any) -> Any:
        mode: Any = make_experience(*args, **kwargs)
        collect = mode.collect

        def timed_collect(state: Any, eps_at: Any) -> Any:
            got = collect(state, eps_at)
            marks.append((time.perf_counter(), state.step))
            return got
        mode.collect = timed_collect  # this run's object only
        return mode

    loop.make_experience = timed_experience  # type: ignore[assignment]
    loop.evaluate_kind = lambda *a, **k: EvalResult([0.0], [0], "not evaluated: a speed run")  # type: ignore[assignment]
    cfg = deepq.preset(spec["preset"], device=spec["device"], threads=spec["threads"], total_steps=10**9,
                       max_minutes=spec["seconds"] / 60, eval_interval=0, stop_at_return=None, checkpoint_interval=0,
                       progress=False, seed=0)
    if spec["tiny"] and cfg.target == "pqn":
        cfg = cfg.replace(**TINY)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        deepq.train(cfg.replace(run_dir=str(Path(d) / "run")))
    wall = time.perf_counter() - start
    if len(marks) < 2:
        raise RuntimeError(f"only {len(marks)} collect call(s) in {wall:.0f} s")
    t0 = marks[0][0]
    window = [m for m in marks if m[0] - t0 >= 0.25 * (marks[-1][0] - t0) and m[1] >= cfg.learning_starts]
    window = window if len(window) >= 2 else marks
    (ta, sa), (tb, sb) = window[0], window[-1]
    return {"env_steps_per_s": round((sb - sa) / (tb - ta), 1), "window_steps": sb - sa,
            "window_s": round(tb - ta, 2), "steps": marks[-1][1], "wall_s": round(wall, 1),
            "num_envs": cfg.num_envs}


def run_worker(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--results", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0, help="training seconds per run (default 10)")
    ap.add_argument("--budget", type=float, default=105.0, help="seconds for the whole part; later runs skip")
    ap.add_argument("--presets", default=",".join(RUN_PRESETS))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return
    deadline = Deadline(args.budget)
    devices = [args.device] + (["cpu"] if args.device != "cpu" else [])
    for preset in [p for p in args.presets.split(",") if p]:
        why = missing_for(preset)
        for device in devices:
            if why:
                record(args.results, "runs", preset=preset, device=device, skipped=why)
                continue
            need = args.seconds + 15  # start-up (imports, CUDA, 128 envs) and the end of the run
            if deadline.left() < need:
                record(args.results, "runs", preset=preset, device=device, skipped="out of the part's time")
                continue
            threads = cpu_threads(preset, args.tiny) if device == "cpu" else 1
            spec = {"preset": preset, "device": device, "threads": threads, "seconds": args.seconds,
                    "tiny": args.tiny}
            try:
                r = run_worker(spec, timeout=min(deadline.left(), need + 30))
                record(args.results, "runs", preset=preset, on=device, device=device_name(device), threads=threads, **r)
            except (RuntimeError, subprocess.TimeoutExpired) as e:
                record(args.results, "runs", preset=preset, device=device, error=str(e)[-400:])


if __name__ == "__main__":
    main()
