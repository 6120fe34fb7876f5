"""The fast path for deepq's own MLP on CPU: the same TD update without autograd, and NumPy Q values.

Learner.reference_update (autograd) is the reference. For the default MLP the work is a few small matrix
products, and autograd's graph, the module calls and Optimizer.step's Python wrapper cost about as much as the
arithmetic: `benchmarks/updates.py` measures this update at ~3x the autograd one, `benchmarks/speed.py` the whole
loop. NumpyMLPUpdate does the same arithmetic with no graph: forward, dL/dQ, a hand-written backward, then Adam on
the optimizer's own state tensors (so checkpoints are unchanged). It runs in NumPy on zero-copy views of the
weights, the gradients and the Adam state, each flattened into one buffer, so Adam is one call of torch's fused
kernel over the flat buffers. It matches autograd to float rounding (OpenBLAS and torch's BLAS sum in different
orders): tests/test_fused.py.

`supports(cfg, obs_shape, device)` is the one place that decides where it runs (the learner asks it); what it
does not do (importance weights, noisy nets, dueling, C51, custom networks, RMSProp, other devices) stays on the
reference update, and a call with importance weights raises rather than ignoring them.

Acting uses deepq/core/fast_mlp.py's NumpyMLP: Q values with NumPy on zero-copy views of the online weights (the
optimizer updates them in place, so the views are always current and nothing is copied per step).
"""

from __future__ import annotations

import math
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from deepq.config import Config
from deepq.core.losses import LossOutput
from deepq.core.networks import resolve_arch
from deepq.core.replay import Batch
from deepq.errors import NonFiniteLossError

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)
Layers = list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) per Linear


def supports(cfg: Config, obs_shape: tuple[int, ...], device: torch.device, two_player: bool = False) -> bool:
    """Whether the NumPy update runs this config: deepq's own MLP without LayerNorm, Adam, plain TD (no Rainbow
    component but n-step, which only changes the batch; not PQN's λ-return regression), on CPU; cfg.fused=False
    forces the reference update. `two_player`: a board game's env (its boards get the MLP, see
    networks.resolve_arch)."""
    rainbow = cfg.dueling or cfg.noisy or cfg.atoms > 1 or cfg.prioritized
    return (cfg.fused and cfg.network is None and cfg.optimizer == "adam" and not rainbow and not cfg.layer_norm
            and cfg.target != "pqn" and device.type == "cpu"
            and resolve_arch(obs_shape, cfg, two_player=two_player) == "mlp")


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


def flat_optimizer_state(optimizer: torch.optim.Optimizer,
                         params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The optimizer's own state (step, exp_avg, exp_avg_sq per parameter, as torch's Adam and RAdam create it),
    each kind flattened like the weights (flatten_params' layout), the parameters' entries made views of it, so
    checkpoints keep torch's format: each parameter its own 0-d step count, a view of one (n_params,) tensor (a
    checkpoint resumes on the reference update too). What was there is carried over (a loaded checkpoint, or
    reference steps taken before). Returns (exp_avg (P,), exp_avg_sq (P,), the step counts (n_params,))."""
    state, numel = optimizer.state, sum(p.numel() for p in params)
    exp_avg, exp_avg_sq = torch.zeros(numel, dtype=params[0].dtype), torch.zeros(numel, dtype=params[0].dtype)
    steps = torch.zeros(len(params))
    views = zip(split_like(exp_avg, params), split_like(exp_avg_sq, params), strict=True)
    for i, (p, (m, v)) in enumerate(zip(params, views, strict=True)):
        s = state[p]
        if s:
            m.copy_(s["exp_avg"])
            v.copy_(s["exp_avg_sq"])
            steps[i] = float(s["step"])
        s.update(step=steps[i], exp_avg=m, exp_avg_sq=v)
    return exp_avg, exp_avg_sq, steps


def is_flat_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor], exp_avg: torch.Tensor) -> bool:
    """Whether the optimizer's state is still the flat buffers made by flat_optimizer_state (load_state_dict
    replaces it)."""
    first = optimizer.state.get(params[0])
    return first is not None and "exp_avg" in first and first["exp_avg"].data_ptr() == exp_avg.data_ptr()


def numpy_layers(net: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight (out, in), bias (out,)) of each Linear as NumPy views (CPU)."""
    return [(w.detach().numpy(), b.detach().numpy()) for w, b in linear_layers(net)]


def td_target_numpy(rewards: np.ndarray, discounts: np.ndarray, next_q_target: np.ndarray,
                    next_q_online: np.ndarray | None, next_legal: np.ndarray | None) -> np.ndarray:
    """deepq.core.losses.td_target in NumPy (see its docstring for the formula, Double DQN and games): (B,)."""
    if next_legal is not None:  # games: only legal a' count
        next_q_target = np.where(next_legal, next_q_target, -np.inf)  # (B, A)
        if next_q_online is not None:
            next_q_online = np.where(next_legal, next_q_online, -np.inf)
    if next_q_online is None:
        next_v = np.maximum.reduce(next_q_target, axis=1)  # (B,)
    else:
        best = next_q_online.argmax(axis=1)  # (B,) a* chosen by the online net
        next_v = next_q_target[np.arange(len(best)), best]  # (B,)
    if next_legal is not None:  # no legal move (game over): bootstrap from 0, not from max(∅) = −inf
        next_v = np.where(next_legal.any(axis=1), next_v, np.float32(0.0))
    return rewards + discounts * next_v  # (B,)


class NumpyMLPUpdate:
    """Learner.update's TD step for an MLP on CPU, in NumPy (see module doc)."""

    def __init__(self, online: nn.Module, target: nn.Module | None, optimizer: torch.optim.Optimizer,
                 cfg: Config) -> None:
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
        self._adam: tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor] | None = None

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

    def _adam_state(self) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, torch.Tensor]:
        """The optimizer's state flattened like the weights (flat_optimizer_state): (exp_avg (P,), exp_avg_sq (P,),
        the step counts as NumPy, the first step count)."""
        if self._adam is None or not is_flat_state(self.optimizer, self.params, self._adam[0]):
            exp_avg, exp_avg_sq, steps = flat_optimizer_state(self.optimizer, self.params)
            self._adam = (exp_avg, exp_avg_sq, steps.numpy(), steps[0])
        return self._adam

    def __call__(self, batch: Batch, weights: torch.Tensor | None = None) -> LossOutput:
        """One TD update; returns its loss and each transition's |TD error| (B,)."""
        if weights is not None:
            raise ValueError("the NumPy fast path does not weight transitions (prioritized replay): the learner "
                             "must run the reference update for this config (fast_path.supports says so)")
        cfg = self.cfg
        n = len(batch.actions)
        obs, next_obs = batch.obs.numpy().reshape(n, -1), batch.next_obs.numpy().reshape(n, -1)  # (B, D)
        actions = batch.actions.numpy()  # (B,)
        legal = batch.next_legal.numpy() if batch.next_legal is not None else None  # (B, A)
        hidden: list[np.ndarray] = []
        if cfg.double and self.target_flat is not None:  # one online pass over [s; s'], as Agent.update does
            q_both = self._forward(self.layers, np.concatenate([obs, next_obs]), self._buf("out", 2 * n), hidden)
            q_all, next_q_online = q_both[:n], q_both[n:]  # (B, A) each
            hidden = [h[:n] for h in hidden]
        else:
            q_all, next_q_online = self._forward(self.layers, obs, self._buf("out", n), hidden), None  # (B, A)
        next_q = self._forward(self.target_layers, next_obs, self._buf("target", n))  # (B, A)
        y = td_target_numpy(batch.rewards.numpy(), batch.discounts.numpy(), next_q, next_q_online, legal)  # (B,)
        rows = np.arange(n)
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

    def _ones(self, rows: int) -> np.ndarray:
        if len(self._ones_buf) != rows:
            self._ones_buf = np.ones(rows, dtype=self.flat.dtype)
        return self._ones_buf

    def _adam_step(self) -> None:
        """One Adam step over the flat buffers: torch's fused Adam kernel, as torch.optim.Adam(fused=True) runs it."""
        exp_avg, exp_avg_sq, steps, step = self._adam_state()
        group: dict[str, Any] = self.optimizer.param_groups[0]
        steps += 1  # every parameter's step count; the kernel reads it
        beta1, beta2 = group["betas"]
        torch.ops.aten._fused_adam_([self.flat_t], [self.grad_t], [exp_avg], [exp_avg_sq], [], [step], lr=group["lr"],
                                    beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                    amsgrad=False, maximize=False)
