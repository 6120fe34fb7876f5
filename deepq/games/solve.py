"""Exact minimax for games small enough to solve (tic-tac-toe): true values, optimal moves, a perfect bot.

A solved game turns "how good is the agent?" into a number with no opponent noise: the share of all reachable
positions where the agent's move is optimal, and whether it ever loses to perfect play.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyspiel

from deepq.errors import ConfigError
from deepq.games.loading import load_game

_TOLERANCE = 1e-9  # values are min/max of exact returns, so only float noise in exotic returns needs this


def load(game: pyspiel.Game | str) -> pyspiel.Game:
    """The game itself, or the game a string such as "tic_tac_toe" names (an unknown one is a ConfigError)."""
    return load_game(game) if isinstance(game, str) else game


def _key(state: pyspiel.State) -> str:
    # str(state) is the position (the board), not the move order, so transpositions share one entry; the player to
    # move is added because some games print the same board for different players to move.
    return f"{state.current_player()}|{state}"


def _check_solvable(game: pyspiel.Game) -> None:
    kind = game.get_type()
    problems = []
    if game.num_players() != 2:
        problems.append(f"has {game.num_players()} players, not 2")
    if kind.utility != pyspiel.GameType.Utility.ZERO_SUM:
        problems.append(f"is not zero-sum ({kind.utility})")
    if kind.dynamics != pyspiel.GameType.Dynamics.SEQUENTIAL:
        problems.append(f"is not sequential ({kind.dynamics})")
    if kind.information != pyspiel.GameType.Information.PERFECT_INFORMATION:
        problems.append(f"is not perfect-information ({kind.information})")
    if kind.chance_mode != pyspiel.GameType.ChanceMode.DETERMINISTIC:
        problems.append(f"has chance ({kind.chance_mode})")
    if problems:
        raise ConfigError(
            f"{game} cannot be solved by minimax: it {'; '.join(problems)}. The solver handles 2-player, zero-sum, "
            "sequential, perfect-information, deterministic games such as tic_tac_toe"
        )


class Solver:
    """Negamax values of every position reachable from the initial state, memoized by position.

    Values are stored from player 0's side (zero-sum: player 1's value is the negation), which stays correct in
    games where a player may move twice in a row. Built eagerly in the constructor.
    """

    def __init__(self, game: pyspiel.Game | str, max_states: int = 1_000_000) -> None:
        self.game = load(game)
        _check_solvable(self.game)
        self.max_states = max_states
        self._value0: dict[str, float] = {}  # position key -> value for player 0 under optimal play
        self._solve(self.game.new_initial_state())

    def _solve(self, root: pyspiel.State) -> None:
        # Iterative post-order depth-first search: a recursive one would hit Python's recursion limit in long games.
        # A stack entry is (state, its key, the keys of its children once expanded, else None).
        stack: list[tuple[pyspiel.State, str, list[str] | None]] = [(root, _key(root), None)]
        in_progress: set[str] = set()
        while stack:
            state, key, child_keys = stack.pop()
            if child_keys is None:
                if key in self._value0:
                    continue  # a transposition, solved through another move order
                if key in in_progress:
                    raise ConfigError(f"{self.game} repeats positions (its game graph has cycles); minimax here "
                                      "needs a game that always moves forward")
                if state.is_terminal():
                    self._store(key, state.returns()[0])
                    continue
                children = [state.child(a) for a in state.legal_actions()]
                keys = [_key(c) for c in children]
                in_progress.add(key)
                stack.append((state, key, keys))
                stack.extend((c, k, None) for c, k in zip(children, keys, strict=True) if k not in self._value0)
            else:
                values = [self._value0[k] for k in child_keys]
                self._store(key, max(values) if state.current_player() == 0 else min(values))
                in_progress.discard(key)

    def _store(self, key: str, value0: float) -> None:
        self._value0[key] = value0
        if len(self._value0) > self.max_states:
            raise ConfigError(f"{self.game} is too large to solve exactly (more than {self.max_states:,} positions); "
                              "use the MCTS opponent instead")

    def _value0_of(self, state: pyspiel.State) -> float:
        key = _key(state)
        if key not in self._value0:
            self._solve(state)  # a position not reachable from the initial state (set up by hand)
        return self._value0[key]

    def value(self, state: pyspiel.State, player: int | None = None) -> float:
        """Value of `state` under optimal play for `player` (default: the player to move; required at terminals)."""
        if player is None:
            if state.is_terminal():
                raise ValueError("a terminal state has no player to move; pass player=0 or player=1")
            player = state.current_player()
        value0 = self._value0_of(state)
        return value0 if player == 0 else -value0

    def action_values(self, state: pyspiel.State) -> dict[int, float]:
        """Value of each legal action for the player to move, assuming optimal play afterwards."""
        if state.is_terminal():
            raise ValueError("a terminal state has no legal actions")
        player = state.current_player()
        return {a: self.value(state.child(a), player) for a in state.legal_actions()}

    def optimal_actions(self, state: pyspiel.State) -> list[int]:
        """The legal actions that keep the best value for the player to move, in increasing action order."""
        values = self.action_values(state)
        best = max(values.values())
        return [a for a, v in values.items() if v >= best - _TOLERANCE]

    def reachable_states(self) -> list[pyspiel.State]:
        """One state per distinct non-terminal position reachable from the initial state, in breadth-first order."""
        # Re-walked on demand rather than kept: holding up to max_states pyspiel states costs far more memory than
        # the value table does.
        start = self.game.new_initial_state()
        seen = {_key(start)}
        frontier = [start]
        found: list[pyspiel.State] = []
        while frontier:
            found.extend(frontier)
            nxt = []
            for state in frontier:
                for action in state.legal_actions():
                    child = state.child(action)
                    key = _key(child)
                    if key not in seen and not child.is_terminal():
                        seen.add(key)
                        nxt.append(child)
            frontier = nxt
        return found


_SHARED: dict[str, Solver] = {}


def shared_solver(game: pyspiel.Game | str) -> Solver:
    """One Solver per game string per process, since solving is the slow part and the result never changes."""
    game = load(game)
    name = str(game)
    if name not in _SHARED:
        _SHARED[name] = Solver(game)
    return _SHARED[name]


def optimal_move_rate(solver: Solver, choose: Callable[[pyspiel.State], int]) -> tuple[float, int]:
    """Fraction of reachable non-terminal positions where `choose(state)` is optimal, and how many positions.

    Every position counts once, however likely it is in play, so this measures the whole policy, including
    positions a strong opponent would never allow. `choose` gets a copy of each state.
    """
    states = solver.reachable_states()
    good = sum(choose(state.clone()) in solver.optimal_actions(state) for state in states)
    return good / len(states), len(states)


class PerfectBot(pyspiel.Bot):
    """Plays an optimal action, drawn uniformly among the optimal ones so that games against it vary."""

    def __init__(self, solver: Solver, seed: int = 0) -> None:
        pyspiel.Bot.__init__(self)  # the C++ side of a pybind11 subclass only exists after this call
        self.solver = solver
        self.rng = np.random.default_rng(seed)

    def step(self, state: pyspiel.State) -> int:
        """An optimal action for the player to move."""
        actions = self.solver.optimal_actions(state)
        return int(actions[self.rng.integers(len(actions))])

    def restart_at(self, state: pyspiel.State) -> None:
        """Nothing to reset: each move is computed from the state alone."""

    def inform_action(self, state: pyspiel.State, player_id: int, action: int) -> None:
        """Nothing to track: each move is computed from the state alone."""

    def provides_policy(self) -> bool:
        """No: step_with_policy is not implemented."""
        return False
