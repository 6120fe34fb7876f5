"""The fast path for deepq's own MLP on CPU: the same TD update without autograd.

Learner.reference_update (autograd through losses.dqn_loss) is the reference. For the default MLP the work is a few
small matrix products, and autograd's graph, the module calls and Optimizer.step's Python wrapper cost about as much
as the arithmetic: `benchmarks/updates.py` measures this update at ~3x the autograd one, `benchmarks/speed.py` the
whole loop. NumpyMLPUpdate does the same arithmetic with no graph:

    Q(s, ·), Q(s', ·) and Q_target(s', ·) by NumPy matrix products on views of the weights
    y = losses.td_target(r, discount, Q_target(s', ·), [Q(s', ·)], legal(s'))    the one TD target, in torch
    dL/dQ(s, a) of mean((Q(s, a) − y)²) (or Huber), then a hand-written backward through the ReLUs
    the gradient norm clipped as nn.utils.clip_grad_norm_ does, then torch.optim.adam.adam (fused) on flat buffers

The weights, the gradients and the optimizer's own state tensors (so checkpoints are unchanged) are each one flat
buffer, so Adam is one kernel call. It matches autograd to float rounding (OpenBLAS and torch's BLAS sum in different
orders): tests/test_fused.py, which also runs the default CartPole and tic-tac-toe configs through Learner.update.

`supports(cfg, net, device)` is the one place that decides where it runs (the learner asks it); what it does not do
(importance weights, noisy nets, dueling, C51, custom networks, LayerNorm, RMSProp, other devices) stays on the
reference update, and a call with importance weights raises rather than ignoring them. Acting uses
deepq/core/fast_q.py's NumpyMLP on the same views of the weights (the optimizer updates them in place).
"""

from __future__ import annotations

import math
from typing import NamedTuple, TypeVar

import numpy as np
import torch
from torch import nn
from torch.optim.adam import adam

from deepq.core.learner_config import LearnerConfig
from deepq.core.losses import LossOutput, td_target
from deepq.core.networks import NetworkConfig
from deepq.core.replay import Batch
from deepq.errors import NonFiniteLossError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
Layers = list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) per Linear


def supports(cfg: LearnerConfig, net: NetworkConfig, device: torch.device) -> bool:
    """Whether the NumPy update runs: deepq's own MLP without LayerNorm, Adam, plain TD (no Rainbow component but
    n-step, which only changes the batch; not PQN's λ-return regression or MCTS targets), on CPU; cfg.fast=False
    forces the reference update."""
    return (cfg.fast and net.own_plain and net.arch == "mlp" and not net.layer_norm and cfg.optimizer == "adam"
            and not cfg.weighted and cfg.target in ("hard", "polyak", "none") and device.type == "cpu")


def linear_layers(net: nn.Module) -> Layers:
    return [(m.weight, m.bias) for m in net.modules() if isinstance(m, nn.Linear)]


def flatten_params(params: list[torch.Tensor]) -> torch.Tensor:
    """Move `params` into one new contiguous buffer, each becoming a view of its slice; returns the buffer.
    Values are unchanged; load_state_dict and optimizers write into the views in place."""
    flat = torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype, device=params[0].device)
    for p, view in zip(params, split_like(flat, params), strict=True):
        view.copy_(p.detach())
        p.data = view
    return flat


def split_like(flat: ArrayT, params: list[torch.Tensor]) -> list[ArrayT]:
    """Views of the 1-D `flat` shaped like each of `params`, laid out in order (as flatten_params lays them)."""
    views, offset = [], 0
    for p in params:
        views.append(flat[offset:offset + p.numel()].reshape(p.shape))
        offset += p.numel()
    return views


class FlatState(NamedTuple):
    """An optimizer's state over flat buffers (flat_optimizer_state)."""

    exp_avg: torch.Tensor  # (P,) every parameter's first moment, in flatten_params' layout
    exp_avg_sq: torch.Tensor  # (P,) the second moments
    steps: torch.Tensor  # (n_params,) each parameter's step count (its state["step"] is a 0-d view of one entry)
    counter: torch.Tensor  # 0-d, not a view: the count the fused Adam kernel advances (torch's add on a view of
    # `steps` costs 5x as much), copied into `steps` after each step


def flat_optimizer_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> FlatState:
    """Adam's and RAdam's state (step, exp_avg, exp_avg_sq per parameter) flattened like the weights
    (flat_state_buffers)."""
    (exp_avg, exp_avg_sq), steps = flat_state_buffers(optimizer, params, ("exp_avg", "exp_avg_sq"))
    return FlatState(exp_avg, exp_avg_sq, steps, steps[0].clone())


def flat_state_buffers(optimizer: torch.optim.Optimizer, params: list[torch.Tensor],
                       keys: tuple[str, ...]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The optimizer's own per-parameter state buffers named `keys` (as torch's optimizer creates them), each kind
    flattened like the weights (flatten_params' layout), the parameters' entries made views of it, so checkpoints
    keep torch's format: each parameter also its own 0-d step count, a view of one (n_params,) tensor (a checkpoint
    resumes on the reference update too). What was there is carried over (a loaded checkpoint, or reference steps
    taken before). Returns the flat buffers, in the order of `keys`, and the step counts."""
    state, numel = optimizer.state, sum(p.numel() for p in params)
    flats = [torch.zeros(numel, dtype=params[0].dtype) for _ in keys]
    steps = torch.zeros(len(params))
    views = zip(*(split_like(flat, params) for flat in flats), strict=True)
    for i, (p, bufs) in enumerate(zip(params, views, strict=True)):
        s = state[p]
        if s:
            for key, buf in zip(keys, bufs, strict=True):
                buf.copy_(s[key])
            steps[i] = float(s["step"])
        s.update(step=steps[i], **dict(zip(keys, bufs, strict=True)))
    return flats, steps


def is_flat_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], flat: torch.Tensor,
                  key: str = "exp_avg") -> bool:
    """Whether the optimizer's state is still the flat buffers made by flat_state_buffers (load_state_dict
    replaces it): `flat` is the buffer of `key`."""
    first = optimizer.state.get(params[0])
    return first is not None and key in first and first[key].data_ptr() == flat.data_ptr()


def numpy_layers(net: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (out, in), bias (out,)) of each Linear as NumPy views (CPU)."""
    return [(w.detach().numpy(), b.detach().numpy()) for w, b in linear_layers(net)]


class NumpyMLPUpdate:
    """Learner.update's TD step for an MLP on CPU, in NumPy (see module doc)."""

    def __init__(self, online: nn.Module, target: nn.Module | None, optimizer: torch.optim.Optimizer,
                 cfg: LearnerConfig) -> None:
        self.cfg, self.optimizer = cfg, optimizer
        self.params = [p for wb in linear_layers(online) for p in wb]  # the order of online.parameters()
        self.flat_t = flatten_params(self.params)  # (P,) every online parameter, in order
        self.flat = self.flat_t.numpy()
        self.layers = numpy_layers(online)
        self.target_flat = flatten_params([p for wb in linear_layers(target) for p in wb]) \
            if target is not None else None  # (P,) torch
        self.target_layers = numpy_layers(target) if target is not None else self.layers
        self.grad_t = torch.zeros_like(self.flat_t)  # (P,) dL/dθ, in the same layout
        self.grad = self.grad_t.numpy()
        grads = split_like(self.grad, self.params)  # per parameter, in order: (W, b) of each layer
        self.grad_layers = list(zip(grads[0::2], grads[1::2], strict=True))
        self._buffers: dict[tuple[str, int], list[np.ndarray]] = {}
        self._ones_buf = np.ones(0, dtype=self.flat.dtype)
        self._rows_buf = np.arange(0)
        self._adam: FlatState | None = None

    def _buf(self, kind: str, rows: int) -> list[np.ndarray]:
        """Per-layer scratch arrays for `rows` rows, reused by every update (no allocation, warm in cache).
        'out'/'target': each layer's output; 'grad': dL/d(layer input); 'dq': [0] is dL/dQ(s, .)."""
        key = (kind, rows)
        if key not in self._buffers:
            dim = 1 if kind == "grad" else 0  # a layer's input width, or its output width
            widths = [w.shape[dim] for w, _ in self.layers] if kind != "dq" else [self.layers[-1][0].shape[0]]
            self._buffers[key] = [np.empty((rows, d), dtype=self.flat.dtype) for d in widths]
        return self._buffers[key]

    def _forward(self, layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray, out: list[np.ndarray],
                 keep: list[np.ndarray] | None = None) -> np.ndarray:
        """ReLU MLP forward into the preallocated `out`; with `keep`, appends each layer's input."""
        h, last = x, len(layers) - 1
        for i, (w, b) in enumerate(layers):
            if keep is not None:
                keep.append(h)
            h = np.matmul(h, w.T, out=out[i])  # (B, out)
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h  # (B, A)

    def _adam_state(self) -> FlatState:
        """The optimizer's state flattened like the weights (flat_optimizer_state): (exp_avg (P,), exp_avg_sq (P,),
        the step counts (n_params,))."""
        if self._adam is None or not is_flat_state(self.optimizer, self.params, self._adam[0]):
            self._adam = flat_optimizer_state(self.optimizer, self.params)
        return self._adam

    def __call__(self, batch: Batch, weights: torch.Tensor | None = None) -> LossOutput:
        """One TD update; returns its loss and each transition's |TD error| (B,)."""
        if weights is not None:
            raise ValueError("the NumPy fast path does not weight transitions (prioritized replay): the learner "
                             "must run the reference update for this config (fast_path.supports says so)")
        cfg = self.cfg
        n = batch.actions.shape[0]  # (len() of a tensor costs 2 µs)
        obs, next_obs = batch.obs.numpy().reshape(n, -1), batch.next_obs.numpy().reshape(n, -1)  # (B, D)
        actions = batch.actions.numpy()  # (B,)
        hidden: list[np.ndarray] = []
        if cfg.double and self.target_flat is not None:  # one online pass over [s; s'], as losses.dqn_loss does
            q_both = self._forward(self.layers, np.concatenate([obs, next_obs]), self._buf("out", 2 * n), hidden)
            q_all, next_q_online = q_both[:n], q_both[n:]  # (B, A) each
            hidden = [h[:n] for h in hidden]
        else:
            q_all, next_q_online = self._forward(self.layers, obs, self._buf("out", n), hidden), None  # (B, A)
        next_q = self._forward(self.target_layers, next_obs, self._buf("target", n))  # (B, A)
        # the one TD target, on zero-copy torch views of the NumPy Q values (no autograd: nothing requires grad)
        y = td_target(batch.rewards, batch.discounts, torch.from_numpy(next_q),
                      None if next_q_online is None else torch.from_numpy(next_q_online), batch.next_legal).numpy()
        rows = self._rows(n)  # 0..n-1
        err = q_all[rows, actions] - y  # (B,) Q(s, a) − y
        if cfg.loss == "mse":
            loss = float(np.dot(err, err)) / n
            dq = err * np.float32(2.0 / n)  # dL/dQ(s,a) of mean((Q − y)²)
        else:
            abs_err = np.abs(err)
            loss = float(np.where(abs_err < 1.0, 0.5 * err * err, abs_err - 0.5).mean())  # Huber, delta 1
            dq = np.clip(err, -1.0, 1.0) * np.float32(1.0 / n)  # the error, clipped to [-1, 1]
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"TD loss is {loss}")
        g = self._buf("dq", n)[0]
        g.fill(0.0)
        g[rows, actions] = dq  # (B, A): only the taken action has a gradient
        g_in = self._buf("grad", n)
        for i in range(len(self.layers) - 1, -1, -1):
            h_in, (grad_w, grad_b) = hidden[i], self.grad_layers[i]  # h_in (B, in): the layer's input
            np.matmul(g.T, h_in, out=grad_w)  # dL/dW (out, in)
            np.matmul(self._ones(n), g, out=grad_b)  # dL/db (out,): the column sums, as a product (3x faster)
            if i > 0:  # (B, in): back through the ReLU (0 where its output was 0, as autograd does)
                g = np.matmul(g, self.layers[i][0], out=g_in[i])
                g *= h_in > 0.0
        if cfg.max_grad_norm > 0:  # as nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1
            coef = cfg.max_grad_norm / (math.sqrt(float(np.dot(self.grad, self.grad))) + 1e-6)
            if coef < 1.0:
                self.grad *= np.float32(coef)
        self._adam_step()
        if cfg.target == "polyak" and self.target_flat is not None:  # θ⁻ ← θ⁻ + τ(θ − θ⁻)
            self.target_flat.lerp_(self.flat_t, cfg.tau)  # one op over every parameter
        loss_t = torch.from_numpy(np.array(loss, dtype=np.float32))  # 0-d, as autograd's loss
        return LossOutput(loss_t, torch.from_numpy(np.abs(err)))  # (B,) |Q(s, a) − y|

    def _rows(self, n: int) -> np.ndarray:
        if len(self._rows_buf) != n:
            self._rows_buf = np.arange(n)
        return self._rows_buf

    def _ones(self, rows: int) -> np.ndarray:
        if len(self._ones_buf) != rows:
            self._ones_buf = np.ones(rows, dtype=self.flat.dtype)
        return self._ones_buf

    def _adam_step(self) -> None:
        """One Adam step over the flat buffers, as torch.optim.Adam(fused=True) takes it (flat_adam_step)."""
        flat_adam_step(self.optimizer, self.flat_t, self.grad_t, self._adam_state())


def flat_adam_step(optimizer: torch.optim.Optimizer, param: torch.Tensor, grad: torch.Tensor, state: FlatState) -> None:
    """One Adam step of `optimizer`'s settings over flat buffers (flatten_params' layout): torch's functional
    `adam` with fused=True, the kernel torch.optim.Adam(fused=True) runs, over one tensor instead of one per
    parameter (the same arithmetic per element)."""
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    adam([param], [grad], [state.exp_avg], [state.exp_avg_sq], [], [state.counter], fused=True, amsgrad=False,
         beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"],
         maximize=False)  # adds 1 to state.counter
    state.steps.fill_(state.counter)  # every parameter's count, as torch keeps one per parameter
