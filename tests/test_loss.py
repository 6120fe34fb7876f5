"""TD targets and losses against numbers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from deepq.core.losses import categorical_projection, td_loss, td_target


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float32)


def d(gamma: float, terminated: torch.Tensor) -> torch.Tensor:
    """The discounts a replay memory gives for 1-step transitions: γ, or 0 where terminal."""
    return gamma * (1.0 - terminated)


def test_non_terminal_bootstraps_from_target_max() -> None:
    next_q = torch.tensor([[2.0, 5.0], [-1.0, -3.0]])  # (B=2, A=2)
    y = td_target(t(1.0, 0.5), d(0.9, t(0.0, 0.0)), next_q)
    # y0 = 1 + 0.9 * max(2, 5) = 1 + 4.5 = 5.5
    # y1 = 0.5 + 0.9 * max(-1, -3) = 0.5 - 0.9 = -0.4
    torch.testing.assert_close(y, t(5.5, -0.4))


def test_terminal_does_not_bootstrap() -> None:
    next_q = torch.tensor([[2.0, 5.0], [2.0, 5.0]])
    y = td_target(t(1.0, 1.0), d(0.9, t(1.0, 0.0)), next_q)
    # y0 = 1 (terminal: no bootstrap);  y1 = 1 + 0.9 * 5 = 5.5
    torch.testing.assert_close(y, t(1.0, 5.5))


def test_truncated_transition_is_stored_as_not_terminated_and_bootstraps() -> None:
    # A time-limit truncation is stored with terminated=0 and the true final observation as s',
    # so its target is the same as any non-terminal step.
    next_q = torch.tensor([[3.0, 4.0]])
    y = td_target(t(1.0), d(0.5, t(0.0)), next_q)
    # y = 1 + 0.5 * max(3, 4) = 3.0  (not 1.0, which a terminal would give)
    torch.testing.assert_close(y, t(3.0))
    assert td_target(t(1.0), d(0.5, t(1.0)), next_q).item() == pytest.approx(1.0)


def test_double_dqn_uses_online_argmax_evaluated_by_target() -> None:
    next_q_target = torch.tensor([[10.0, 1.0, 4.0]])  # target max is action 0 (10)
    next_q_online = torch.tensor([[0.0, 0.0, 7.0]])  # online net prefers action 2
    y_double = td_target(t(1.0), d(0.9, t(0.0)), next_q_target, next_q_online=next_q_online)
    y_plain = td_target(t(1.0), d(0.9, t(0.0)), next_q_target)
    # double: a* = argmax(0, 0, 7) = 2, y = 1 + 0.9 * Q_target(s', 2) = 1 + 0.9 * 4 = 4.6
    # plain:  y = 1 + 0.9 * max(10, 1, 4) = 1 + 9 = 10.0
    torch.testing.assert_close(y_double, t(4.6))
    torch.testing.assert_close(y_plain, t(10.0))


def test_double_dqn_terminal_does_not_bootstrap() -> None:
    y = td_target(t(2.0), d(0.9, t(1.0)), torch.tensor([[10.0, 1.0]]), next_q_online=torch.tensor([[0.0, 1.0]]))
    # terminal: y = r = 2
    torch.testing.assert_close(y, t(2.0))


def test_gamma_zero_target_is_reward() -> None:
    y = td_target(t(1.5, -2.0), d(0.0, t(0.0, 0.0)), torch.tensor([[100.0, 7.0], [3.0, 50.0]]))
    # y = r + 0 * max(...) = r
    torch.testing.assert_close(y, t(1.5, -2.0))


def test_mse_is_mean_of_squared_errors() -> None:
    q = t(1.0, 2.0, 3.0)
    y = t(2.0, 0.0, 3.5)
    # errors: -1, 2, -0.5 -> squares 1, 4, 0.25 -> mean = 5.25 / 3 = 1.75
    assert td_loss(q, y, "mse").item() == pytest.approx(1.75)


def test_mse_is_the_default() -> None:
    q, y = t(0.0, 0.0), t(3.0, 1.0)
    # (9 + 1) / 2 = 5
    assert td_loss(q, y).item() == pytest.approx(5.0)


def test_huber_quadratic_region() -> None:
    q, y = t(0.0, 1.0), t(0.5, 0.8)
    # |d| = 0.5, 0.2 < 1: 0.5 * d^2 = 0.125, 0.02 -> mean = 0.145 / 2 = 0.0725
    assert td_loss(q, y, "huber").item() == pytest.approx(0.0725)


def test_huber_linear_region() -> None:
    q, y = t(0.0, 10.0), t(3.0, 8.0)
    # |d| = 3, 2 > 1: |d| - 0.5 = 2.5, 1.5 -> mean = 2.0   (mse would give (9 + 4) / 2 = 6.5)
    assert td_loss(q, y, "huber").item() == pytest.approx(2.0)
    assert td_loss(q, y, "mse").item() == pytest.approx(6.5)


def test_huber_mixed_regions() -> None:
    q, y = t(0.0, 0.0), t(0.5, -4.0)
    # 0.5 * 0.25 = 0.125 (quadratic); 4 - 0.5 = 3.5 (linear) -> mean = 3.625 / 2 = 1.8125
    assert td_loss(q, y, "huber").item() == pytest.approx(1.8125)


def test_unknown_loss_kind_raises() -> None:
    with pytest.raises(ValueError, match="l1"):
        td_loss(t(0.0), t(1.0), "l1")


# ---- C51: the categorical projection (support -1, 0, 1; next-state probabilities 0.2, 0.5, 0.3) ----
Z = torch.tensor([-1.0, 0.0, 1.0])
P = torch.tensor([[0.2, 0.5, 0.3]])


def project(r: float, d: float) -> list[float]:
    return categorical_projection(P, torch.tensor([r]), torch.tensor([d]), Z)[0].tolist()


def test_projection_terminal_puts_all_mass_on_the_reward() -> None:
    assert project(0.0, 0.0) == pytest.approx([0.0, 1.0, 0.0])  # r = 0 is an atom
    assert project(0.5, 0.0) == pytest.approx([0.0, 0.5, 0.5])  # halfway between 0 and 1
    assert project(0.25, 0.0) == pytest.approx([0.0, 0.75, 0.25])
    assert project(7.0, 0.0) == pytest.approx([0.0, 0.0, 1.0])  # clipped to v_max


def test_projection_identity_and_exact_shift() -> None:
    assert project(0.0, 1.0) == pytest.approx([0.2, 0.5, 0.3])  # r = 0, discount 1: unchanged
    # r = dz = 1 shifts every atom up one; the top atom is clipped onto v_max: [0, 0.2, 0.5 + 0.3]
    assert project(1.0, 1.0) == pytest.approx([0.0, 0.2, 0.8])


def test_projection_splits_between_neighbours() -> None:
    # discount 0.5: atoms land on -0.5, 0, 0.5 -> -0.5 splits 0.2 as 0.1/0.1, 0.5 splits 0.3 as 0.15/0.15
    assert project(0.0, 0.5) == pytest.approx([0.1, 0.75, 0.15])


def test_projection_rows_are_independent_and_sum_to_one() -> None:
    probs = torch.softmax(torch.randn(64, 11, generator=torch.Generator().manual_seed(0)), dim=1)
    support = torch.linspace(-10, 10, 11)
    r, d = torch.linspace(-12, 12, 64), torch.rand(64, generator=torch.Generator().manual_seed(1))
    out = categorical_projection(probs, r, d, support)
    torch.testing.assert_close(out.sum(1), torch.ones(64))
    for i in (0, 17, 63):
        torch.testing.assert_close(out[i], categorical_projection(probs[i:i + 1], r[i:i + 1], d[i:i + 1], support)[0])
    # where no atom is clipped (|r| + 10 d <= 10), projection keeps the mean: E[r + d Z] = r + d E[Z]
    mid = r.abs() + 10 * d <= 10
    assert mid.sum() >= 5
    torch.testing.assert_close((out[mid] * support).sum(1), r[mid] + d[mid] * (probs[mid] * support).sum(1))
