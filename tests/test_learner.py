"""The policy/learner split: losses are pure functions returning (loss, per-sample values) checked against
numbers computed by hand; the learner returns what it computed as values; a policy travels as plain arrays."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch import nn

import deepq
from deepq.agent import Agent, actor_policy
from deepq.core.explore import epsilon_greedy
from deepq.core.losses import dqn_loss, mcts_regression_loss
from deepq.core.replay import Batch


class Table(nn.Module):
    """Q(s, ·) looked up by the observation's first number (0, 1, 2 ...): a network whose outputs are chosen."""

    def __init__(self, rows: list[list[float]]) -> None:
        super().__init__()
        self.q = nn.Parameter(torch.tensor(rows))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q[obs[:, 0].long()]


def two_transitions() -> Batch:
    # s=0 --a=1, r=1--> s'=1 (not terminal, discount 0.5); s=1 --a=0, r=-1--> terminal (discount 0)
    return Batch(obs=torch.tensor([[0.0], [1.0]]), actions=torch.tensor([1, 0]), rewards=torch.tensor([1.0, -1.0]),
                 next_obs=torch.tensor([[1.0], [0.0]]), terminated=torch.tensor([0.0, 1.0]),
                 discounts=torch.tensor([0.5, 0.0]))


def test_the_td_loss_returns_each_transitions_td_error() -> None:
    online = Table([[0.0, 2.0], [3.0, 1.0]])  # Q(0, ·) = [0, 2], Q(1, ·) = [3, 1]
    target = Table([[0.0, 0.0], [4.0, 6.0]])  # Q⁻(1, ·) = [4, 6]
    batch = two_transitions()
    # y0 = 1 + 0.5 * max(4, 6) = 4, Q(0, 1) = 2: error 2;  y1 = -1 (terminal), Q(1, 0) = 3: error 4
    out = dqn_loss(online, target, batch)
    assert out.per_sample.tolist() == [2.0, 4.0]
    assert out.loss.item() == pytest.approx((2.0 ** 2 + 4.0 ** 2) / 2)
    # Double DQN: a* = argmax Q(1, ·) = 0, so y0 = 1 + 0.5 * Q⁻(1, 0) = 3: error 1
    assert dqn_loss(online, target, batch, double=True).per_sample.tolist() == [1.0, 4.0]
    # importance weights scale each transition's squared error; the TD errors stay unweighted
    weighted = dqn_loss(online, target, batch, weights=torch.tensor([2.0, 0.5]))
    assert weighted.loss.item() == pytest.approx((2 * 4.0 + 0.5 * 16.0) / 2)
    assert weighted.per_sample.tolist() == [2.0, 4.0]
    assert not out.per_sample.requires_grad and out.loss.requires_grad


def test_the_mcts_regression_counts_only_searched_actions() -> None:
    online = Table([[1.0, 5.0, -2.0]])
    obs = torch.zeros(2, 1)
    targets = torch.tensor([[3.0, 5.0, 0.0], [0.0, 2.0, 0.0]])
    searched = torch.tensor([[True, True, False], [False, True, False]])
    out = mcts_regression_loss(online, obs, targets, searched)
    # row 0: (1-3)² and (5-5)² → mean 2; row 1: (5-2)² = 9; over the 3 searched pairs: (4 + 0 + 9) / 3
    assert out.per_sample.tolist() == [2.0, 9.0]
    assert out.loss.item() == pytest.approx(13 / 3)


def cartpole_batch(n: int = 32) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, 4, generator=g), torch.randint(2, (n,), generator=g), torch.randn(n, generator=g),
                 torch.randn(n, 4, generator=g), torch.zeros(n), torch.full((n,), 0.99))


@pytest.mark.parametrize("flags", [{}, {"fused": False}, {"atoms": 11, "v_min": -5.0, "v_max": 5.0},
                                   {"prioritized": True}], ids=str)
def test_the_learner_returns_its_loss_and_td_errors_as_values(flags: dict[str, object]) -> None:
    torch.manual_seed(0)
    agent = Agent((4,), 2, deepq.Config(hidden_sizes=(16,), **flags))  # type: ignore[arg-type]
    batch = cartpole_batch()
    out = agent.learner.update(batch)
    assert out.loss.dim() == 0 and not out.loss.requires_grad
    assert out.td_errors.shape == (32,) and (out.td_errors >= 0).all()
    assert not hasattr(agent, "td_errors") and not hasattr(agent.learner, "td_errors")  # nothing on the side
    if agent.cfg.atoms == 1:  # the TD errors are those of the weights before the step
        torch.manual_seed(0)
        fresh = Agent((4,), 2, deepq.Config(hidden_sizes=(16,), **flags))  # type: ignore[arg-type]
        target = fresh.target if fresh.target is not None else fresh.online
        expected = dqn_loss(fresh.online, target, batch, fresh.cfg.loss, fresh.cfg.double).per_sample
        torch.testing.assert_close(out.td_errors, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("shape", "flags"), [((4,), {}), ((4,), {"fused": False}), ((4, 10, 10), {}),
                                              ((4,), {"dueling": True, "atoms": 5})], ids=str)
def test_a_policy_travels_as_plain_arrays_and_acts_the_same(shape: tuple[int, ...], flags: dict[str, object]) -> None:
    torch.manual_seed(0)
    cfg = deepq.Config(hidden_sizes=(16,), **flags)  # type: ignore[arg-type]
    agent = Agent(shape, 3, cfg)
    obs = np.random.default_rng(0).normal(size=(20, *shape)).astype(np.float32)
    snapshot = agent.policy.weights()
    assert all(type(v) is np.ndarray for v in snapshot.values())
    shipped = pickle.loads(pickle.dumps(snapshot))  # what another process receives
    remote = actor_policy(cfg, agent.arch, shape, 3, shipped)
    np.testing.assert_allclose(remote.q_values(obs), agent.q_values(obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(remote.act(obs), agent.act(obs))
    # the snapshot is a copy: the learner's next steps do not reach it, a new broadcast does
    batch = Batch(torch.from_numpy(obs), torch.zeros(20, dtype=torch.long), torch.ones(20), torch.from_numpy(obs),
                  torch.zeros(20), torch.full((20,), 0.9))
    for _ in range(3):
        agent.learner.update(batch)
    assert not np.allclose(remote.q_values(obs), agent.q_values(obs))
    remote.load_weights(agent.policy.weights())
    np.testing.assert_allclose(remote.q_values(obs), agent.q_values(obs), rtol=1e-5, atol=1e-6)


def test_the_policys_exploration_draws_as_epsilon_greedy_does() -> None:
    agent = Agent((4,), 3, deepq.Config(hidden_sizes=(8,)))
    obs = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    for eps in (0.0, 0.3, 1.0):
        a, b = np.random.default_rng(5), np.random.default_rng(5)
        np.testing.assert_array_equal(agent.policy.explore(obs, eps, a), epsilon_greedy(agent.act, obs, eps, 3, b))
        assert a.random() == b.random()  # the same numbers drawn
    legal = np.array([[True, False, False]] * 6)
    assert (agent.policy.explore(obs, 0.5, np.random.default_rng(0), legal) == 0).all()
