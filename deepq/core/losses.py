"""TD targets and losses as pure functions, testable against numbers computed by hand.

Each loss the learner minimises (`dqn_loss`, `c51_loss`, `mcts_regression_loss`, `lambda_regression_loss`) takes
the networks and a batch and returns a `LossOutput`: the scalar to minimise and a per-sample value (the |TD
error|, C51's cross-entropy) that prioritized replay turns into priorities (as Acme's `LossFn` returns `(loss,
extra)`). The optimizer step that follows is the learner's (deepq/core/learner.py), the same for every loss.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from deepq.core.replay import Batch


class LossOutput(NamedTuple):
    loss: torch.Tensor  # 0-d: what the gradient step minimises
    per_sample: torch.Tensor  # (B,) detached: |y − Q(s, a)|, or C51's cross-entropy (prioritized replay's priorities)


def td_target(
    rewards: torch.Tensor,  # (B,) r, or the n-step reward sum
    discounts: torch.Tensor,  # (B,) γ (γ^n for n-step returns) where s' is not terminal, else 0; −γ in games
    next_q_target: torch.Tensor,  # (B, A) Q_target(s', .), in games the opponent snapshot's Q_opponent(s', .)
    next_q_online: torch.Tensor | None = None,  # (B, A) Q(s', .): Double DQN when given
    next_legal: torch.Tensor | None = None,  # (B, A) bool: the legal actions in s' (games); None = all legal
) -> torch.Tensor:
    """y = r + γ · max_a' Q_target(s', a'), with no bootstrap where s' is terminal (discount 0).

    Double DQN: a* = argmax_a' Q_online(s', a'), y = r + γ · Q_target(s', a*).
    A truncated (time-limit) s' is not terminal: its true final observation is bootstrapped.

    Two-player zero-sum games (self-play). s' is the opponent's turn, seen from the opponent's side,
    and a zero-sum position is worth to us minus what it is worth to them, so

        y = r − γ · max over legal a' of Q_opponent(s', a')      (y = r where s' is terminal)

    which is the line above with discount −γ (the replay stores −γ for games; n plies give (−γ)^n,
    whose sign is right for whoever moves after them). Q_opponent is an older snapshot of our own
    network (the target network). Worked example, tic-tac-toe, γ = 0.9, we play X:
      - X completes a line: the game ends, r = +1, discount 0, so y = +1.
      - X's move leaves O a winning reply: Q_opponent(s', ·) = [+0.9 for the winning cell, 0.1, …],
        r = 0, so y = 0 − 0.9 · 0.9 = −0.81: a bad move for X, as it should be.
      - X's move forces a draw-ish position: O's best is 0.0, so y = 0.
    Only legal a' count: illegal entries (occupied cells) are masked out of every max, and a row
    with no legal action (a terminal s') bootstraps from 0 instead of max(∅) = −inf.
    """
    if next_legal is not None:
        next_q_target = next_q_target.masked_fill(~next_legal, float("-inf"))  # (B, A)
        if next_q_online is not None:
            next_q_online = next_q_online.masked_fill(~next_legal, float("-inf"))
    if next_q_online is None:
        next_v = next_q_target.amax(dim=1)  # (B,)
    else:
        best = next_q_online.argmax(dim=1, keepdim=True)  # (B, 1)
        next_v = next_q_target.gather(1, best).squeeze(1)  # (B,)
    if next_legal is not None:  # no legal move (game over): -inf * 0 would be NaN
        next_v = torch.where(next_legal.any(dim=1), next_v, torch.zeros_like(next_v))
    return rewards + discounts * next_v  # (B,)


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str = "mse", reduction: str = "mean") -> torch.Tensor:
    """Mean over the batch of (y - Q(s,a))^2 ('mse') or the Huber loss with delta 1 ('huber');
    reduction='none' gives the (B,) per-transition losses (to weight them, as prioritized replay does)."""
    if kind == "mse":
        return F.mse_loss(q_taken, target, reduction=reduction)
    if kind == "huber":
        return F.smooth_l1_loss(q_taken, target, reduction=reduction)
    raise ValueError(f"unknown loss {kind!r}: use 'mse' or 'huber'")


def categorical_projection(next_probs: torch.Tensor,  # (B, N) p(s', a*) over the support
                           rewards: torch.Tensor,  # (B,)
                           discounts: torch.Tensor,  # (B,) gamma^n where s' is not terminal, else 0
                           support: torch.Tensor,  # (N,) atoms z_0 < ... < z_{N-1}, evenly spaced
                           ) -> torch.Tensor:
    """C51's target distribution (Bellemare et al. 2017): the distribution of r + discount * Z(s', a*),
    projected back onto the fixed support. Each shifted atom Tz_j = clamp(r + d z_j, z_0, z_{N-1})
    lands between two neighbours l <= b_j <= u and splits its probability between them in
    proportion to closeness; an atom that lands exactly on a support point gives it all its mass.
    Returns (B, N) probabilities that sum to 1 per row.
    """
    n = support.numel()
    v_min, v_max = float(support[0]), float(support[-1])
    dz = (v_max - v_min) / (n - 1)
    tz = (rewards[:, None] + discounts[:, None] * support[None, :]).clamp(v_min, v_max)  # (B, N)
    b = (tz - v_min) / dz  # (B, N) fractional atom position in [0, N-1]
    lower, upper = b.floor().long(), b.ceil().long()  # (B, N)
    exact = (lower == upper).to(next_probs.dtype)  # landed on an atom: all mass to it
    offset = (torch.arange(len(b), device=b.device) * n)[:, None]  # (B, 1) row starts in the flat output
    out = torch.zeros(len(b) * n, dtype=next_probs.dtype, device=next_probs.device)
    out.index_add_(0, (lower + offset).flatten(), (next_probs * (upper.to(b.dtype) - b + exact)).flatten())
    out.index_add_(0, (upper + offset).flatten(), (next_probs * (b - lower.to(b.dtype))).flatten())
    return out.view(len(b), n)


def weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The batch mean, each sample weighted by prioritized replay's importance weight when given."""
    return per_sample.mean() if weights is None else (weights * per_sample).mean()


def dqn_loss(online: nn.Module, target_net: nn.Module, batch: Batch, kind: str = "mse", double: bool = False,
             weights: torch.Tensor | None = None) -> LossOutput:
    """The TD loss of one minibatch: mean over it of (y − Q(s, a))² ('mse') or Huber ('huber'), y = td_target.

    `target_net` is the target network (the online net itself where there is none, target='none'); games
    store the discount −γ and the legal moves of s', so the same line computes the negated, masked target.
    `double`: Double DQN, the online net choosing a* (one online pass over [s; s'], as the update needs both).
    `weights` (B,): prioritized replay's importance weights, applied per transition.
    """
    if double:
        q_both = online(torch.cat([batch.obs, batch.next_obs]))  # (2B, A)
        q_all, next_q_online = q_both[: len(batch.obs)], q_both[len(batch.obs):].detach()  # (B, A) each
    else:
        q_all, next_q_online = online(batch.obs), None  # (B, A)
    with torch.no_grad():
        next_q = target_net(batch.next_obs)  # (B, A)
        y = td_target(batch.rewards, batch.discounts, next_q, next_q_online, batch.next_legal)  # (B,)
    q = q_all.gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # (B,) Q(s, a)
    if weights is None:
        loss = td_loss(q, y, kind)
    else:
        loss = (weights * td_loss(q, y, kind, reduction="none")).mean()
    return LossOutput(loss, (y - q).detach().abs())


def c51_loss(online: nn.Module, target_net: nn.Module, batch: Batch, double: bool = False,
             weights: torch.Tensor | None = None) -> LossOutput:
    """C51 (Bellemare et al. 2017): cross-entropy between the projected target distribution of
    r + γ^n Z(s', a*) and the predicted distribution of Z(s, a), per transition; a* by the target net's
    expected values, or the online net's (`double`); games choose a* among the legal moves of s'."""
    rows = torch.arange(len(batch.actions), device=batch.actions.device)
    log_p = online.log_probs(batch.obs)[rows, batch.actions]  # type: ignore[operator]  # (B, atoms)
    with torch.no_grad():
        support: torch.Tensor = target_net.head.support  # type: ignore[union-attr,assignment]  # (atoms,)
        next_p = target_net.log_probs(batch.next_obs).exp()  # type: ignore[operator]  # (B, A, atoms)
        if double:
            next_q = online(batch.next_obs)  # (B, A) Double: the online net chooses a*
        else:
            next_q = (next_p * support).sum(2)  # (B, A) the target's own expected values
        if batch.next_legal is not None:  # games: a* among legal moves (a terminal s' has discount 0)
            next_q = next_q.masked_fill(~batch.next_legal, float("-inf"))
        best = next_q.argmax(dim=1)  # (B,) a*
        target = categorical_projection(next_p[rows, best], batch.rewards, batch.discounts, support)  # (B, atoms)
    per_sample = -(target * log_p).sum(1)  # (B,)
    return LossOutput(weighted_mean(per_sample, weights), per_sample.detach())


def mcts_regression_loss(online: nn.Module, obs: torch.Tensor, targets: torch.Tensor,
                         searched: torch.Tensor) -> LossOutput:
    """target='mcts': the mean over searched (s, a) of (Q(s, a) − Q_mcts(s, a))².

    obs (B, *obs_shape); targets (B, A) the search's mean values; searched (B, A) bool, the actions the search
    tried: the others get no target and no gradient. per_sample: each state's mean squared error over its
    searched actions.
    """
    q = online(obs)  # (B, A)
    mask = searched.to(q.dtype)  # (B, A)
    sq = (q - targets) ** 2 * mask  # (B, A)
    loss = sq.sum() / mask.sum().clamp(min=1.0)
    return LossOutput(loss, (sq.sum(1) / mask.sum(1).clamp(min=1.0)).detach())


def lambda_returns(
    rewards: torch.Tensor,  # (T, N) the rollout's rewards, step t of env n
    discounts: torch.Tensor,  # (T, N) γ where s'_t is not terminal, 0 where it is; −γ in games
    next_values: torch.Tensor,  # (T, N) max_a Q(s'_t, a) of the true s'_t (the final obs where an episode ended)
    continues: torch.Tensor,  # (T, N) bool: step t+1 of env n goes on from s'_t (no episode end, not the last step)
    lam: float,
) -> torch.Tensor:
    """Q(λ) returns of a rollout, computed backwards over its T steps (Peng & Williams 1996; PQN's targets):

        G_t = r_t + d_t · ((1 − λ) · V(s'_t) + λ · G_{t+1})     where step t+1 continues the episode
        G_t = r_t + d_t · V(s'_t)                               where it does not (an episode end, the rollout's end)

    with V(s') = max_a Q(s', a). A terminal s'_t has d_t = 0 (G_t = r_t); a truncated one bootstraps from its true
    final observation; the rollout's last step bootstraps from the observation it ends on. λ = 0 is the one-step
    target r + γ V(s'); λ = 1 the discounted rewards to the episode's or the rollout's end, then V. In games
    d_t = −γ: s'_t is the opponent's turn, so both V(s'_t) and G_{t+1} are the opponent's, negated.
    """
    out = torch.empty_like(rewards)  # (T, N)
    following = next_values[-1]  # G_{t+1}, used only where step t continues (never at t = T − 1)
    for t in range(len(rewards) - 1, -1, -1):
        blend = torch.where(continues[t], (1 - lam) * next_values[t] + lam * following, next_values[t])
        out[t] = following = rewards[t] + discounts[t] * blend
    return out


def lambda_regression_loss(online: nn.Module, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                           kind: str = "mse") -> LossOutput:
    """target='pqn': the mean over the minibatch of (G − Q(s, a))² ('mse'; Huber with 'huber'), G the λ-return.
    obs (B, *obs_shape); actions (B,) int64; returns (B,) float. per_sample: |G − Q(s, a)|."""
    q = online(obs).gather(1, actions.long().unsqueeze(1)).squeeze(1)  # (B,)
    return LossOutput(td_loss(q, returns, kind), (returns - q).abs().detach())
