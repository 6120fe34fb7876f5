"""The fast path for deepq's own MLP: the same TD update with the backward pass written out, and NumPy acting.

Agent.update (autograd) is the reference. For the default MLP the work is a few small
matrix products, and autograd's graph, the module calls and Optimizer.step's Python
wrapper cost about as much as the arithmetic. FusedMLPUpdate does the same arithmetic
with no graph: forward, dL/dQ, a hand-written backward into persistent gradient buffers,
then the fused Adam kernel on the optimizer's own state tensors (so checkpoints are
unchanged). tests/test_fused.py checks that it gives bit-identical weights to the
autograd update for every loss/target/double/clipping combination.

NumpyPolicy acts with NumPy on zero-copy views of the online weights: the optimizer
updates them in place, so the views are always current and nothing is copied per step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepq.config import Config
from deepq.errors import NonFiniteLossError
from deepq.loss import td_target
from deepq.replay import Batch

_relu_backward = torch.ops.aten.threshold_backward.grad_input  # what autograd runs for ReLU's backward
Layers = list[tuple[torch.Tensor, torch.Tensor]]  # (weight (out, in), bias (out,)) per Linear


def linear_layers(net: nn.Module) -> Layers:
    return [(m.weight, m.bias) for m in net.modules() if isinstance(m, nn.Linear)]


def mlp_forward(layers: Layers, x: torch.Tensor, keep: list[torch.Tensor] | None = None,
                out: list[torch.Tensor] | None = None) -> torch.Tensor:
    """ReLU MLP forward; with `keep`, appends each layer's input (what the backward pass needs);
    with `out`, writes layer i's output into out[i] (preallocated, so nothing is allocated)."""
    h = x.reshape(len(x), -1)  # (B, D)
    last = len(layers) - 1
    for i, (w, b) in enumerate(layers):
        if keep is not None:
            keep.append(h)
        h = torch.addmm(b, h, w.t(), out=out[i]) if out is not None else torch.addmm(b, h, w.t())  # (B, out)
        if i < last:
            h = h.relu_()
    return h  # (B, A)


class FusedMLPUpdate:
    """Agent.update's TD step for an MLP, without autograd (see module doc)."""

    def __init__(self, online: nn.Module, target: nn.Module | None, optimizer: torch.optim.Optimizer,
                 cfg: Config) -> None:
        self.cfg = cfg
        self.layers = linear_layers(online)
        self.target_layers = linear_layers(target) if target is not None else self.layers
        self.params = [p for wb in self.layers for p in wb]  # the order of online.parameters()
        self.target_params = [p for wb in linear_layers(target) for p in wb] if target is not None else []
        self.optimizer = optimizer
        # Persistent gradient buffers, attached as .grad so clip_grad_norm_ and state_dict see them.
        for p in self.params:
            p.grad = torch.zeros_like(p)
        self.grads = [p.grad for p in self.params]
        self._buffers: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._adam: tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor] | None = None

    def _buf(self, kind: str, rows: int) -> list[torch.Tensor]:
        """Per-layer scratch tensors for `rows` rows, reused by every update (warm in cache, no allocation).
        'out'/'target': each layer's output; 'grad': dL/d(layer input); 'dq': [0] is dL/dQ(s, .)."""
        key = (kind, rows)
        if key not in self._buffers:
            w0 = self.layers[0][0]
            dim = 1 if kind == "grad" else 0  # a layer's input width, or its output width
            widths = [w.shape[dim] for w, _ in self.layers] if kind != "dq" else [self.layers[-1][0].shape[0]]
            self._buffers[key] = [torch.empty((rows, d), dtype=w0.dtype, device=w0.device) for d in widths]
        return self._buffers[key]

    def _adam_state(self) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """The optimizer's own state tensors (as torch.optim.Adam(fused=True) creates them), cached.

        Each parameter's step count is a 0-d view into one shared tensor, so one add_ advances them
        all. The cache is rebuilt when the optimizer's state was replaced (optimizer.load_state_dict).
        """
        state = self.optimizer.state
        first = state.get(self.params[0])
        if self._adam is not None and first is not None and first.get("exp_avg") is self._adam[0][0]:
            return self._adam
        for p in self.params:
            if not state[p]:
                state[p].update(step=torch.zeros((), dtype=torch.float32, device=p.device),
                                exp_avg=torch.zeros_like(p), exp_avg_sq=torch.zeros_like(p))
        all_steps = torch.stack([state[p]["step"] for p in self.params])  # (n_params,)
        for i, p in enumerate(self.params):
            state[p]["step"] = all_steps[i]
        self._adam = ([state[p]["exp_avg"] for p in self.params], [state[p]["exp_avg_sq"] for p in self.params],
                      [state[p]["step"] for p in self.params], all_steps)
        return self._adam

    @torch.no_grad()
    def __call__(self, batch: Batch) -> torch.Tensor:
        cfg = self.cfg
        n = len(batch.obs)
        double = cfg.double and self.target_layers is not self.layers
        hidden: list[torch.Tensor] = []
        if double:  # one online pass over [s; s'], as Agent.update does
            x = torch.cat([batch.obs, batch.next_obs])
            q_both = mlp_forward(self.layers, x, hidden, self._buf("out", 2 * n))  # (2B, A)
            q_all, next_q_online = q_both[:n], q_both[n:]
            hidden = [h[:n] for h in hidden]
        else:
            q_all, next_q_online = mlp_forward(self.layers, batch.obs, hidden, self._buf("out", n)), None  # (B, A)
        next_q = mlp_forward(self.target_layers, batch.next_obs, out=self._buf("target", n))  # (B, A)
        y = td_target(batch.rewards, batch.discounts, next_q, next_q_online, batch.next_legal)  # (B,)
        idx = batch.actions.unsqueeze(1)  # (B, 1)
        q = q_all.gather(1, idx).squeeze(1)  # (B,)
        if cfg.loss == "mse":
            loss = F.mse_loss(q, y)
            dq = (q - y).mul_(2.0 / n)  # dL/dQ(s,a) of mean((Q - y)^2)
        else:
            loss = F.smooth_l1_loss(q, y)
            dq = (q - y).clamp_(-1.0, 1.0).div_(n)  # Huber (delta 1): the error, clipped to [-1, 1]
        if not math.isfinite(loss.item()):
            raise NonFiniteLossError(f"TD loss is {loss.item()}")
        g = self._buf("dq", n)[0].zero_().scatter_(1, idx, dq.unsqueeze(1))  # (B, A): only the taken action
        g_in = self._buf("grad", n)
        for i in range(len(self.layers) - 1, -1, -1):
            w, _ = self.layers[i]
            h_in = hidden[i]  # (B, in): the layer's input (a ReLU output for i > 0)
            torch.mm(g.t(), h_in, out=self.grads[2 * i])  # dL/dW (out, in)
            torch.sum(g, 0, out=self.grads[2 * i + 1])  # dL/db (out,)
            if i > 0:  # (B, in): back through the ReLU, as autograd does it (0 where the output was 0)
                g = _relu_backward(torch.mm(g, w, out=g_in[i]), h_in, 0, grad_input=g_in[i])
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        exp_avgs, exp_avg_sqs, steps, all_steps = self._adam_state()
        group: dict[str, Any] = self.optimizer.param_groups[0]
        all_steps.add_(1)  # every parameter's step count, in one op
        beta1, beta2 = group["betas"]
        torch.ops.aten._fused_adam_(self.params, self.grads, exp_avgs, exp_avg_sqs, [], steps, lr=group["lr"],
                                    beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
                                    amsgrad=False, maximize=False)
        if cfg.target == "polyak":
            torch._foreach_lerp_(self.target_params, self.params, cfg.tau)
        return loss


class NumpyPolicy:
    """Greedy actions of a ReLU MLP computed with NumPy on views of its (CPU) weights."""

    def __init__(self, net: nn.Module) -> None:
        self.layers = [(w.detach().numpy(), b.detach().numpy()) for w, b in linear_layers(net)]

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        h = obs.reshape(len(obs), -1)  # (B, D)
        last = len(self.layers) - 1
        for i, (w, b) in enumerate(self.layers):
            h = h @ w.T + b  # (B, out)
            if i < last:
                np.maximum(h, 0.0, out=h)
        return h  # (B, A)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.q_values(obs).argmax(axis=1)  # (B,)
