"""The GPU check's learning result: the atari-pqn preset on Pong for the minutes the check has left.

    python benchmarks/gpu/part_pong.py --device cuda --minutes 3 --results RESULTS.jsonl --out OUT [--tiny]

The preset as it is (128 EnvPool envs, Nature CNN with LayerNorm, PQN), seed 0, trained for --minutes of
wall-clock time (max_minutes) or until an evaluation reaches 18 (stop_at_return; the goal for a later, longer
lease: Pong >= 18 within 15 minutes). Every 500,000 env steps 5 greedy episodes are played; each evaluation is
recorded with the wall-clock seconds since training began (results, "pong_eval"), so the curve can be read
against time. The run's metrics.csv (every training episode's return, and the evaluations) and its learning
curve are copied to OUT as pong-metrics.csv and pong-curve.png. A SIGINT (run.sh's limit) stops the run at a
checkpoint, and the files are still written. The dry run (--tiny): 8 envs, short rollouts and evaluations.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from common import missing_for, record

TINY = dict(num_envs=8, rollout_len=16, minibatches=4, eval_interval=256, eval_episodes=1, max_episode_frames=2_000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--minutes", type=float, required=True, help="training minutes (max_minutes)")
    ap.add_argument("--results", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="folder for pong-metrics.csv and pong-curve.png")
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    why = missing_for("atari-pqn")
    if why:
        record(args.results, "pong", skipped=why)
        return
    import deepq
    from deepq.run.plot import plot_learning_curve

    overrides: dict[str, Any] = dict(env="ALE/Pong-v5", device=args.device, seed=0, max_minutes=args.minutes,
                                     eval_interval=500_000, eval_episodes=5, stop_at_return=18.0, progress=False)
    if args.tiny:
        overrides.update(TINY)
    cfg = deepq.preset("atari-pqn", **overrides)
    start = time.perf_counter()

    def on_evaluation(step: int, result: Any) -> None:
        record(args.results, "pong_eval", seconds=round(time.perf_counter() - start, 1), step=step,
               mean=round(result.mean, 2), std=round(result.std, 2), returns=result.returns)

    with tempfile.TemporaryDirectory() as d:
        run = Path(d) / "pong"
        outcome = "finished"
        final: dict[str, Any] = {}
        try:
            agent = deepq.train(cfg.replace(run_dir=str(run)), on_evaluation=on_evaluation)
            result = agent.final_evaluation
            assert result is not None
            final = {"final_mean": round(result.mean, 2), "final_returns": result.returns}
        except deepq.RunInterrupted:
            outcome = "stopped by run.sh's time limit (checkpoint saved, no final evaluation)"
        seconds = time.perf_counter() - start
        steps = last_step(run / "metrics.csv")
        if not (run / "learning_curve.png").exists() and (run / "metrics.csv").exists():
            plot_learning_curve(run, title=f"atari-pqn on Pong (seed 0, {args.device})", threshold=18.0)
        args.out.mkdir(parents=True, exist_ok=True)
        for name, target in (("metrics.csv", "pong-metrics.csv"), ("learning_curve.png", "pong-curve.png")):
            if (run / name).exists():
                shutil.copyfile(run / name, args.out / target)
    record(args.results, "pong", device=args.device, outcome=outcome, minutes_asked=round(args.minutes, 2),
           seconds=round(seconds, 1), steps=steps, env_steps_per_s=round(steps / seconds, 1) if seconds else 0,
           num_envs=cfg.num_envs, **final)


def last_step(metrics: Path) -> int:
    """The last step metrics.csv reached (its first column)."""
    if not metrics.exists():
        return 0
    rows = [ln.split(",", 1)[0] for ln in metrics.read_text().splitlines()[1:] if ln]
    return max((int(r) for r in rows if r.isdigit()), default=0)


if __name__ == "__main__":
    main()
