"""The policy: Q values and actions (greedy, masked to legal moves, ε-greedy) from a network's weights.

In the learner's process the policy shares the online network, so acting is always current and nothing is copied.
`weights()` exports a snapshot as plain NumPy arrays, and `Policy.from_weights` builds a policy from one in another
process (an actor) in one call; `load_weights` refreshes it from a newer snapshot. For deepq's own MLP on CPU the Q
values come from NumPy on views of the weights (deepq/core/fast_q.py's NumpyMLP), a fraction of a torch call; for
its small CNN from the compiled forward pass (fast_q.CompiledQ), the module's numbers without its Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from deepq.core import fast_q
from deepq.core.explore import epsilon_greedy, masked_epsilon_greedy
from deepq.core.networks import NetworkConfig, build_network


class Policy:
    """Acts from `net`: one forward pass gives Q(s, ·) for every action."""

    def __init__(self, net: nn.Module, obs_shape: tuple[int, ...], n_actions: int, device: torch.device,
                 numpy_q: bool = False) -> None:
        self.net, self.obs_shape, self.n_actions, self.device = net, tuple(obs_shape), n_actions, device
        self._numpy = fast_q.fast_q(net) if numpy_q else None  # the net's own weights: always current

    @classmethod
    def from_weights(cls, net: NetworkConfig, obs_shape: tuple[int, ...], n_actions: int,
                     weights: dict[str, np.ndarray], device: str | torch.device = "cpu",
                     numpy_q: bool = False) -> Policy:
        """A policy in another process: the network `net` describes, loaded with a snapshot from `weights()`.
        `numpy_q`: Q values without the module, as the learner's policy computes them (learner.acts_in_numpy)."""
        dev, shape = torch.device(device), tuple(obs_shape)
        policy = cls(build_network(shape, n_actions, net).to(dev), shape, n_actions, dev, numpy_q=numpy_q)
        policy.load_weights(weights)
        return policy

    def weights(self) -> dict[str, np.ndarray]:
        """A snapshot of the network's weights (and buffers, e.g. C51's support) as plain NumPy arrays."""
        return net_weights(self.net)

    def load_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Copy a snapshot into the network in place (the NumPy views stay valid)."""
        load_net_weights(self.net, weights)

    def _as_batch(self, obs: Any) -> tuple[torch.Tensor, bool]:
        x = torch.as_tensor(np.asarray(obs), device=self.device)  # pixels stay uint8 (4x less to copy)
        single = x.dim() == len(self.obs_shape)
        return (x.unsqueeze(0) if single else x), single

    def q_values(self, obs: Any) -> np.ndarray:
        """Q values: [A] for one observation, [B, A] for a batch."""
        if self._numpy is not None:
            x = np.asarray(obs, dtype=np.float32)
            single = x.ndim == len(self.obs_shape)
            q = self._numpy.q_values(x[None] if single else x)  # (B, A)
        else:
            with torch.inference_mode():  # only the torch path needs it; the NumPy path skips the overhead
                t, single = self._as_batch(obs)
                q = self.net(t).float().cpu().numpy()  # (B, A)
        return q[0] if single else q

    def act(self, obs: Any, legal: np.ndarray | None = None) -> Any:
        """Greedy action: an int for one observation, an int64 array for a batch.
        `legal` ([A] or [B, A] bool, games): the greedy choice is among legal actions only."""
        q = self.q_values(obs)
        if legal is not None:
            q = np.where(legal, q, -np.inf)
        a = q.argmax(axis=-1)
        return int(a) if a.ndim == 0 else a

    def explore(self, obs: np.ndarray, eps: float, rng: np.random.Generator,
                legal: np.ndarray | None = None, q: np.ndarray | None = None) -> np.ndarray:
        """ε-greedy actions (N,) for a batch of observations (N, *obs_shape): uniformly random with probability
        ε (among the legal moves where `legal` (N, A) is given), else greedy. `q` (N, A): obs's Q values when the
        caller has them already (PQN keeps them), so the greedy choice costs no forward pass."""
        def kept(_obs: np.ndarray, legal: np.ndarray | None = None) -> np.ndarray:  # the greedy choice on q
            assert q is not None
            return (q if legal is None else np.where(legal, q, -np.inf)).argmax(axis=-1)

        greedy: Callable[..., Any] = self.act if q is None else kept
        if legal is None:
            return epsilon_greedy(greedy, obs, eps, self.n_actions, rng)
        return masked_epsilon_greedy(greedy, obs, legal, eps, rng)


def net_weights(net: nn.Module) -> dict[str, np.ndarray]:
    """`net`'s weights and buffers as plain NumPy arrays (copies): what crosses to another process."""
    return {k: v.detach().cpu().numpy().copy() for k, v in net.state_dict().items()}


def load_net_weights(net: nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Copy arrays from net_weights into `net` in place (views of its tensors, e.g. the fast path's, stay valid)."""
    with torch.no_grad():
        for k, v in net.state_dict().items():
            v.copy_(torch.from_numpy(np.asarray(weights[k])))
