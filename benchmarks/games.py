"""Self-play strength, the figures of the README's games section: train a game preset on several
seeds (or load trained runs) and play the arena, every opponent from both seats.

    python benchmarks/games.py tictactoe --seeds 0 1 2      # train each seed, then measure
    python benchmarks/games.py connect4 --seeds 0 --total_steps 600000
    python benchmarks/games.py connect4 --runs runs/connect4-0-...   # measure trained agents only
    python benchmarks/games.py connect4 --runs RUN --search 200      # the agent searches 200 simulations a move
    python benchmarks/games.py connect4 --runs RUN --search 3200 --games 0 --mcts-games 20   # MCTS games only

Tic-tac-toe: greedy games against the perfect player (minimax, choosing at random among its optimal
moves, so games vary) and against uniform random, and the share of all 4,520 reachable non-terminal
positions where the greedy move is optimal. Connect Four: against uniform random and OpenSpiel's
MCTS bot (UCT c=2, 1 random rollout per leaf, `--mcts` simulations per move, solver on).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import deepq
import deepq.games.bot
from deepq.games.arena import arena, mcts_opponent, perfect_opponent, random_opponent
from deepq.games.bot import as_bot
from deepq.games.solve import optimal_move_rate, shared_solver


def measure(agent: deepq.Agent, name: str, seed: int, games: int, mcts: int, search: int = 0,
            mcts_games: int | None = None) -> list[str]:
    """Arena lines for one agent; search > 0: the agent plays with a Q-guided MCTS of that many simulations.
    games per seat against random (0: none), mcts_games (default games // 4) against the MCTS bot."""
    game = as_bot(agent).game.game

    def bot(player: int) -> deepq.games.bot.AgentBot:
        return as_bot(agent, mcts_simulations=search)

    lines = [str(arena(game, bot, random_opponent(game, seed), games, seed=seed))] if games else []
    if name == "tictactoe":  # connect4 and connect4-mcts: random and MCTS opponents
        lines.append(str(arena(game, bot, perfect_opponent(game, seed), games // 2, seed=seed)))
        rate, n = optimal_move_rate(shared_solver(game.get_type().short_name), bot(0).step)
        lines.append(f"{'searched' if search else 'greedy'} move optimal in {rate:.2%} of {n:,} reachable positions")
    else:
        t = time.perf_counter()
        n = games // 4 if mcts_games is None else mcts_games
        lines.append(str(arena(game, bot, mcts_opponent(game, mcts, seed), n, seed=seed))
                     + f" ({time.perf_counter() - t:.0f} s)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", choices=("tictactoe", "connect4", "connect4-mcts"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--runs", nargs="+", help="measure these trained runs instead of training")
    parser.add_argument("--total_steps", type=int, help="override the preset's training length (plies)")
    parser.add_argument("--games", type=int, default=200, help="games per seat against random (others fewer)")
    parser.add_argument("--mcts", type=int, default=1000, help="MCTS simulations per move (connect4)")
    parser.add_argument("--mcts-games", type=int, help="games per seat against MCTS (default: --games / 4)")
    parser.add_argument("--search", type=int, default=0,
                        help="the agent plays with a Q-guided search of this many simulations (default: greedy)")
    args = parser.parse_args()
    if args.runs:
        for run in args.runs:
            agent = deepq.load(run)
            lines = measure(agent, args.preset, agent.cfg.seed, args.games, args.mcts, args.search, args.mcts_games)
            print(f"{run}:", *lines, sep="\n  ", flush=True)
        return
    for seed in args.seeds:
        overrides = {"total_steps": args.total_steps} if args.total_steps else {}
        cfg = deepq.preset(args.preset, seed=seed, progress=False, **overrides)
        t = time.perf_counter()
        agent = deepq.train(cfg)
        minutes = (time.perf_counter() - t) / 60
        assert agent.run_dir is not None
        run = Path(agent.run_dir)
        print(f"{args.preset} seed {seed}: {cfg.total_steps:,} plies, {minutes:.1f} min on CPU ({run})",
              *measure(agent, args.preset, seed, args.games, args.mcts, args.search, args.mcts_games),
              sep="\n  ", flush=True)


if __name__ == "__main__":
    main()
