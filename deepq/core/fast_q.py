"""Q values for acting without the torch module, on the network's own weights (always current, nothing copied):
NumPy for deepq's MLP (NumpyMLP), the compiled forward pass for its small CNN (CompiledQ). The policy takes one of
them where learner.acts_in_numpy says so; the numbers are the module's (NumpyMLP's NumPy paths to float rounding,
the compiled and torch paths bit for bit: tests/test_fast_mlp.py, tests/test_compiled.py).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from deepq.core import compiled
from deepq.core.fast_mlp import compiled_net, conv_of, linear_and_norm
from deepq.core.networks import NetworkConfig


def numpy_q_supported(net: NetworkConfig, device: torch.device) -> bool:
    """Whether acting can skip the torch module (fast_q): deepq's own MLP (NumpyMLP) or small CNN (CompiledQ),
    LayerNorm or not, no Rainbow head, on CPU."""
    return net.own_plain and net.arch in ("mlp", "small_cnn") and device.type == "cpu"


def fast_q(net: nn.Module) -> NumpyMLP | CompiledQ:
    """The Q values a policy acts on without the torch module: NumpyMLP for deepq's MLP, CompiledQ for its small
    CNN (numpy_q_supported says which networks)."""
    return CompiledQ(net) if conv_of(net) is not None else NumpyMLP(net)


class Layer(NamedTuple):
    """One Linear and the LayerNorm after it (hidden layers with layer_norm), as NumPy views."""

    weight: np.ndarray  # (out, in)
    bias: np.ndarray  # (out,)
    gamma: np.ndarray | None  # (out,) LayerNorm's scale, or None
    beta: np.ndarray | None  # (out,) LayerNorm's shift
    eps: float  # LayerNorm's ε


def mlp_layers(net: nn.Module) -> list[Layer]:
    """deepq's MLP as Layers, in order: each Linear with the LayerNorm that follows it (if any)."""
    layers: list[Layer] = []
    for m in net.modules():
        if isinstance(m, nn.Linear):
            layers.append(Layer(m.weight.detach().numpy(), m.bias.detach().numpy(), None, None, 0.0))
        elif isinstance(m, nn.LayerNorm):
            w, b, _, _, _ = layers[-1]
            layers[-1] = Layer(w, b, m.weight.detach().numpy(), m.bias.detach().numpy(), float(m.eps))
    return layers


class NumpyMLP:
    """Q values of deepq's MLP without autograd, on the network's own (CPU) weights: always current, nothing copied.
    Each size takes the path measured fastest (µs per call, 120-84 ReLU MLP / 256-256 LayerNorm MLP): one
    observation (single-env acting) NumPy matrix-vector products; a small batch of a plain MLP NumPy matrix
    products (8 rows: 10.0 against torch's 21.7); LayerNorm MLPs and batches from 128 rows torch's fused kernels
    (addmm, layer_norm, relu_: 32 rows of the LayerNorm MLP 66 against NumPy's 113; 2,048 rows 2.2 against 4.7 ms),
    called from C++ where compiled.kernels() builds (csrc's Net.q, the same kernels: 128 rows of PQN's 256-256
    LayerNorm MLP 164 against 203 µs)."""

    def __init__(self, net: nn.Module) -> None:
        self.layers = mlp_layers(net)  # NumPy views, for one observation
        self.modules = linear_and_norm(net)  # the modules themselves, for batches
        self.norm = any(layer.gamma is not None for layer in self.layers)
        kernels = compiled.kernels()  # batches through the compiled forward where the machine can build it
        self.compiled = compiled_net(kernels, None, [(m.weight, m.bias, norm) for m, norm in self.modules]) \
            if kernels is not None else None

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(B, A) for obs (B, *obs_shape)."""
        x = obs.reshape(len(obs), -1)  # (B, D) float32 (Policy.q_values made it so)
        if len(x) > 1 and (self.norm or len(x) >= 128):
            return self._batch(torch.from_numpy(x)).numpy()
        single = len(x) == 1
        h = x[0] if single else x  # (D,) or (B, D)
        last = len(self.layers) - 1
        for i, (w, b, gamma, beta, eps) in enumerate(self.layers):
            h = np.dot(w, h) if single else h @ w.T  # (out,) or (B, out)
            h += b
            if i == last:
                break
            if gamma is not None:  # LayerNorm over the features (one observation: batches went to torch)
                h -= h.mean()
                h /= np.sqrt(np.mean(h * h) + eps)  # x̂
                h *= gamma
                h += beta
            np.maximum(h, 0.0, out=h)
        return h[None] if single else h  # (B, A)

    def _batch(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:  # the loop below in C++: the same kernels, the same numbers
            return self.compiled.q(x)
        with torch.no_grad():
            last = len(self.modules) - 1
            for i, (linear, norm) in enumerate(self.modules):
                x = torch.addmm(linear.bias, x, linear.weight.T)  # (B, out)
                if i < last:
                    if norm is not None:
                        x = torch.nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)
                    x = torch.relu_(x)
            return x  # (B, A)


class CompiledQ:
    """Q values of deepq's small CNN through csrc's Net.q (the forward pass of the compiled update step: the same
    kernels as the module, bit for bit, without its Python): a batch of MinAtar grids ~0.89 against ~1.0 ms, one
    observation (DQN's single env) a fraction of the module's call. Where the machine cannot build it, the module."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        kernels = compiled.kernels()
        conv = conv_of(net)
        self.compiled = compiled_net(kernels, conv, [(m.weight, m.bias, norm) for m, norm in linear_and_norm(net)]) \
            if kernels is not None else None

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """(B, A) for obs (B, *obs_shape)."""
        x = torch.from_numpy(obs)
        if self.compiled is not None:
            return self.compiled.q(x).numpy()
        with torch.inference_mode():
            return self.net(x).numpy()
