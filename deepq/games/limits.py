"""What evaluation and play accept for a temperature, a search size and an opponent, checked before anything runs
(a seed takes Config.seed's check, deepq.config_checks.SEED).

Each bound says where it comes from. The search bound is time per move: measured on connect_four on one CPU core
of a 2-core cloud VM, deepq's Q-guided MCTS takes ~70-85 µs a simulation (its tree ~2.9 kB a simulation), so
1,000,000 simulations are about 80 s a move; OpenSpiel's C++ MCTS opponent takes ~10 µs a simulation, so
5,000,000 are about 50 s a move (its tree is capped at deepq.games.arena.MCTS_MEMORY_MB).
"""

from __future__ import annotations

import re

from deepq.config_checks import Check, is_int, is_num
from deepq.errors import ConfigError

MAX_SEARCH_SIMULATIONS = 1_000_000  # deepq's MCTS at play time: about 80 s a move on connect_four
MAX_MCTS_OPPONENT_SIMULATIONS = 5_000_000  # OpenSpiel's MCTS bot: about 50 s a move on connect_four
# deepq's search tree per simulation: one node of ~2.5 kB (a cloned game state, Python objects) plus seven (A,)
# float64 arrays and a list of A children (measured: 2.9 kB on connect_four's 7 actions, 302 kB on chess's 4,674).
SEARCH_NODE_BYTES, SEARCH_BYTES_PER_ACTION = 2_500, 64

TEMPERATURE = Check("0 (greedy) or a finite positive number", lambda v: is_num(v) and v >= 0)
SEARCH = Check(f"an integer from 0 (no search) to {MAX_SEARCH_SIMULATIONS:,} (deepq play --mcts N; "
               f"{MAX_SEARCH_SIMULATIONS:,} simulations take about 80 s a move on connect_four on one CPU core)",
               lambda v: is_int(v) and 0 <= v <= MAX_SEARCH_SIMULATIONS)


def search_bytes(simulations: int, n_actions: int) -> int:
    """Memory deepq's MCTS holds after `simulations` simulations (each adds at most one node)."""
    return simulations * (SEARCH_NODE_BYTES + SEARCH_BYTES_PER_ACTION * n_actions)


OPPONENTS = (f"'random', 'perfect' (exact minimax, games of up to 1,000,000 positions such as tic_tac_toe) or "
             f"'mcts:N' (OpenSpiel's MCTS, N simulations a move, 2 to {MAX_MCTS_OPPONENT_SIMULATIONS:,}: "
             "about 50 s a move on connect_four)")


def opponent_simulations(name: object, setting: str = "opponent") -> int | None:
    """N of an 'mcts:N' opponent, None for 'random' and 'perfect'; any other value is a ConfigError naming
    `setting` (N is written in ASCII digits, so 'mcts:1e3', 'mcts:-1' and 'mcts:²' are refused here)."""
    if name in ("random", "perfect"):
        return None
    if isinstance(name, str) and re.fullmatch(r"mcts:[0-9]{1,9}", name):
        n = int(name[5:])
        if 2 <= n <= MAX_MCTS_OPPONENT_SIMULATIONS:
            return n
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:60] + "..."
    raise ConfigError(f"{setting}={shown} is not valid: use {OPPONENTS}")
