"""Q-guided MCTS on real tic-tac-toe (OpenSpiel): wins found, minimax values recovered, batching, no side effects."""

from __future__ import annotations

import numpy as np
import pytest

import deepq
from deepq.core.mcts import MCTS, Evaluator, MCTSConfig, search_policy
from deepq.core.networks import resolve_arch
from deepq.errors import ConfigError
from deepq.games.adapters import OpenSpielGame
from deepq.games.solve import shared_solver

# Cells are numbered row by row (0 top-left, 8 bottom-right); X (player 0) moves first.
WIN_NOW = [0, 3, 1, 4]  # X: 0 1, O: 3 4; X to move wins at 2 (O threatens 5)
FORK_WIN = [0, 1, 2, 3, 6]  # O to move: 4 blocks X and forks (5 and 7) -> +1; anything else lets X win -> -1
FORCED_DRAW = [0, 4, 1, 2, 6]  # O to move: 3 blocks X's column and draws -> 0; the rest lose -> -1
FORCED_LOSS = [0, 4, 8, 2, 6]  # O to move: X threatens 3 and 7, O can block only one -> all -1
MUST_BLOCK = [0, 4, 8, 3]  # X to move: O threatens 5; any other move lets O win next turn


def zero_q(obs: np.ndarray) -> np.ndarray:
    """No knowledge: uniform priors and first-play value 0."""
    return np.zeros((len(obs), 9))


def position(moves: list[int]) -> OpenSpielGame:
    game = OpenSpielGame("tic_tac_toe")
    game.reset(0)
    for a in moves:
        game.step(a)
    return game


class CountingEvaluator:
    """Wraps a real evaluator and records the batch size of every call."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.sizes: list[int] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        self.sizes.append(len(obs))
        return self.evaluator(obs)


def small_agent() -> deepq.Agent:
    cfg = deepq.Config(env="openspiel:tic_tac_toe", hidden_sizes=(128, 128), device="cpu")
    agent = deepq.Agent((3, 3, 3), 9, cfg, arch=resolve_arch((3, 3, 3), cfg.arch, board=True))
    assert agent.arch == "mlp"  # a board game's network: the MLP
    return agent


@pytest.mark.parametrize("batch", [1, 16])
def test_one_move_win_is_found_with_few_simulations(batch: int) -> None:
    cfg = MCTSConfig(simulations=50, leaf="rollout", batch=batch)
    result = MCTS(zero_q, cfg, two_player=True).search(position(WIN_NOW))
    assert result.action() == 2
    assert result.q[2] == pytest.approx(1.0)
    assert result.visits.sum() == 50


@pytest.mark.parametrize("moves", [FORK_WIN, FORCED_DRAW, FORCED_LOSS], ids=["win", "draw", "loss"])
@pytest.mark.parametrize("batch", [1, 16])
def test_root_values_converge_to_minimax(moves: list[int], batch: int) -> None:
    game = position(moves)
    exact = shared_solver("tic_tac_toe").action_values(game.state)
    result = MCTS(zero_q, MCTSConfig(simulations=2000, leaf="rollout", batch=batch), two_player=True).search(game)
    best = result.action()
    assert best in shared_solver("tic_tac_toe").optimal_actions(game.state)
    # The most visited action's mean is nearly exact; rarely visited ones still carry early exploration (a mean
    # backup), but each lies nearest its own minimax value among {-1, 0, +1}.
    assert result.q[best] == pytest.approx(exact[best], abs=0.05)
    assert result.value == pytest.approx(max(exact.values()), abs=0.05)
    for a, v in exact.items():
        assert abs(result.q[a] - v) < 0.5, (a, result.q[a], v)


@pytest.mark.parametrize("leaf", ["network", "rollout"])
def test_a_move_that_lets_the_opponent_win_gets_a_negative_value(leaf: str) -> None:
    result = MCTS(zero_q, MCTSConfig(simulations=300, leaf=leaf), two_player=True).search(position(MUST_BLOCK))
    assert result.action() == 5
    for a in (1, 2, 6, 7):  # each leaves O's row 3-4-5 open: O's win, negated at X's edge
        assert result.visits[a] > 0 and result.q[a] < -0.3, (a, result.q[a])


def test_discount_applies_per_ply() -> None:
    cfg = MCTSConfig(simulations=300, leaf="network", gamma=0.9)
    result = MCTS(zero_q, cfg, two_player=True).search(position(MUST_BLOCK))
    # O's win one ply after X's mistake is worth −0.9 to X; the first visit saw only the (zero) leaf value.
    assert -0.9 - 1e-9 <= result.q[1] < -0.3


def test_search_leaves_the_state_unchanged() -> None:
    game = position(MUST_BLOCK)
    before = (str(game.state), game.state.history(), game.to_move, game.legal_mask().copy())
    MCTS(zero_q, MCTSConfig(simulations=200, leaf="rollout"), two_player=True).search(game)
    assert (str(game.state), game.state.history(), game.to_move) == before[:3]
    np.testing.assert_array_equal(game.legal_mask(), before[3])


def test_batched_search_calls_the_evaluator_with_batches_and_fewer_times() -> None:
    q_values = small_agent().q_values
    calls = {}
    for batch in (1, 16):
        spy = CountingEvaluator(q_values)
        result = MCTS(spy, MCTSConfig(simulations=200, leaf="network", batch=batch), two_player=True).search(
            position(WIN_NOW))
        assert result.action() == 2  # the terminal win is worth exactly +1; the untrained net's values are small
        assert result.evaluator_calls == len(spy.sizes)
        calls[batch] = spy.sizes
    assert max(calls[1]) == 1
    assert max(calls[16]) > 1 and max(calls[16]) <= 16
    assert len(calls[16]) < len(calls[1])


def test_unvisited_actions_have_nan_q_and_zero_visits() -> None:
    result = MCTS(zero_q, MCTSConfig(simulations=3, batch=1), two_player=True).search(position([]))
    assert result.visits.sum() == 3
    assert (result.visits == 0).sum() >= 6
    np.testing.assert_array_equal(np.isnan(result.q), result.visits == 0)
    assert result.visits.dtype.kind == "i"


def test_action_temperature_samples_in_proportion_to_visits() -> None:
    result = MCTS(zero_q, MCTSConfig(simulations=400, leaf="rollout"), two_player=True).search(position([]))
    assert result.visits[result.action(0.0)] == result.visits.max()
    picks = {result.action(1.0) for _ in range(200)}
    assert picks <= set(np.flatnonzero(result.visits > 0).tolist())
    assert len(picks) > 1


def test_illegal_actions_are_never_searched() -> None:
    result = MCTS(zero_q, MCTSConfig(simulations=300, leaf="rollout"), two_player=True).search(position(MUST_BLOCK))
    assert result.visits[[0, 3, 4, 8]].sum() == 0  # occupied cells


def test_search_policy_plays_the_win() -> None:
    policy = search_policy(zero_q, MCTSConfig(simulations=50, leaf="rollout"))
    assert policy(position(WIN_NOW)) == 2


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(ConfigError, match="leaf"):
        MCTSConfig(leaf="value")
    with pytest.raises(ConfigError, match="batch"):
        MCTSConfig(batch=0)
    with pytest.raises(ConfigError, match="evaluator"):
        MCTS(None, MCTSConfig(leaf="network"), two_player=True)
    with pytest.raises(ValueError, match="terminal"):
        MCTS(zero_q, MCTSConfig(), two_player=True).search(position([0, 3, 1, 4, 2]))


def test_timing_batched_vs_unbatched(capsys: pytest.CaptureFixture[str]) -> None:
    q_values = small_agent().q_values
    rates = {}
    for batch in (1, 16):
        result = MCTS(q_values, MCTSConfig(simulations=400, leaf="network", batch=batch), two_player=True).search(
            position([]))
        rates[batch] = result
    with capsys.disabled():
        for batch, r in rates.items():
            print(f"\nMCTS tic-tac-toe, 400 simulations, batch={batch}: {r.simulations_per_second:,.0f} sim/s, "
                  f"{r.evaluator_calls} evaluator calls ({r.evaluator_seconds / r.seconds:.0%} of the time)")
