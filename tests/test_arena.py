"""The exact solver, the perfect bot and the arena, on real OpenSpiel games and bots."""

from __future__ import annotations

import numpy as np
import pyspiel
import pytest

from deepq.errors import ConfigError
from deepq.games.arena import (
    ArenaResult,
    SeatRecord,
    arena,
    mcts_opponent,
    perfect_opponent,
    play_game,
    random_opponent,
)
from deepq.games.solve import PerfectBot, Solver, optimal_move_rate, shared_solver

TTT = pyspiel.load_game("tic_tac_toe")


def position(*actions: int) -> pyspiel.State:
    """Tic-tac-toe after these moves (cells 0-8, row by row; X moves first)."""
    state = TTT.new_initial_state()
    for action in actions:
        state.apply_action(action)
    return state


# X: 0 1 . / O: 3 4 . -- X to move; 2 wins at once, anything else lets O win at 5.
X_WINS_IN_ONE = (0, 3, 1, 4)
# X: 0 4 6, O: 1 8 -- O to move against two threats (3 and 2): lost whatever O does.
O_FORCED_LOSS = (4, 1, 0, 8, 6)


class FirstLegalBot(pyspiel.Bot):
    """Always the lowest legal action; records what it was built for, asked and told."""

    def __init__(self, seat: int, log: list[tuple[str, int, int]] | None = None) -> None:
        pyspiel.Bot.__init__(self)
        self.seat = seat
        self.log = log if log is not None else []
        self.histories: list[list[int]] = []

    def step(self, state: pyspiel.State) -> int:
        self.log.append(("step", self.seat, state.current_player()))
        self.histories.append(list(state.history()))
        return int(state.legal_actions()[0])

    def inform_action(self, state: pyspiel.State, player_id: int, action: int) -> None:
        self.log.append(("told", self.seat, player_id))


class IllegalBot(pyspiel.Bot):
    """Plays an occupied cell."""

    def __init__(self) -> None:
        pyspiel.Bot.__init__(self)

    def step(self, state: pyspiel.State) -> int:
        return int(next(a for a in range(9) if a not in state.legal_actions()))


@pytest.fixture(scope="module")
def solver() -> Solver:
    return shared_solver(TTT)


def test_solver_values_by_hand(solver: Solver) -> None:
    assert solver.value(TTT.new_initial_state()) == 0.0
    assert sorted(solver.optimal_actions(TTT.new_initial_state())) == list(range(9))  # every first move draws

    win = position(*X_WINS_IN_ONE)
    assert solver.value(win) == 1.0
    assert solver.action_values(win)[2] == 1.0
    assert solver.optimal_actions(win) == [2]

    lost = position(*O_FORCED_LOSS)
    assert lost.current_player() == 1
    assert solver.value(lost) == -1.0
    assert set(solver.action_values(lost).values()) == {-1.0}
    assert solver.value(lost, player=0) == 1.0

    done = position(0, 3, 1, 4, 2)
    assert done.is_terminal() and solver.value(done, player=0) == 1.0 and solver.value(done, player=1) == -1.0
    with pytest.raises(ValueError, match="terminal"):
        solver.value(done)


def test_reachable_states_of_tic_tac_toe(solver: Solver) -> None:
    states = solver.reachable_states()
    assert len(states) == 4520
    assert not any(s.is_terminal() for s in states)
    assert len({str(s) for s in states}) == 4520  # distinct positions, transpositions merged


def test_optimal_move_rate(solver: Solver) -> None:
    bot = PerfectBot(solver, seed=0)
    assert optimal_move_rate(solver, bot.step) == (1.0, 4520)
    rate, n = optimal_move_rate(solver, lambda state: int(state.legal_actions()[0]))
    assert n == 4520 and rate < 0.8


def test_solver_rejects_what_it_cannot_solve() -> None:
    with pytest.raises(ConfigError, match=r"too large to solve exactly.*MCTS"):
        Solver("connect_four", max_states=2000)
    with pytest.raises(ConfigError, match="perfect-information"):
        Solver("kuhn_poker")


def test_perfect_bot_draws_itself_and_never_loses_to_random() -> None:
    selfplay = arena(TTT, perfect_opponent(TTT, seed=1), perfect_opponent(TTT, seed=2), games_per_seat=10)
    assert selfplay.draws == selfplay.games == 20

    result = arena(TTT, perfect_opponent(TTT, seed=3), random_opponent(TTT, seed=4), games_per_seat=50)
    assert result.losses == 0
    assert result.seats[0].wins >= 40 and result.seats[1].wins >= 30
    assert perfect_opponent(TTT, 5)(0).solver is perfect_opponent(TTT, 6)(1).solver  # solved once per process


def test_perfect_bot_varies_among_optimal_moves(solver: Solver) -> None:
    bot = PerfectBot(solver, seed=0)
    start = TTT.new_initial_state()
    assert len({bot.step(start) for _ in range(50)}) > 1
    assert not bot.provides_policy()


def test_seats_alternate_and_add_up() -> None:
    log: list[tuple[str, int, int]] = []
    built: list[tuple[str, int]] = []

    def agent(seat: int) -> pyspiel.Bot:
        built.append(("agent", seat))
        return FirstLegalBot(seat, log)

    def opponent(seat: int) -> pyspiel.Bot:
        built.append(("opponent", seat))
        return pyspiel.make_uniform_random_bot(seat, 7)

    result = arena(TTT, agent, opponent, games_per_seat=3)
    agent_seats = [seat for who, seat in built if who == "agent"]
    opponent_seats = [seat for who, seat in built if who == "opponent"]
    assert agent_seats == [0, 1, 0, 1, 0, 1]
    assert opponent_seats == [1, 0, 1, 0, 1, 0]
    assert all(seat == to_move for kind, seat, to_move in log if kind == "step")  # asked only on its own turns
    assert all(seat != mover for kind, seat, mover in log if kind == "told")  # told only of the other's moves
    assert [s.games for s in result.seats] == [3, 3] and result.games == 6
    assert result.wins + result.draws + result.losses == 6


def test_opening_plies_randomize_games() -> None:
    def openings(opening_plies: int) -> set[tuple[int, ...]]:
        rng = np.random.default_rng(0)
        seen = set()
        for _ in range(10):
            bots = [FirstLegalBot(0), FirstLegalBot(1)]
            play_game(TTT, bots, rng, opening_plies)
            seen.add(tuple(bots[0].histories[-1]))  # the whole game up to X's last move
            assert len(bots[0].histories[0]) >= opening_plies  # the opening moves were not the bots'
        return seen

    assert len(openings(0)) == 1  # deterministic bots repeat one game
    assert len(openings(2)) > 3


def test_opening_moves_are_told_to_every_bot() -> None:
    log: list[tuple[str, int, int]] = []
    play_game(TTT, [FirstLegalBot(0, log), FirstLegalBot(1, log)], np.random.default_rng(1), opening_plies=2)
    told = [(seat, mover) for kind, seat, mover in log[:4] if kind == "told"]
    assert told == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_illegal_move_names_the_bot() -> None:
    with pytest.raises(RuntimeError, match="IllegalBot playing player 1 chose action 0, which is not legal"):
        play_game(TTT, [FirstLegalBot(0), IllegalBot()], np.random.default_rng(0))


def test_mcts_beats_random_and_finds_a_win() -> None:
    result = arena(TTT, mcts_opponent(TTT, simulations=50, seed=0), random_opponent(TTT, seed=1), games_per_seat=30)
    assert result.seats[0].wins > 20 and result.seats[1].wins > 15
    assert result.score > 0.6
    make = mcts_opponent(TTT, simulations=50, seed=2)
    assert all(make(0).step(position(*X_WINS_IN_ONE)) == 2 for _ in range(5))


def test_arena_is_reproducible() -> None:
    def run() -> ArenaResult:
        return arena("tic_tac_toe", mcts_opponent(TTT, 20, seed=3), random_opponent(TTT, seed=4), games_per_seat=10,
                     seed=5, opening_plies=1)

    first, second = run(), run()
    assert first.seats == second.seats
    assert first.opponent == "random"


def test_chance_nodes_are_sampled_from_the_seed() -> None:
    def run(seed: int) -> list[SeatRecord]:
        return arena("kuhn_poker", random_opponent("kuhn_poker", 0), random_opponent("kuhn_poker", 1), 20, seed).seats

    assert run(0) == run(0)
    assert run(0) != run(1)  # the deal changes with the arena's seed even though the bots' seeds do not


def test_result_report() -> None:
    result = ArenaResult("mcts-1000", [SeatRecord(18, 1, 1), SeatRecord(15, 2, 3)])
    assert str(result) == "vs mcts-1000: as first player 18W 1D 1L, as second player 15W 2D 3L"
    assert result.games == 40 and result.wins == 33 and result.draws == 3 and result.losses == 4
    assert result.win_rate == pytest.approx(33 / 40)
    assert result.score == pytest.approx((33 - 4) / 40)
    assert arena(TTT, random_opponent(TTT, 0), random_opponent(TTT, 1), 1, name="rnd").opponent == "rnd"


def test_arena_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="games_per_seat"):
        arena(TTT, random_opponent(TTT, 0), random_opponent(TTT, 1), games_per_seat=0)
    with pytest.raises(ConfigError, match="players"):
        random_opponent("kuhn_poker(players=3)", 0)
    with pytest.raises(ConfigError, match="simulations"):
        mcts_opponent(TTT, simulations=1, seed=0)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_seeds_outside_numpys_range_are_refused(seed: object) -> None:
    # Were numpy's "expected non-negative integer" (or a TypeError) from inside the match.
    with pytest.raises(ConfigError, match=r"seed=.* is not valid: seed must be an integer in \[0, 4294967295\]"):
        random_opponent(TTT, seed)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="seed="):
        arena(TTT, random_opponent(TTT, 0), random_opponent(TTT, 1), 1, seed=seed)  # type: ignore[arg-type]


def test_arena_counts_are_whole_numbers_and_mcts_is_bounded() -> None:
    with pytest.raises(ConfigError, match="games_per_seat must be an integer"):  # was range()'s TypeError
        arena(TTT, random_opponent(TTT, 0), random_opponent(TTT, 1), games_per_seat=2.5)  # type: ignore[arg-type]
    # 10**10 overflowed pyspiel's C int when the first bot was built; 5,000,001 is past a minute a move.
    for simulations in (10**10, 5_000_001):
        with pytest.raises(ConfigError, match="needs 2 to 5,000,000 simulations"):
            mcts_opponent(TTT, simulations=simulations, seed=0)

