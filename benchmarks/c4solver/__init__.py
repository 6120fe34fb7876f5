"""Exact Connect Four (7x6) values for deepq's benchmarks: a small C solver (solver.c), built on first use, via ctypes.

    from benchmarks.c4solver import solve, solve_all, value
    solve("4453")       # the score for the player to move after the moves 4, 4, 5, 3 (columns 1..7, 1 = leftmost)
    solve_all("4453")   # the score of each of the 7 moves for the player making it, None for a full column

Scores are for the player to move: 0 a draw; 22 - k when that player wins with their k-th stone (1: a win with the
last stone of the board); -(22 - k) when the opponent wins with their k-th stone. `value(score)` is the sign.

solver.c is compiled with `gcc -O3 -march=native -shared -fPIC` into ~/.cache/deepq-c4solver/<hash>.so (the hash
of the source and the flags: rebuilt when either changes) and loaded once. Its transposition table (64 MiB,
allocated on first use) keeps what it learns between calls: `reset()` clears it. One process-wide table: not
thread-safe. `selftest()` checks the solver against an independent brute force and OpenSpiel, and times it:

    python -c "from benchmarks.c4solver import selftest; selftest()"     # from the repository root, ~20 s

Speed (one core, ~10 M positions/s, no opening book): solve_all from an empty table takes under 0.01 s for random-play
positions of 16 stones or more, ~0.1-0.3 s at 12-14, ~0.5-1.5 s at 10, ~1-2 s at 8 (the odd one 5-10 s). Positions
near the start grow fast: solve("444444") 4 s, solve("44444") 39 s, solve("4444") 58 s; the empty board and
single-stone positions are out of reach in a benchmark's time.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from functools import cache
from pathlib import Path

SOURCE = Path(__file__).with_name("solver.c")
FLAGS = ["-O3", "-march=native", "-shared", "-fPIC"]
WIDTH, HEIGHT = 7, 6
CELLS = WIDTH * HEIGHT
INVALID = -1000  # solver.c's answer for a move string that is not a game in progress


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deepq-c4solver"


@cache
def _lib() -> ctypes.CDLL:
    """The compiled solver, built first if this source and these flags have not been."""
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(FLAGS).encode()).hexdigest()[:16]
    so = cache_dir() / f"{digest}.so"
    if not so.exists():
        gcc = shutil.which("gcc")
        if gcc is None:
            raise RuntimeError("benchmarks/c4solver needs gcc to build solver.c, and no gcc is on PATH")
        so.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=so.parent) as tmp:  # built aside, then renamed: never half a file
            out = Path(tmp) / so.name
            done = subprocess.run([gcc, *FLAGS, "-o", str(out), str(SOURCE)], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"gcc could not build {SOURCE}: {done.stderr.strip()}")
            out.replace(so)
    lib = ctypes.CDLL(str(so))
    lib.c4_solve.argtypes = [ctypes.c_char_p]
    lib.c4_solve.restype = ctypes.c_int
    lib.c4_solve_all.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    lib.c4_solve_all.restype = None
    lib.c4_reset.argtypes = []
    lib.c4_reset.restype = None
    lib.c4_nodes.argtypes = []
    lib.c4_nodes.restype = ctypes.c_uint64
    return lib


def _invalid(moves: str) -> ValueError:
    return ValueError(f"{moves!r} is not a Connect Four game in progress: moves are column digits 1..7, no column "
                      "takes more than 6 stones, and no move may end the game")


def solve(moves: str) -> int:
    """The exact score for the player to move after `moves` (column digits '1'..'7' from the empty board)."""
    score = _lib().c4_solve(moves.encode("ascii", "replace"))
    if score == INVALID:
        raise _invalid(moves)
    return int(score)


def solve_all(moves: str) -> list[int | None]:
    """The exact score of each move (columns 1..7, in order) for the player making it; None for a full column."""
    out = (ctypes.c_int * WIDTH)()
    _lib().c4_solve_all(moves.encode("ascii", "replace"), out)
    scores = [None if s == INVALID else int(s) for s in out]
    if all(s is None for s in scores):  # every column full: a full board is a draw, not a move to score
        if len(moves) == CELLS and solve(moves) == 0:
            return scores
        raise _invalid(moves)
    return scores


def value(score: int) -> int:
    """+1 a win, 0 a draw, -1 a loss, for the player the score is for."""
    return (score > 0) - (score < 0)


def reset() -> None:
    """Empty the transposition table (later solves start from nothing: for timings)."""
    _lib().c4_reset()


def nodes() -> int:
    """Positions searched since the library was loaded."""
    return int(_lib().c4_nodes())


# ---- self-test: an independent brute force, OpenSpiel, known facts, timings -------------------------------------


def _four(cols: list[list[int]], c: int) -> bool:
    """Whether the stone just placed on top of column c (0-based) completes a line of four of its colour."""
    r = len(cols[c]) - 1
    who = cols[c][r]

    def at(x: int, y: int) -> int | None:
        return cols[x][y] if 0 <= x < WIDTH and 0 <= y < len(cols[x]) else None

    for dx, dy in ((1, 0), (0, 1), (1, 1), (1, -1)):
        run = 1
        for sign in (1, -1):
            x, y = c + sign * dx, r + sign * dy
            while at(x, y) == who:
                run += 1
                x, y = x + sign * dx, y + sign * dy
        if run >= 4:
            return True
    return False


def _brute(cols: list[list[int]], played: int, memo: dict[tuple[tuple[int, ...], ...], int]) -> int:
    """Plain negamax over every move (memoized by position, no pruning): the score for the player to move."""
    key = tuple(tuple(c) for c in cols)
    if key in memo:
        return memo[key]
    if played == CELLS:
        return 0
    me = played % 2
    best = -CELLS
    for c in range(WIDTH):
        if len(cols[c]) == HEIGHT:
            continue
        cols[c].append(me)
        score = (CELLS + 1 - played) // 2 if _four(cols, c) else -_brute(cols, played + 1, memo)
        cols[c].pop()
        best = max(best, score)
    memo[key] = best
    return best


def _brute_all(moves: str) -> list[int | None]:
    cols: list[list[int]] = [[] for _ in range(WIDTH)]
    for i, ch in enumerate(moves):
        cols[int(ch) - 1].append(i % 2)
    played, me, memo = len(moves), len(moves) % 2, {}
    out: list[int | None] = []
    for c in range(WIDTH):
        if len(cols[c]) == HEIGHT:
            out.append(None)
            continue
        cols[c].append(me)
        out.append((CELLS + 1 - played) // 2 if _four(cols, c) else -_brute(cols, played + 1, memo))
        cols[c].pop()
    return out


def random_position(rng: random.Random, stones: int, avoid_wins: bool = False) -> str:
    """Moves of a game that reaches `stones` stones by random legal play without ending (retried until one does).
    avoid_wins: each player picks among the moves that do not end the game (positions full of threats)."""
    while True:
        cols: list[list[int]] = [[] for _ in range(WIDTH)]
        moves = ""
        while len(moves) < stones:
            options = []
            for c in range(WIDTH):
                if len(cols[c]) < HEIGHT:
                    cols[c].append(len(moves) % 2)
                    if not _four(cols, c) or not avoid_wins:
                        options.append(c)
                    cols[c].pop()
            if not options:
                break
            c = rng.choice(options)
            cols[c].append(len(moves) % 2)
            if _four(cols, c):
                break
            moves += str(c + 1)
        if len(moves) == stones:
            return moves


def _spiel_value(state: object, memo: dict[str, int]) -> int:
    """Exhaustive minimax over pyspiel states: +1/0/-1 for the player to move."""
    key = str(state)
    if key not in memo:
        best = -1
        for a in state.legal_actions():  # type: ignore[attr-defined]
            child = state.child(a)  # type: ignore[attr-defined]
            if child.is_terminal():
                v = round(child.returns()[state.current_player()])  # type: ignore[attr-defined]
            else:
                v = -_spiel_value(child, memo)
            best = max(best, v)
            if best == 1:
                break
        memo[key] = best
    return memo[key]


def _refuses(moves: str) -> bool:
    try:
        solve(moves)
    except ValueError:
        return True
    return False


def selftest(positions: int = 240, deep_positions: int = 40, spiel_positions: int = 40, seed: int = 0,
             timing_budget_s: float = 20.0, facts: bool = False) -> bool:
    """Check the solver and print what was checked; True if everything agreed.

    1. `positions` random positions with 1 to 10 empty cells and `deep_positions` with 11 to 16 (half by plain
       random play, half by play that avoids ending the game): solve and solve_all against _brute's exact scores.
    2. `spiel_positions` positions with 1 to 8 empty cells: the sign of solve against exhaustive minimax over
       OpenSpiel's connect_four (skipped if pyspiel is missing).
    3. Invalid move strings are refused; solve_all from an empty table on random-play positions of fewer and fewer
       stones, timed, until `timing_budget_s` is spent (solve must equal the best of solve_all).
    4. facts=True: the known values of the seven first moves (only the centre wins; columns 3 and 5 draw). Without
       an opening book this takes far too long for a test (hours): see the module docstring for the timings.
    """
    rng = random.Random(seed)
    ok = True
    for count, (few, many) in ((positions, (1, 10)), (deep_positions, (11, 16))):
        t0 = time.perf_counter()
        disagree = 0
        for i in range(count):
            moves = random_position(rng, CELLS - rng.randint(few, many), avoid_wins=i % 2 == 1)
            want = _brute_all(moves)
            got, best = solve_all(moves), solve(moves)
            if got != want or best != max(s for s in want if s is not None):
                disagree += 1
                print(f"  DISAGREE {moves}: solve_all {got} solve {best}, brute force {want}")
        ok &= disagree == 0
        print(f"brute force: {count} positions ({few}-{many} empty cells), scores of solve and solve_all compared "
              f"exactly: {disagree} disagreements ({time.perf_counter() - t0:.1f} s)")

    try:
        import pyspiel
    except ImportError:
        print("openspiel: pyspiel is not installed, skipped")
    else:
        t0 = time.perf_counter()
        game = pyspiel.load_game("connect_four")
        disagree = 0
        for i in range(spiel_positions):
            moves = random_position(rng, CELLS - rng.randint(1, 8), avoid_wins=i % 2 == 1)
            state = game.new_initial_state()
            for ch in moves:
                state.apply_action(int(ch) - 1)
            if state.is_terminal():
                print(f"  DISAGREE {moves}: OpenSpiel says the game is over")
                disagree += 1
                continue
            got, want = value(solve(moves)), _spiel_value(state, {})
            if got != want:
                disagree += 1
                print(f"  DISAGREE {moves}: solve's sign {got}, OpenSpiel minimax {want}")
        ok &= disagree == 0
        print(f"openspiel: {spiel_positions} positions (1-8 empty cells), sign against minimax over pyspiel states: "
              f"{disagree} disagreements ({time.perf_counter() - t0:.1f} s)")

    refused = [m for m in ("12345678", "4444444", "1212121", "0", "44a") if not _refuses(m)]
    ok &= not refused
    print(f"invalid move strings (a bad digit, a full column, play after a win): "
          f"{'all refused' if not refused else f'ACCEPTED {refused}'}")

    print("timings from an empty table (random-play positions; solve_all, i.e. every move solved):")
    spent, inconsistent = 0.0, 0
    for stones in (20, 16, 14, 12, 10, 8):
        if spent > timing_budget_s:
            print(f"  {stones} stones and fewer: skipped (over the {timing_budget_s:.0f} s budget)")
            break
        times = []
        for _ in range(4):
            moves = random_position(rng, stones)
            reset()
            t = time.perf_counter()
            scores = solve_all(moves)
            times.append(time.perf_counter() - t)
            inconsistent += solve(moves) != max(s for s in scores if s is not None)
        spent += sum(times)
        print(f"  {stones:2d} stones: mean {sum(times) / len(times):.3f} s, max {max(times):.3f} s")
    ok &= inconsistent == 0
    print(f"  solve == max(solve_all) on those positions: {inconsistent} inconsistencies")
    if facts:  # hours without an opening book: only on request
        t = time.perf_counter()
        signs = [value(s) for s in solve_all("") if s is not None]
        want = [-1, -1, 0, 1, 0, -1, -1]
        ok &= signs == want
        print(f"empty board: first moves' values {signs} (known: {want}) in {time.perf_counter() - t:.0f} s")
    print("selftest", "passed" if ok else "FAILED")
    return ok
