"""Q-networks: any nn.Module mapping observations [B, *obs_shape] to Q values [B, A]."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from deepq.config import Config
from deepq.errors import ConfigError


class MLP(nn.Module):
    """Flatten the observation, then Linear+ReLU per hidden width, then one Q value per action."""

    def __init__(self, obs_shape: Sequence[int], n_actions: int, hidden_sizes: Sequence[int]) -> None:
        super().__init__()
        in_dim = 1
        for d in obs_shape:
            in_dim *= int(d)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden_sizes:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            in_dim = width
        layers.append(nn.Linear(in_dim, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)  # (B, A)


def build_network(obs_shape: tuple[int, ...], n_actions: int, cfg: Config) -> nn.Module:
    """The config's custom factory if given (checked for the right output shape), else an MLP."""
    if cfg.network is None:
        return MLP(obs_shape, n_actions, cfg.hidden_sizes)
    net = cfg.network(obs_shape, n_actions)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"network factory returned {type(net).__name__}, not a torch.nn.Module")
    with torch.no_grad():
        out = net(torch.zeros((2, *obs_shape)))
    if tuple(out.shape) != (2, n_actions):
        raise ConfigError(f"network maps a batch [2, *{list(obs_shape)}] to {list(out.shape)}; "
                          f"a Q-network must return [2, {n_actions}] (one Q value per action)")
    return net
