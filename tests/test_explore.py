"""Epsilon schedules by hand, and epsilon-greedy action selection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deepq.components import epsilon_schedule
from deepq.config import Config
from deepq.core.explore import EpsilonSchedule, epsilon_greedy


def test_linear_schedule() -> None:
    eps = EpsilonSchedule("linear", start=1.0, end=0.1, decay_steps=100)
    assert eps(0) == pytest.approx(1.0)
    assert eps(50) == pytest.approx(0.55)  # 1 + 0.5 * (0.1 - 1) = 0.55
    assert eps(25) == pytest.approx(0.775)  # 1 + 0.25 * (-0.9) = 0.775
    assert eps(100) == pytest.approx(0.1)
    assert eps(1_000) == pytest.approx(0.1)  # past the end it stays at end


def test_exponential_schedule() -> None:
    eps = EpsilonSchedule("exponential", start=1.0, end=0.1, decay_steps=200)
    assert eps(0) == pytest.approx(1.0)
    # at t = decay_steps: end + (start - end) / e = 0.1 + 0.9 / 2.71828... = 0.43109...
    assert eps(200) == pytest.approx(0.1 + 0.9 / math.e)
    assert eps(200) == pytest.approx(0.431092, abs=1e-6)
    # at t = 2 * decay_steps: 0.1 + 0.9 / e^2 = 0.22180...
    assert eps(400) == pytest.approx(0.221802, abs=1e-6)
    assert eps(100_000) == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["linear", "exponential"])
def test_zero_decay_steps_gives_end(kind: str) -> None:
    eps = EpsilonSchedule(kind, start=1.0, end=0.2, decay_steps=0)
    assert eps(0) == pytest.approx(0.2)
    assert eps(10) == pytest.approx(0.2)


def test_epsilon_schedule_from_the_config() -> None:
    cfg = Config(eps_schedule="exponential", eps_start=0.9, eps_end=0.01, eps_decay_steps=123)
    assert epsilon_schedule(cfg) == EpsilonSchedule("exponential", 0.9, 0.01, 123)


def _greedy_sentinel(obs: np.ndarray) -> np.ndarray:
    return np.full(len(obs), 99)  # 99 is not a valid random action, so it marks "greedy"


def test_eps_zero_is_always_greedy() -> None:
    actions = epsilon_greedy(_greedy_sentinel, np.zeros((500, 3)), 0.0, 4, np.random.default_rng(0))
    assert (actions == 99).all()


def test_eps_one_never_calls_greedy() -> None:
    def greedy(obs: np.ndarray) -> np.ndarray:
        raise AssertionError("greedy() must not be called when eps=1")

    actions = epsilon_greedy(greedy, np.zeros((500, 3)), 1.0, 4, np.random.default_rng(0))
    assert actions.shape == (500,)
    assert set(actions.tolist()) == {0, 1, 2, 3}


def test_eps_half_frequencies() -> None:
    n, n_actions = 20_000, 4
    actions = epsilon_greedy(_greedy_sentinel, np.zeros((n, 3)), 0.5, n_actions, np.random.default_rng(123))
    # Exploring is Binomial(n, 0.5): sd of the fraction = sqrt(0.25 / 20000) = 0.0035; tolerance 0.02 is > 5 sd.
    assert np.mean(actions != 99) == pytest.approx(0.5, abs=0.02)
    # Each random action has p = 0.5 / 4 = 0.125: sd = sqrt(0.125 * 0.875 / 20000) = 0.0023; 0.012 is > 5 sd.
    for a in range(n_actions):
        assert np.mean(actions == a) == pytest.approx(0.125, abs=0.012)


def test_same_seed_same_actions() -> None:
    def greedy(obs: np.ndarray) -> np.ndarray:
        return obs[:, 0].astype(np.int64)

    obs = np.tile(np.array([[1.0], [2.0]]), (100, 1))  # (200, 1)
    a = epsilon_greedy(greedy, obs, 0.3, 5, np.random.default_rng(42))
    b = epsilon_greedy(greedy, obs, 0.3, 5, np.random.default_rng(42))
    c = epsilon_greedy(greedy, obs, 0.3, 5, np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
