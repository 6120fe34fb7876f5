"""Target network vs MCTS targets, head to head at equal compute (the same wall-clock minutes of CPU),
and the search's simulations per second, batched vs unbatched.

    python benchmarks/mcts_vs_target.py tictactoe --minutes 4
    python benchmarks/mcts_vs_target.py connect4 --minutes 10
    python benchmarks/mcts_vs_target.py cartpole --minutes 2
    python benchmarks/mcts_vs_target.py speed

Both methods start from the same preset (same network, optimizer, batch size, gradient steps per env
step); the MCTS run sets target='mcts' with --simulations per searched state. The two runs go side by
side, one process each (run this on an otherwise idle 2-core machine). Then both agents play the same
arena as benchmarks/games.py (games) or 20 evaluation episodes (CartPole), greedy, without search.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import deepq

PRESETS = {"tictactoe": "tictactoe", "connect4": "connect4", "cartpole": "cartpole"}


def _train(args: tuple[str, dict[str, Any]]) -> tuple[str, int, float]:
    name, overrides = args
    t = time.perf_counter()
    agent = deepq.train(deepq.preset(name, progress=False).replace(**overrides))
    run = str(agent.run_dir)
    return run, _last_step(run), (time.perf_counter() - t) / 60


def _last_step(run: str) -> int:
    """The env step of the last row of metrics.csv (the last finished episode)."""
    rows = Path(run, "metrics.csv").read_text().splitlines()[1:]
    return max(int(r.split(",")[0]) for r in rows) if rows else 0


def _best_training_mean(run: str, window: int = 20) -> str:
    """The best mean of `window` consecutive training episode rows, weighted by the episodes each holds (CartPole:
    a run can peak, then collapse). A row holds the episodes of one collection: one each for the target network,
    a batch of searched episodes for MCTS."""
    with Path(run, "metrics.csv").open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["episode_return"]]
    if len(rows) < window:
        return f"fewer than {window} training episode rows"
    steps = np.array([int(r["step"]) for r in rows])
    returns = np.array([float(r["episode_return"]) for r in rows])
    count = np.array([float(r.get("episodes_in_row") or 1) for r in rows])  # empty: an older deepq's, one episode
    ones = np.ones(window)
    means = np.convolve(returns * count, ones, mode="valid") / np.convolve(count, ones, mode="valid")
    best = int(means.argmax())
    held = count[best:best + window].sum()
    what = f"{window}-episode" if (count == 1).all() else f"{window}-row ({held:,.0f} episodes)"
    return f"best {what} training mean {means[best]:.1f} (at env step {steps[best + window - 1]:,})"


def measure(run: str, task: str) -> str:
    agent = deepq.load(run)
    if task == "cartpole":
        return f"final agent: {deepq.evaluate(agent, episodes=20)}; {_best_training_mean(run)}"
    sys.path.insert(0, str(Path(__file__).parent))
    from games import measure as games_measure  # benchmarks/games.py: the same arena

    return " | ".join(games_measure(agent, task, 0, 100, 1000))


def speed() -> None:
    """Simulations per second of one search from tic-tac-toe's first position, network leaves."""
    from deepq.core.device import set_cpu_threads
    from deepq.core.mcts import MCTS, MCTSConfig
    from deepq.games.adapters import OpenSpielGame
    from deepq.games.kind import GameKind

    set_cpu_threads(1)  # torch's threads and NumPy's BLAS
    game = OpenSpielGame("tic_tac_toe")
    game.reset(0)
    for fused, evaluator in ((True, "NumPy MLP (deepq's CPU acting path)"), (False, "torch MLP")):
        cfg = deepq.Config(env="openspiel:tic_tac_toe", hidden_sizes=(128, 128), fused=fused, device="cpu")
        agent = deepq.Agent((3, 3, 3), 9, cfg, arch=GameKind(str(cfg.env)).arch(cfg, (3, 3, 3)))  # the board's MLP
        for batch in (1, 4, 16, 64):
            search = MCTS(agent.q_values, MCTSConfig(simulations=800, batch=batch), two_player=True)
            rates = [search.search(game).simulations_per_second for _ in range(5)]
            print(f"{evaluator}, batch {batch:3d}: {np.median(rates):8,.0f} simulations/s (median of 5 searches)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=(*PRESETS, "speed"))
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.task == "speed":
        speed()
        return
    common = {"seed": args.seed, "max_minutes": args.minutes, "total_steps": 10**9, "stop_at_return": None,
              "eval_interval": 0}
    jobs = [(PRESETS[args.task], common),
            (PRESETS[args.task], {**common, "target": "mcts", "mcts_simulations": args.simulations,
                                  "name": f"{args.task}-mcts"})]
    with mp.get_context("spawn").Pool(2) as pool:
        results = pool.map(_train, jobs)
    for (run, steps, minutes), label in zip(results, ("target network", f"MCTS targets ({args.simulations} sims)"),
                                            strict=True):
        print(f"{args.task}, {label}: {steps:,} env steps in {minutes:.1f} min ({run})\n  {measure(run, args.task)}",
              flush=True)


if __name__ == "__main__":
    main()
