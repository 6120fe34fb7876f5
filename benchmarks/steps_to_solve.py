"""Env steps until the greedy evaluation mean reaches the preset's threshold, over several seeds.

    python benchmarks/steps_to_solve.py cartpole --seeds 10 --budget 30000
    python benchmarks/steps_to_solve.py cartpole --seeds 10 --set lr=5e-4 --set double=false
    python benchmarks/steps_to_solve.py cartpole --seeds 10 --budget 30000 --keep-runs runs/solve

Each seed trains the preset (stopping once solved) in its own process; the table shows the
first env step at which a periodic evaluation (eval_episodes greedy episodes, fresh seeds)
reached `stop_at_return`, and how many seeds did so within the budget. The run directories
(`PRESET-SEED/` with config.json and metrics.csv) are removed at the end unless `--keep-runs DIR`
names where to keep them; `benchmarks/plots.py` draws learning curves from kept ones.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import deepq


def run_seed(preset: str, seed: int, budget: int, overrides: dict[str, Any], root: str,
             final_episodes: int = 10) -> dict[str, Any]:
    cfg = deepq.preset(preset, seed=seed, total_steps=budget, progress=False, checkpoint_interval=0,
                       run_dir=str(Path(root) / f"{preset}-{seed}"), **overrides)
    start = time.perf_counter()
    agent = deepq.train(cfg)
    wall = time.perf_counter() - start
    with (Path(cfg.run_dir) / "metrics.csv").open(newline="") as f:
        # periodic evaluations only: the row of the saved agent's final evaluation (eval_kind "final") is no
        # stopping point, and counting it would call a run solved that never stopped
        evals = [(int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f)
                 if r["eval_return"] and r.get("eval_kind") != "final"]
    solved = next((s for s, m in evals if cfg.stop_at_return is not None and m >= cfg.stop_at_return), None)
    final = deepq.evaluate(agent, episodes=final_episodes, seed=10_000 + seed).mean  # fresh, never seen in training
    return {"seed": seed, "solved_at": solved, "final_eval": final, "wall_s": wall,
            "best_eval": max((m for _, m in evals), default=float("nan"))}


def parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        low = text.lower()
        return {"true": True, "false": False, "none": None}.get(low, text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--budget", type=int, default=None, help="env steps per seed (default: the preset's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--final-episodes", type=int, default=10, help="fresh greedy episodes to score each final agent")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="config override")
    ap.add_argument("--keep-runs", default=None, metavar="DIR",
                    help="keep each seed's run directory as DIR/PRESET-SEED (default: a temporary directory)")
    args = ap.parse_args()
    overrides = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    budget = args.budget or deepq.preset(args.preset).total_steps
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    if args.keep_runs is not None:
        Path(args.keep_runs).mkdir(parents=True, exist_ok=True)
    keep = contextlib.nullcontext(args.keep_runs) if args.keep_runs is not None else tempfile.TemporaryDirectory()
    with keep as root, ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run_seed, [args.preset] * len(seeds), seeds, [budget] * len(seeds),
                             [overrides] * len(seeds), [root] * len(seeds), [args.final_episodes] * len(seeds)))
    print(f"preset {args.preset}, overrides {overrides or '{}'}, budget {budget:,} env steps")
    print(f"{'seed':>4}  {'solved at step':>14}  {'best eval':>9}  {'final eval':>10}  {'wall s':>6}")
    for r in rows:
        at = f"{r['solved_at']:,}" if r["solved_at"] is not None else "not solved"
        print(f"{r['seed']:>4}  {at:>14}  {r['best_eval']:>9.1f}  {r['final_eval']:>10.1f}  {r['wall_s']:>6.1f}")
    solved = [r["solved_at"] for r in rows if r["solved_at"] is not None]
    print(f"solved within budget: {len(solved)}/{len(rows)} seeds"
          + (f"; steps to solve median {statistics.median(solved):,.0f}, max {max(solved):,}" if solved else ""))
    finals = [r["final_eval"] for r in rows]
    print(f"final agent, {args.final_episodes} fresh greedy episodes: mean over seeds {statistics.mean(finals):.1f}, "
          f"min {min(finals):.1f}")


if __name__ == "__main__":
    main()
