"""Connect Four agents against exactly solved positions (issue #33): from the opening, the middle and the end of the
game, is the agent's greedy move one that keeps the position's game-theoretic value?

    python benchmarks/c4_solved_positions.py benchmarks/results/connect4/pqn-mlp512x3-30M/seed-0
    python benchmarks/c4_solved_positions.py RUN_A RUN_B --positions 300 --seed 0 \\
        --phases opening:8-12,middle:16-24,end:28-36

How: each phase `name:lo-hi` gets an equal share of --positions. A position is made by playing uniformly random legal
moves from the empty board for k plies (k drawn uniformly from lo..hi), retried until the game is still going after
the k-th ply (--source selfplay: a few random opening moves, then the agent's own greedy play up to ply k, so the
positions are those its games reach). The same seed gives the same positions, whatever the agents.

Every position is solved exactly (benchmarks/c4solver: bitboard negamax, a C library built on first use): the
score of each move for its player, the position's value (win, draw or loss for the player to move) being the best
move's. The agent sees the position as in training: the OpenSpiel connect_four state after the moves, encoded by
deepq's adapter from the player to move (deepq/games/adapters.py: that player's stones plane first, then the
opponent's, then the empty cells), with its legal columns as the mask, and plays its greedy move (Agent.act). Its
move is an error if it lowers the value: win -> draw, win -> loss or draw -> loss; it is optimal if its exact score
is the best one (the fastest win, the slowest loss). The main figure is `kept`: the share of positions where the
agent's move keeps the value.

Opening positions cost the most to solve (8 random plies: ~1-2 s each on one core, the odd one ~10 s; fewer plies
grow quickly: a position of 4 stones takes about a minute). The solver keeps its table between positions.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: the c4solver package beside this file
from c4solver import solve_all, value

GAME = "openspiel:connect_four"
WIDTH, HEIGHT = 7, 6
ERRORS = ("win->draw", "win->loss", "draw->loss")
NAMES = {1: "win", 0: "draw", -1: "loss"}


@dataclass
class Phase:
    name: str
    lo: int
    hi: int


@dataclass
class Position:
    phase: str
    moves: str  # columns '1'..'7' from the empty board
    scores: list[int | None]  # each move's exact score for the player to move; None: full column

    @property
    def best(self) -> int:
        return max(s for s in self.scores if s is not None)


@dataclass
class Tally:
    positions: int = 0
    values: dict[int, int] = field(default_factory=lambda: {1: 0, 0: 0, -1: 0})
    kept: int = 0
    optimal: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERRORS, 0))
    solve_s: float = 0.0

    def add(self, pos: Position, move: int) -> None:
        score = pos.scores[move]
        assert score is not None, f"the agent played the full column {move + 1} in {pos.moves!r}"
        before, after = value(pos.best), value(score)
        self.positions += 1
        self.values[before] += 1
        self.kept += after >= before
        self.optimal += score == pos.best
        if after < before:
            self.errors[f"{NAMES[before]}->{NAMES[after]}"] += 1


def parse_phases(text: str) -> list[Phase]:
    """'opening:8-12,middle:16-24' -> phases; plies from 0 to 41 (a position with a move left to play)."""
    phases = []
    for part in text.split(","):
        name, _, span = part.partition(":")
        lo, _, hi = span.partition("-")
        try:
            phase = Phase(name.strip(), int(lo), int(hi or lo))
        except ValueError:
            raise SystemExit(f"--phases: {part!r} is not name:lo-hi (e.g. opening:8-12)") from None
        if not (phase.name and 0 <= phase.lo <= phase.hi < WIDTH * HEIGHT):
            raise SystemExit(f"--phases: {part!r} needs a name and 0 <= lo <= hi <= 41 plies")
        phases.append(phase)
    return phases


def spiel_state(game: object, moves: str) -> object:
    """The pyspiel state after `moves` (OpenSpiel's actions are the 0-based columns)."""
    state = game.new_initial_state()  # type: ignore[attr-defined]
    for ch in moves:
        state.apply_action(int(ch) - 1)
    return state


class Player:
    """An agent's greedy move for a position, its input encoded by deepq's own adapter as in training."""

    def __init__(self, path: str) -> None:
        import deepq
        from deepq.games.bot import game_of

        self.path = path
        self.agent = deepq.load(path)
        if self.agent.cfg.env != GAME:
            raise SystemExit(f"{path} was trained on {self.agent.cfg.env!r}, not {GAME!r}")
        self.adapter = game_of(self.agent)  # deepq's OpenSpielGame: encode() is what self-play trains on

    def moves(self, positions: list[str]) -> list[int]:
        """The agent's greedy column (0-based) for each position, in one batch."""
        if not positions:
            return []
        states = [spiel_state(self.adapter.game, m) for m in positions]
        obs = np.stack([self.adapter.encode(s, s.current_player()) for s in states])  # type: ignore[attr-defined]
        legal = np.stack([self.adapter.legal(s) for s in states])
        return [int(a) for a in self.agent.act(obs, legal)]


def sample_moves(rng: random.Random, plies: int, game: object, opening: int = 0, player: Player | None = None) -> str:
    """A game still going after `plies` plies: uniformly random legal moves, or (`player`) `opening` random moves
    and then the agent's greedy moves. Retried until the game has not ended."""
    while True:
        state = game.new_initial_state()  # type: ignore[attr-defined]
        moves = ""
        while len(moves) < plies and not state.is_terminal():  # type: ignore[attr-defined]
            if player is not None and len(moves) >= opening:
                col = player.moves([moves])[0]
            else:
                col = rng.choice(state.legal_actions())  # type: ignore[attr-defined]
            state.apply_action(col)  # type: ignore[attr-defined]
            moves += str(col + 1)
        if len(moves) == plies and not state.is_terminal():  # type: ignore[attr-defined]
            return moves


def sample_positions(phases: list[Phase], count: int, seed: int, game: object, source: str, opening: int,
                     player: Player | None) -> list[Position]:
    """`count` positions in all, an equal share per phase (the first phases get the remainder), solved."""
    rng = random.Random(seed)
    positions = []
    for i, phase in enumerate(phases):
        share = count // len(phases) + (i < count % len(phases))
        for _ in range(share):
            plies = rng.randint(phase.lo, phase.hi)
            if source == "selfplay":
                moves = sample_moves(rng, plies, game, min(opening, plies), player)
            else:
                moves = sample_moves(rng, plies, game)
            positions.append(Position(phase.name, moves, []))
    return positions


def check(player: Player, positions: list[Position], phases: list[Phase]) -> dict[str, Tally]:
    moves = player.moves([p.moves for p in positions])
    tallies = {ph.name: Tally() for ph in phases}
    for pos, move in zip(positions, moves, strict=True):
        tallies[pos.phase].add(pos, move)
    return tallies


def table(tallies: dict[str, Tally], phases: list[Phase]) -> str:
    head = (f"{'phase':<9} {'plies':>6} {'positions':>9} {'win/draw/loss':>14} {'kept':>7} {'optimal':>8} "
            f"{'win->draw':>9} {'win->loss':>9} {'draw->loss':>10} {'solve s':>8}")
    lines = [head, "-" * len(head)]
    total = Tally()
    rows = [(ph.name, f"{ph.lo}-{ph.hi}", tallies[ph.name]) for ph in phases]
    for t in tallies.values():
        total.positions += t.positions
        total.kept += t.kept
        total.optimal += t.optimal
        total.solve_s += t.solve_s
        for k in t.values:
            total.values[k] += t.values[k]
        for k in t.errors:
            total.errors[k] += t.errors[k]
    for name, plies, t in [*rows, ("all", "", total)]:
        n = max(t.positions, 1)
        wdl = f"{t.values[1]}/{t.values[0]}/{t.values[-1]}"
        lines.append(f"{name:<9} {plies:>6} {t.positions:>9} {wdl:>14} {100 * t.kept / n:>6.1f}% "
                     f"{100 * t.optimal / n:>7.1f}% {t.errors['win->draw']:>9} {t.errors['win->loss']:>9} "
                     f"{t.errors['draw->loss']:>10} {t.solve_s:>8.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("agents", nargs="+", metavar="RUN_DIR_OR_AGENT", help="run directories or agent.pt files")
    p.add_argument("--positions", type=int, default=300, help="positions in all, split evenly across the phases")
    p.add_argument("--seed", type=int, default=0, help="the positions' random moves")
    p.add_argument("--phases", default="opening:8-12,middle:16-24,end:28-36",
                   help="name:lo-hi plies from the empty board, comma-separated")
    p.add_argument("--source", choices=("random", "selfplay"), default="random",
                   help="random: random legal play; selfplay: --opening random moves, then the first agent's greedy "
                        "self-play")
    p.add_argument("--opening", type=int, default=4, help="random moves before self-play (--source selfplay)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the agents' forward passes")
    args = p.parse_args(argv)
    if args.positions < 1:
        raise SystemExit("--positions must be at least 1")
    phases = parse_phases(args.phases)

    import pyspiel
    import torch

    torch.set_num_threads(args.threads)
    game = pyspiel.load_game("connect_four")
    players = [Player(a) for a in args.agents]
    t0 = time.perf_counter()
    positions = sample_positions(phases, args.positions, args.seed, game, args.source, args.opening,
                                 players[0] if args.source == "selfplay" else None)
    solve_s = dict.fromkeys((ph.name for ph in phases), 0.0)
    for pos in positions:
        t = time.perf_counter()
        pos.scores = solve_all(pos.moves)
        solve_s[pos.phase] += time.perf_counter() - t
    source = ("uniformly random play" if args.source == "random"
              else f"{args.opening} random moves, then {args.agents[0]}'s greedy self-play")
    print(f"{len(positions)} positions by {source} (seed {args.seed}), solved exactly in "
          f"{time.perf_counter() - t0:.1f} s")
    for player in players:
        t = time.perf_counter()
        tallies = check(player, positions, phases)
        for name, s in solve_s.items():
            tallies[name].solve_s = s
        first = player.moves([""])[0] + 1
        print(f"\n{player.path}: empty board -> column {first}{' (the centre)' if first == 4 else ' (NOT the centre)'}"
              f"; agent moves in {time.perf_counter() - t:.2f} s")
        print(table(tallies, phases))
    print("\nkept: the agent's move keeps the position's value (win, draw, loss for the player to move); optimal: "
          "its exact score is the best (fastest win, slowest loss); errors: value lowered, by kind")


if __name__ == "__main__":
    main()
