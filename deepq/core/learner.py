"""The learner: the online and target networks, the optimizer, and the gradient step.

One update path: a loss from deepq/core/losses.py (TD, C51, MCTS or λ-return regression) gives
`(loss, per_sample)`, then one optimizer tail (finite check, zero_grad, backward, gradient clipping, step, Polyak
averaging). What it computed comes back as values (`UpdateResult`): the loss and each sample's |TD error|, which
prioritized replay turns into priorities; nothing is left on the side in attributes.

The swap-ins: for deepq's own MLP on CPU, `fast_path.supports(cfg, net, device)` chooses the NumPy TD update
(deepq/core/fast_path.py) and `fast_mlp.supports` the regression step without autograd (deepq/core/fast_mlp.py:
PQN's λ-returns, and DQN's TD step for the small CNN and LayerNorm MLPs): the same arithmetic, the same targets
(losses.td_target), no graph. They are chosen here and nowhere else, and raise on anything they do not do
(importance weights) instead of ignoring it.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

import torch
from torch import nn

from deepq.core import fast_mlp, fast_path, fast_q
from deepq.core.learner_config import LearnerConfig
from deepq.core.losses import LossOutput, c51_loss, dqn_loss, lambda_regression_loss, mcts_regression_loss, td_target
from deepq.core.networks import NetworkConfig
from deepq.core.replay import Batch
from deepq.errors import NonFiniteLossError


class UpdateResult(NamedTuple):
    loss: torch.Tensor  # 0-d, detached
    td_errors: torch.Tensor  # (B,) each sample's |TD error| (C51: its cross-entropy), the new priorities


def make_optimizer(net: nn.Module, cfg: LearnerConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        # Nature DQN's table (gradient and squared-gradient momentum 0.95, min squared gradient 0.01),
        # as the MinAtar paper's reference code sets it in torch.
        return torch.optim.RMSprop(net.parameters(), lr=cfg.lr, alpha=0.95, eps=0.01, centered=True, momentum=0.95)
    if cfg.optimizer == "radam":  # PQN's optimizer (purejaxql uses optax.radam)
        return torch.optim.RAdam(net.parameters(), lr=cfg.lr, foreach=True)
    # torch's fused Adam: one kernel for all parameters (3x faster than the per-tensor loop on CPU), whichever
    # update runs (cfg.fast decides between autograd and the swap-ins, not the optimizer's arithmetic).
    return torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=True)


def td_loss(online: nn.Module, target: nn.Module | None, batch: Batch, cfg: LearnerConfig, net: NetworkConfig,
            weights: torch.Tensor | None = None) -> LossOutput:
    """The TD loss of `batch` under these networks (C51's cross-entropy with atoms > 1): the learner's autograd
    update and an Ape-X actor's initial priorities (its per_sample) both take it from here. `target` None: the
    online net is its own target (target='none'), and Double DQN has nothing to decouple."""
    target_net = target if target is not None else online
    if net.noisy:  # fresh noise for these passes (the target net's independent of the online's)
        for module in ([online] if target_net is online else [online, target_net]):  # fixed order
            module.reset_noise()  # type: ignore[operator]
    double = cfg.double and target is not None
    if net.atoms > 1:
        return c51_loss(online, target_net, batch, double, weights)
    return dqn_loss(online, target_net, batch, cfg.loss, double, weights)


def acts_in_numpy(cfg: LearnerConfig, net: NetworkConfig, device: torch.device) -> bool:
    """Whether the policy computes Q values without the torch module (fast_q.fast_q: NumPy for deepq's own MLP,
    the compiled forward for its small CNN) on CPU: where a fast path runs, and for MCTS targets (a search asks
    for one state's Q values at a time, thousands of times a second). The learner and an actor's policy built from
    weights decide it here alike, so both act on the same arithmetic."""
    fast = (fast_path.supports(cfg, net, device) or fast_mlp.supports(cfg, net, device)
            or fast_mlp.supports_td(cfg, net, device) or (cfg.fast and cfg.target == "mcts"))
    return fast and fast_q.numpy_q_supported(net, device)


class Learner:
    """Owns the online net θ, the target net θ⁻ (none for target 'none', 'mcts' or 'pqn'), the optimizer and the
    update."""

    def __init__(self, online: nn.Module, cfg: LearnerConfig, net: NetworkConfig, device: torch.device) -> None:
        self.cfg, self.net, self.online = cfg, net, online
        # target="none": the online net computes its own target (the instability the target net prevents).
        self.target: nn.Module | None = None
        if cfg.keeps_target:
            self.target = copy.deepcopy(online).requires_grad_(False)
        self.optimizer = make_optimizer(online, cfg)
        self._params: list[torch.Tensor] = list(online.parameters())
        self._target_params: list[torch.Tensor] = list(self.target.parameters()) if self.target is not None else []
        self.fast: fast_path.NumpyMLPUpdate | None = None  # the swap-in, chosen here only
        if fast_path.supports(cfg, net, device):
            self.fast = fast_path.NumpyMLPUpdate(online, self.target, self.optimizer, cfg)
        self.fast_returns: fast_mlp.LambdaUpdate | None = None  # the regression step without autograd, chosen here
        self.fast_td = False  # ... and taken by DQN's update too (its targets from losses.td_target, as ever)
        if fast_mlp.supports(cfg, net, device):
            self.fast_returns = fast_mlp.LambdaUpdate(online, self.optimizer, cfg.loss, cfg.max_grad_norm)
        elif self.fast is None and fast_mlp.supports_td(cfg, net, device):
            self.fast_returns = fast_mlp.LambdaUpdate(online, self.optimizer, cfg.loss, cfg.max_grad_norm)
            self.fast_td = True
        self.numpy_q = acts_in_numpy(cfg, net, device)

    def update(self, batch: Batch, weights: torch.Tensor | None = None) -> UpdateResult:
        """One gradient step on the TD loss (C51's cross-entropy with atoms > 1) of `batch`.
        `weights` (B,): prioritized replay's importance weights, applied per transition."""
        if self.fast is not None:
            return UpdateResult(*self.fast(batch, weights))
        if self.fast_td and weights is None and self.fast_returns is not None:
            return self._fast_td_update(batch)
        return self.reference_update(batch, weights)

    def _fast_td_update(self, batch: Batch) -> UpdateResult:
        """The TD step of dqn_loss by the regression fast path: y = td_target(r, discount, Q_target(s'), [Q(s')],
        legal(s')) under no_grad, as dqn_loss computes it, then one step of (y − Q(s, a))² (or Huber) toward y."""
        assert self.fast_returns is not None
        target_net = self.target if self.target is not None else self.online
        with torch.no_grad():
            next_online = self.online(batch.next_obs) if self.cfg.double and self.target is not None else None
            y = td_target(batch.rewards, batch.discounts, target_net(batch.next_obs), next_online, batch.next_legal)
        out = UpdateResult(*self.fast_returns(batch.obs, batch.actions, y))
        self._polyak()
        return out

    def reference_update(self, batch: Batch, weights: torch.Tensor | None = None) -> UpdateResult:
        """The update as the algorithm states it, with autograd; the fast path must match it."""
        return self._step(self.loss(batch, weights), "TD loss")

    def priorities(self, batch: Batch) -> torch.Tensor:
        """Each transition's |TD error| (C51: its cross-entropy) under today's weights, without a step: what a
        distributed actor ships as the initial priorities of the transitions it collected (Ape-X)."""
        with torch.no_grad():
            return self.loss(batch).per_sample

    def loss(self, batch: Batch, weights: torch.Tensor | None = None) -> LossOutput:
        """The TD loss of `batch` (C51's cross-entropy with atoms > 1), as the update's autograd path takes it."""
        return td_loss(self.online, self.target, batch, self.cfg, self.net, weights)

    def fit_targets(self, obs: torch.Tensor, targets: torch.Tensor, searched: torch.Tensor) -> UpdateResult:
        """target='mcts': one gradient step regressing Q(s, a) toward the search's values Q_mcts(s, a).
        obs (B, *obs_shape); targets (B, A); searched (B, A) bool, the actions the search tried."""
        device = self._params[0].device
        obs, targets, searched = (x.to(device) for x in (obs, targets, searched))
        return self._step(mcts_regression_loss(self.online, obs, targets, searched), "MCTS regression loss")

    def fit_returns(self, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> UpdateResult:
        """target='pqn': one gradient step regressing Q(s, a) toward the λ-returns G of a rollout minibatch.
        obs (B, *obs_shape); actions (B,); returns (B,)."""
        if self.fast_returns is not None:
            return UpdateResult(*self.fast_returns(obs, actions, returns))
        return self.reference_fit_returns(obs, actions, returns)

    def reference_fit_returns(self, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> UpdateResult:
        """fit_returns as the algorithm states it, with autograd; the fast path must match it."""
        return self._step(lambda_regression_loss(self.online, obs, actions, returns, self.cfg.loss), "λ-return loss")

    def _step(self, out: LossOutput, what: str) -> UpdateResult:
        """The optimizer tail every loss shares: θ ← θ − step(∇loss), then θ⁻ ← θ⁻ + τ(θ − θ⁻) for Polyak."""
        if not torch.isfinite(out.loss):
            raise NonFiniteLossError(f"{what} is {out.loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        if self.cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self._params, self.cfg.max_grad_norm)
        self.optimizer.step()
        self._polyak()
        return UpdateResult(out.loss.detach(), out.per_sample)

    def _polyak(self) -> None:
        """θ⁻ ← θ⁻ + τ(θ − θ⁻) after each step, for target='polyak'."""
        if self.cfg.target == "polyak":
            for target, online in zip(self._target_params, self._params, strict=True):
                target.lerp_(online, self.cfg.tau)

    def sync_target(self) -> None:
        """Hard sync θ⁻ ← θ."""
        if self.target is not None:
            self.target.load_state_dict(self.online.state_dict())

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self._params)

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue training bit for bit (the format deepq 0.1.0 wrote)."""
        return {"online": self.online.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None,
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        if self.target is not None and state["target"] is not None:
            self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
