"""The fast path for PQN's update of deepq's own MLP or small CNN on CPU: the λ-return regression without autograd,
LayerNorm included (acting's Q values without the module: deepq/core/fast_q.py).

Learner.reference_fit_returns (autograd through lambda_regression_loss) is the reference. For PQN's 256-256 MLP
with LayerNorm, eager torch spends a third of an update in autograd's graph, the modules and the optimizer's Python
(measured: 1.4 ms per update of 128 samples against 0.8 ms here; benchmarks/throughput.py times the whole loop
against rejax's compiled JAX). LambdaUpdate calls the kernels autograd would call, in the order it would call them,
with no graph: on parameters moved into one flat buffer (as deepq/core/fast_path.py does for the TD update),

    forward: z = h·Wᵀ + b, LayerNorm (keeping its mean and 1/σ), ReLU, per layer
    dL/dQ(s, a) of mean((Q(s, a) − G)²) (or Huber), zero for the other actions
    backward: per layer dW = gᵀ·h_in, db = Σ g, back through the ReLU and LayerNorm with aten's own backward
    kernels (threshold_backward, native_layer_norm_backward), g ← g·W
    the gradient norm clipped as nn.utils.clip_grad_norm_ does, then RAdam (radam_step), Adam (torch's functional
    fused adam, fast_path.flat_adam_step) or the MinAtar presets' centered RMSProp (rmsprop_step) on the flat
    buffers, with the optimizer's own state tensors (checkpoints are unchanged)

It matches autograd to float rounding: tests/test_fast_mlp.py. Where the machine can build it, LambdaUpdate runs the
same body compiled (deepq/core/compiled.py, deepq/core/csrc/lambda_update.cpp: these kernels in this order, bit for
bit the same numbers, without Python's overhead on each call). `supports` is the one place that decides where it
runs (the learner asks it); the small CNN's convolution takes oneDNN's forward and weight-gradient kernels, its
channels' LayerNorm the row kernels above. Anything else (the Nature CNN, custom networks, Rainbow heads, other
optimizers, GPUs) stays on the reference update.
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from deepq.core import compiled
from deepq.core.fast_path import (
    FlatState,
    flat_adam_step,
    flat_optimizer_state,
    flat_state_buffers,
    flatten_params,
    is_flat_state,
    split_like,
)
from deepq.core.learner_config import LearnerConfig
from deepq.core.losses import LossOutput
from deepq.core.networks import ChannelNorm, NetworkConfig, SmallCNN
from deepq.errors import NonFiniteLossError

OPTIMIZERS = ("radam", "adam", "rmsprop")  # the optimizers whose step LambdaUpdate takes over flat buffers


def supports(cfg: LearnerConfig, net: NetworkConfig, device: torch.device) -> bool:
    """Whether LambdaUpdate runs PQN's update (target='pqn'): deepq's own MLP or small CNN (LayerNorm or not),
    RAdam, Adam or deepq's centered RMSProp, on CPU; cfg.fast=False forces the reference update."""
    return (cfg.fast and cfg.target == "pqn" and net.own_plain and net.arch in ("mlp", "small_cnn")
            and not cfg.weighted and cfg.optimizer in OPTIMIZERS and device.type == "cpu")


def supports_td(cfg: LearnerConfig, net: NetworkConfig, device: torch.device) -> bool:
    """Whether LambdaUpdate takes DQN's TD step (Learner.update): the targets y = losses.td_target(...) computed
    under no_grad by the networks themselves, then the same regression step as PQN's toward y. For deepq's small
    CNN, or an MLP with LayerNorm (a plain MLP has deepq/core/fast_path.py's NumPy update, faster at its sizes);
    a hard, Polyak or no target network; no Rainbow component but n-step; RAdam, Adam or deepq's centered RMSProp
    (the MinAtar presets'); on CPU."""
    return (cfg.fast and cfg.target in ("hard", "polyak", "none") and net.own_plain and not cfg.weighted
            and (net.arch == "small_cnn" or (net.arch == "mlp" and net.layer_norm))
            and cfg.optimizer in OPTIMIZERS and device.type == "cpu")


def linear_and_norm(net: nn.Module) -> list[tuple[nn.Linear, nn.LayerNorm | None]]:
    """deepq's MLP in order: each Linear with the LayerNorm that follows it (hidden layers with layer_norm)."""
    pairs: list[tuple[nn.Linear, nn.LayerNorm | None]] = []
    for m in net.modules():
        if isinstance(m, nn.Linear):
            pairs.append((m, None))
        elif isinstance(m, nn.LayerNorm) and pairs:  # (a LayerNorm before any Linear is a convolution's)
            pairs[-1] = (pairs[-1][0], m)
    return pairs


def conv_of(net: nn.Module) -> tuple[nn.Conv2d, nn.LayerNorm | None] | None:
    """The small CNN's convolution and the LayerNorm of its pixels' channels (ChannelNorm), or None (an MLP)."""
    if not isinstance(net, SmallCNN):
        return None
    conv, norm = net.net[0], net.net[1].norm if isinstance(net.net[1], ChannelNorm) else None
    assert isinstance(conv, nn.Conv2d) and conv.bias is not None and conv.stride == (1, 1) and conv.padding == (0, 0)
    return conv, norm


def compiled_net(kernels: ModuleType, conv: tuple[nn.Conv2d, nn.LayerNorm | None] | None,
                 layers: list[tuple[torch.Tensor, torch.Tensor, nn.LayerNorm | None]]) -> compiled.Net:
    """csrc/lambda_update.cpp's Net over the network's own parameter tensors (so it always sees the current
    weights): the convolution (if any) and its channels' norm, then each Linear's (weight, bias, the norm after it)."""
    conv_layer = [(conv[0].weight, conv[0].bias, conv[1])] if conv is not None else []
    all_layers = conv_layer + layers
    norms = [norm for _, _, norm in all_layers[:-1]]
    return kernels.Net([w for w, _, _ in all_layers], [b for _, b, _ in all_layers],
                       [n.weight if n is not None else None for n in norms],
                       [n.bias if n is not None else None for n in norms],
                       [n.eps if n is not None else 0.0 for n in norms], conv is not None)


class LambdaUpdate:
    """Learner.fit_returns for deepq's MLP on CPU without autograd (see module doc): torch's own kernels, called
    directly in the order autograd would call them, with no graph, no modules and no Optimizer.step wrapper."""

    def __init__(self, online: nn.Module, optimizer: torch.optim.Optimizer, loss: str, max_grad_norm: float) -> None:
        self.loss, self.max_grad_norm, self.optimizer = loss, max_grad_norm, optimizer
        self.params: list[torch.Tensor] = list(online.parameters())  # W, b, (γ, β) per layer, in order
        self.flat_t = flatten_params(self.params)  # (P,) every parameter, in order; the net's tensors are views
        self.conv = conv_of(online)  # the small CNN's 3x3 convolution (stride 1, no padding), or None
        self.layers = [(m.weight, m.bias, norm) for m, norm in linear_and_norm(online)]
        self.grad_t = torch.zeros_like(self.flat_t)  # (P,) dL/dθ, in the same layout
        grads = iter(split_like(self.grad_t, self.params))
        norms = ([self.conv[1]] if self.conv is not None else []) + [norm for _, _, norm in self.layers]
        self.grad_layers = [(next(grads), next(grads), *((next(grads), next(grads)) if norm is not None
                                                       else (None, None))) for norm in norms]
        self.grad_conv = self.grad_layers.pop(0) if self.conv is not None else None
        self._state: FlatState | None = None
        self._rmsprop: tuple[list[torch.Tensor], torch.Tensor] | None = None  # RMSProp's flat buffers, step counts
        kernels = compiled.kernels()  # None where the machine cannot build it: the Python body runs
        self.compiled = self._compiled_step(kernels) if kernels is not None else None  # __call__'s body, in C++
        self._radam = kernels.radam_step if kernels is not None else radam_step
        self._rmsprop_step = kernels.rmsprop_step if kernels is not None else rmsprop_step

    def _compiled_step(self, kernels: ModuleType) -> compiled.LambdaStep:
        """csrc/lambda_update.cpp's LambdaStep over these weights, gradients and norms (a convolution's first)."""
        grads = ([self.grad_conv] if self.grad_conv is not None else []) + self.grad_layers
        return kernels.LambdaStep(
            compiled_net(kernels, self.conv, [(w, b, norm) for w, b, norm in self.layers]),
            [g[0] for g in grads], [g[1] for g in grads], [g[2] for g in grads[:-1]], [g[3] for g in grads[:-1]],
            self.grad_t, self.loss == "mse", float(self.max_grad_norm))

    def __call__(self, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> LossOutput:
        """One gradient step on the λ-return regression of a minibatch: obs (B, *obs_shape), actions (B,),
        returns (B,); returns the loss and each sample's |G − Q(s, a)|."""
        if self.compiled is not None:  # the body below, compiled
            loss, abs_err = self.compiled.grad(obs, actions, returns)
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"λ-return loss is {loss}")
            self._step()
            return LossOutput(torch.tensor(loss, dtype=torch.float32), abs_err)
        with torch.no_grad():
            n = len(actions)
            saved: list[tuple[torch.Tensor, ...]] = []  # per hidden layer: input, pre-norm z, mean, 1/σ, output
            conv_saved: tuple[torch.Tensor, ...] = ()
            if self.conv is not None:  # oneDNN's convolution, then each output pixel's channels as a row
                conv, norm = self.conv
                x = obs.reshape(n, -1, *obs.shape[-2:]).float()  # (B, C, H, W), frame stacks as channels
                z4 = F.conv2d(x, conv.weight, conv.bias)  # (B, 16, H − 2, W − 2)
                out, kept = _norm_relu(z4.permute(0, 2, 3, 1).reshape(-1, z4.shape[1]), norm)  # (B·L, 16)
                conv_saved = (x, z4, *kept)
                h = out.view(n, -1, out.shape[1]).transpose(1, 2).reshape(n, -1)  # (B, 16·L), torch's Flatten order
            else:
                h = obs.reshape(n, -1).float()  # (B, D)
            last = len(self.layers) - 1
            for i, (w, b, norm) in enumerate(self.layers):
                if i == last:
                    saved.append((h,))
                    h = torch.addmm(b, h, w.T)  # (B, A)
                    break
                out, kept = _hidden(h, w, b, norm)
                saved.append(kept)
                h = out
            taken = actions.view(n, 1)  # (B, 1)
            err = h.gather(1, taken).view(n) - returns  # (B,) Q(s, a) − G
            if self.loss == "mse":
                loss = float(torch.dot(err, err)) / n
                dq = err * (2.0 / n)  # dL/dQ(s, a) of mean((Q − G)²)
            else:
                abs_err = err.abs()
                loss = float(torch.where(abs_err < 1.0, 0.5 * err * err, abs_err - 0.5).mean())  # Huber, δ = 1
                dq = err.clamp(-1.0, 1.0) * (1.0 / n)
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"λ-return loss is {loss}")
            g = torch.zeros_like(h).scatter_(1, taken, dq.view(n, 1))  # (B, A): only the taken action has one
            g = self._backward(g, saved)
            if self.conv is not None and self.grad_conv is not None:  # back to each pixel's channels, (B·L, 16)
                conv, norm = self.conv
                x, z4 = conv_saved[0], conv_saved[1]
                grad_w, grad_b, grad_gamma, grad_beta = self.grad_conv
                g = g.view(n, z4.shape[1], -1).transpose(1, 2).reshape(-1, z4.shape[1])
                g = _norm_relu_backward(g, conv_saved[2:], norm, grad_gamma, grad_beta)  # dL/dz, (B·L, 16)
                g4 = g.view(n, z4.shape[2], z4.shape[3], z4.shape[1]).permute(0, 3, 1, 2)  # (B, 16, H − 2, W − 2)
                _, dw, db = torch.ops.aten.convolution_backward(g4, x, conv.weight, [len(conv.weight)], conv.stride,
                                                                conv.padding, conv.dilation, False, [0, 0], 1,
                                                                [False, True, True])  # dW, db; no dL/dx
                grad_w.copy_(dw)
                grad_b.copy_(db)
            if self.max_grad_norm > 0:  # as nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) if < 1
                coef = self.max_grad_norm / (math.sqrt(float(torch.dot(self.grad_t, self.grad_t))) + 1e-6)
                if coef < 1.0:
                    self.grad_t.mul_(coef)
            self._step()
            return LossOutput(torch.tensor(loss, dtype=torch.float32), err.abs_())

    def _backward(self, g: torch.Tensor, saved: list[tuple[torch.Tensor, ...]]) -> torch.Tensor:
        """dL/dθ of the dense layers into self.grad_t from g = dL/dQ (B, A); returns dL/d(their input) when a
        convolution comes before them."""
        last = len(self.layers) - 1
        w, _, _ = self.layers[last]
        grad_w, grad_b, _, _ = self.grad_layers[last]
        torch.mm(g.T, saved[last][0], out=grad_w)  # (A, in)
        torch.sum(g, 0, out=grad_b)
        g = torch.mm(g, w)  # (B, in): dL/d(the previous layer's output)
        for i in range(last - 1, -1, -1):
            w, _, norm = self.layers[i]
            g = _hidden_backward(g, saved[i], w, norm, self.grad_layers[i], need_input=i > 0 or self.conv is not None)
        return g

    def _optimizer_state(self) -> FlatState:
        """The optimizer's state flattened like the weights (fast_path.flat_optimizer_state)."""
        if self._state is None or not is_flat_state(self.optimizer, self.params, self._state[0]):
            self._state = flat_optimizer_state(self.optimizer, self.params)
        return self._state

    def _step(self) -> None:
        """One step of the optimizer's own algorithm (RAdam, torch's fused Adam, or RMSProp) over the flat buffers."""
        if isinstance(self.optimizer, torch.optim.RMSprop):
            keys = ("square_avg", "grad_avg", "momentum_buffer")
            if self._rmsprop is None or not is_flat_state(self.optimizer, self.params, self._rmsprop[0][0], keys[0]):
                self._rmsprop = flat_state_buffers(self.optimizer, self.params, keys)
            (square_avg, grad_avg, momentum_buffer), steps = self._rmsprop
            steps += 1  # every parameter's step count
            group = self.optimizer.param_groups[0]
            assert group["centered"] and group["momentum"] > 0 and not group["weight_decay"], "deepq's RMSProp only"
            self._rmsprop_step(self.flat_t, self.grad_t, square_avg, grad_avg, momentum_buffer, alpha=group["alpha"],
                               eps=group["eps"], momentum=group["momentum"], lr=group["lr"])
            return
        state = self._optimizer_state()
        if not isinstance(self.optimizer, torch.optim.RAdam):
            flat_adam_step(self.optimizer, self.flat_t, self.grad_t, state)
            return
        exp_avg, exp_avg_sq, steps = state.exp_avg, state.exp_avg_sq, state.steps
        group = self.optimizer.param_groups[0]  # deepq's optimizers have no weight decay
        beta1, beta2 = group["betas"]
        steps += 1  # every parameter's step count
        self._radam(self.flat_t, self.grad_t, exp_avg, exp_avg_sq, float(steps[0]), lr=group["lr"], beta1=beta1,
                    beta2=beta2, eps=group["eps"])


def radam_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
               t: float, lr: float, beta1: float, beta2: float, eps: float) -> None:
    """One RAdam step (Liu et al. 2020) as torch.optim.RAdam takes it without weight decay, in six passes over the
    flat buffers instead of its ten (the same formula; rounding aside). `t`: this step's count, from 1.

        m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²,  ρ_t = ρ_∞ − 2t·β2ᵗ / (1 − β2ᵗ),  ρ_∞ = 2 / (1 − β2) − 1
        θ ← θ − lr · r_t · √(1 − β2ᵗ) / (1 − β1ᵗ) · m / (√v + ε)    where ρ_t > 5 (r_t the variance rectification)
        θ ← θ − lr / (1 − β1ᵗ) · m                                   while ρ_t ≤ 5 (the first few steps)
    """
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    correction1, correction2 = 1 - beta1 ** t, 1 - beta2 ** t
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / correction2
    if rho_t > 5.0:
        rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        denom = exp_avg_sq.sqrt().add_(eps)
        param.addcdiv_(exp_avg, denom, value=-lr * rect * math.sqrt(correction2) / correction1)
    else:
        param.add_(exp_avg, alpha=-lr / correction1)


def rmsprop_step(param: torch.Tensor, grad: torch.Tensor, square_avg: torch.Tensor, grad_avg: torch.Tensor,
                 momentum_buffer: torch.Tensor, alpha: float, eps: float, momentum: float, lr: float) -> None:
    """One step of deepq's RMSProp (learner.make_optimizer: centered, with momentum, no weight decay) as
    torch.optim.RMSprop takes it, the same kernels over the flat buffers instead of one call per parameter:

        v ← α·v + (1 − α)·g²,  ḡ ← α·ḡ + (1 − α)·g,  b ← μ·b + g / (√(v − ḡ²) + ε),  θ ← θ − lr·b
    """
    square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    grad_avg.lerp_(grad, 1 - alpha)
    avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
    momentum_buffer.mul_(momentum).addcdiv_(grad, avg)
    param.add_(momentum_buffer, alpha=-lr)


def _norm_relu(z: torch.Tensor, norm: nn.LayerNorm | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """LayerNorm (if any) and ReLU of z (R, out): (the output, what their backward needs)."""
    if norm is not None:
        y, mean, rstd = torch.native_layer_norm(z, [z.shape[1]], norm.weight, norm.bias, norm.eps)
    else:
        y, mean, rstd = z, z, z
    out = torch.relu_(y)
    return out, (z, mean, rstd, out)


def _norm_relu_backward(g: torch.Tensor, saved: tuple[torch.Tensor, ...], norm: nn.LayerNorm | None,
                        grad_gamma: torch.Tensor | None, grad_beta: torch.Tensor | None) -> torch.Tensor:
    """Back through the ReLU and LayerNorm from g = dL/d(their output): dγ, dβ into the grads; returns dL/dz."""
    z, mean, rstd, out = saved
    g = torch.ops.aten.threshold_backward(g, out, 0.0)  # through the ReLU: 0 where its output was 0
    if norm is not None and grad_gamma is not None and grad_beta is not None:
        g, dgamma, dbeta = torch.ops.aten.native_layer_norm_backward(
            g, z, [z.shape[1]], mean, rstd, norm.weight, norm.bias, [True, True, True])
        grad_gamma.copy_(dgamma)
        grad_beta.copy_(dbeta)
    return g


def _hidden(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor,
            norm: nn.LayerNorm | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A hidden layer forward, z = h·Wᵀ + b, LayerNorm, ReLU: (its output (R, out), what its backward needs)."""
    out, kept = _norm_relu(torch.addmm(b, h, w.T), norm)  # (R, out)
    return out, (h, *kept)


def _hidden_backward(g: torch.Tensor, saved: tuple[torch.Tensor, ...], w: torch.Tensor, norm: nn.LayerNorm | None,
                     grads: tuple[torch.Tensor | None, ...], need_input: bool) -> torch.Tensor:
    """A hidden layer backward from g = dL/d(its output): dW, db (and dγ, dβ) into `grads`; returns dL/d(its input)
    (when `need_input`; else g at z)."""
    grad_w, grad_b, grad_gamma, grad_beta = grads
    g = _norm_relu_backward(g, saved[1:], norm, grad_gamma, grad_beta)
    assert grad_w is not None and grad_b is not None
    torch.mm(g.T, saved[0], out=grad_w)  # (out, in)
    torch.sum(g, 0, out=grad_b)
    return torch.mm(g, w) if need_input else g  # (R, in)
