"""TD targets and losses as pure functions, testable against numbers computed by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def td_target(
    rewards: torch.Tensor,  # (B,)
    terminated: torch.Tensor,  # (B,) 1.0 where s' is terminal, else 0.0
    next_q_target: torch.Tensor,  # (B, A) Q_target(s', .)
    gamma: float,
    next_q_online: torch.Tensor | None = None,  # (B, A) Q(s', .): Double DQN when given
) -> torch.Tensor:
    """y = r + gamma * max_a' Q_target(s', a'), with no bootstrap where s' is terminal.

    Double DQN: a* = argmax_a' Q_online(s', a'), y = r + gamma * Q_target(s', a*).
    A truncated (time-limit) s' is not terminal: its true final observation is bootstrapped.
    """
    if next_q_online is None:
        next_v = next_q_target.amax(dim=1)  # (B,)
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)  # (B, 1)
        next_v = next_q_target.gather(1, best).squeeze(1)  # (B,)
    return rewards + gamma * (1.0 - terminated) * next_v  # (B,)


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Mean over the batch of (y - Q(s,a))^2 ('mse') or the Huber loss with delta 1 ('huber')."""
    if kind == "mse":
        return F.mse_loss(q_taken, target)
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, target)
    raise ValueError(f"unknown loss {kind!r}: use 'mse' or 'huber'")
