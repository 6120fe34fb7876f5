"""Q-networks: any nn.Module mapping observations [B, *obs_shape] to Q values [B, A].

Built in: an MLP for vector observations, the Nature CNN (Mnih et al. 2015) for Atari-sized
frames, and the small CNN of the MinAtar paper (Young & Tian 2019) for small grids, chosen by a NetworkConfig (the
network's own settings, made from the run's Config at set-up). With layer_norm every
hidden layer of each is normalized before its ReLU (dense layers by LayerNorm, convolutions per pixel over
channels), as PQN needs; without it the modules and their state-dict keys are the plain networks'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from deepq.errors import ConfigError

NetworkFactory = Callable[[tuple[int, ...], int], nn.Module]  # (obs_shape, n_actions) -> module


@dataclass(frozen=True)
class NetworkConfig:
    """What build_network builds: a custom `factory`, else the built-in `arch` ('mlp', 'small_cnn' or 'nature_cnn',
    already resolved from 'auto' by the env kind: resolve_arch) with its heads (Rainbow's dueling, noisy, C51)."""

    arch: str = "mlp"
    hidden_sizes: tuple[int, ...] = (120, 84)  # the MLP's widths (and the dueling/noisy heads' on a CNN)
    layer_norm: bool = False  # LayerNorm before every hidden ReLU (PQN)
    dueling: bool = False
    noisy: bool = False
    noisy_sigma: float = 0.5
    atoms: int = 1  # C51's atoms on [v_min, v_max]; 1 = expected values
    v_min: float = -10.0
    v_max: float = 10.0
    factory: NetworkFactory | None = None  # a custom network; the fields above then do not apply

    @property
    def rainbow_head(self) -> bool:
        """Dueling, noisy or distributional: a head that the fast paths and NumPy acting do not compute."""
        return self.dueling or self.noisy or self.atoms > 1

    @property
    def own_plain(self) -> bool:
        """deepq's own network (no custom factory) with the plain Q head: what the fast paths know."""
        return self.factory is None and not self.rainbow_head


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel of (B, C, H, W) feature maps, with a scale and bias per channel:
    what a LayerNorm over the last axis does to channels-last maps (PQN's CNNs)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def dense(in_dim: int, width: int, layer_norm: bool) -> list[nn.Module]:
    """A hidden layer: Linear, LayerNorm when `layer_norm` (Ba et al. 2016; PQN's stabiliser), ReLU."""
    return [nn.Linear(in_dim, width), *([nn.LayerNorm(width)] if layer_norm else []), nn.ReLU()]


def conv(in_ch: int, out_ch: int, kernel: int, stride: int, layer_norm: bool) -> list[nn.Module]:
    """A convolution, each pixel's channels layer-normalized when `layer_norm`, ReLU."""
    return [nn.Conv2d(in_ch, out_ch, kernel, stride=stride), *([ChannelNorm(out_ch)] if layer_norm else []),
            nn.ReLU()]


class MLP(nn.Module):
    """Flatten the observation, then Linear(+LayerNorm)+ReLU per hidden width, then one Q value per action."""

    def __init__(self, obs_shape: Sequence[int], n_actions: int, hidden_sizes: Sequence[int],
                 layer_norm: bool = False) -> None:
        super().__init__()
        in_dim = 1
        for d in obs_shape:
            in_dim *= int(d)
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden_sizes:
            layers += dense(in_dim, width, layer_norm)
            in_dim = width
        layers.append(nn.Linear(in_dim, n_actions))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float())  # (B, A)


def _channels(obs_shape: Sequence[int]) -> int:
    """Input channels of an image observation: (C, H, W) -> C; a stack (k, C, H, W) -> k*C."""
    c = 1
    for d in obs_shape[:-2]:
        c *= int(d)
    return c


class NatureCNN(nn.Module):
    """Mnih et al. (2015): 32 8x8/4, 64 4x4/2, 64 3x3/1 convolutions, 512 units, one Q per action.

    Takes uint8 pixels in [0, 255] (a stack of frames is stacked as channels) and scales them to [0, 1].
    """

    def __init__(self, obs_shape: Sequence[int], n_actions: int, layer_norm: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *conv(_channels(obs_shape), 32, 8, 4, layer_norm), *conv(32, 64, 4, 2, layer_norm),
            *conv(64, 64, 3, 1, layer_norm), nn.Flatten())
        with torch.no_grad():
            n_flat = self.conv(torch.zeros(1, _channels(obs_shape), *obs_shape[-2:])).shape[1]
        self.head = nn.Sequential(*dense(n_flat, 512, layer_norm), nn.Linear(512, n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(len(obs), -1, *obs.shape[-2:]).float() / 255.0  # (B, C, H, W) in [0, 1]
        return self.head(self.conv(x))  # (B, A)


class SmallCNN(nn.Module):
    """The MinAtar paper's network: one 16-channel 3x3 convolution, 128 units, one Q per action.

    Takes binary grids (C, H, W) as they are (MinAtar observations are 0/1 per object channel).
    """

    def __init__(self, obs_shape: Sequence[int], n_actions: int, layer_norm: bool = False) -> None:
        super().__init__()
        h, w = int(obs_shape[-2]), int(obs_shape[-1])
        self.body_layers = 4 if layer_norm else 3  # the convolution, its norm, ReLU and Flatten: QNetwork's body
        self.net = nn.Sequential(
            *conv(_channels(obs_shape), 16, 3, 1, layer_norm), nn.Flatten(),
            *dense(16 * (h - 2) * (w - 2), 128, layer_norm), nn.Linear(128, n_actions))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.reshape(len(obs), -1, *obs.shape[-2:]).float())  # (B, A)


class NoisyLinear(nn.Module):
    """Linear layer with factorised Gaussian noise on its weights (Fortunato et al. 2018).

    w = mu_w + sigma_w * (f(e_out) f(e_in)^T), b = mu_b + sigma_b * f(e_out), f(x) = sign(x) sqrt(|x|),
    e ~ N(0, 1) redrawn by reset_noise(); sigma starts at sigma0 / sqrt(in_features). The noise is the
    exploration (it replaces eps-greedy); the network learns how much of it to keep per weight. In
    eval mode (evaluation episodes) the layer uses its mean weights, as greedy evaluation uses eps = 0.
    """

    eps_in: torch.Tensor  # (in,) buffers: the current noise, saved with the weights
    eps_out: torch.Tensor  # (out,)

    def __init__(self, in_features: int, out_features: int, sigma0: float = 0.5) -> None:
        super().__init__()
        bound = in_features ** -0.5
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_noise()

    @staticmethod
    def _scaled(n: int, device: torch.device) -> torch.Tensor:
        x = torch.randn(n, device=device)
        return x.sign() * x.abs().sqrt()

    def reset_noise(self) -> None:
        self.eps_in.copy_(self._scaled(len(self.eps_in), self.eps_in.device))
        self.eps_out.copy_(self._scaled(len(self.eps_out), self.eps_out.device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:  # evaluation (module.eval()): the learned mean weights, no exploration noise
            return nn.functional.linear(x, self.weight_mu, self.bias_mu)
        w = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)  # (out, in)
        b = self.bias_mu + self.bias_sigma * self.eps_out  # (out,)
        return nn.functional.linear(x, w, b)


class QHead(nn.Module):
    """From a body's features to Q values, optionally dueling, noisy and/or distributional.

    One stream: hidden layer -> one output per action (per atom with `atoms` > 1). Dueling (Wang et
    al. 2016): a value stream V and an advantage stream A, each with its own hidden layer, combined
    as Q = V + A - mean_a A (the mean makes the split identifiable). With atoms > 1 (C51) the same
    combination is applied to each atom's logit and a softmax over atoms gives p(s, a); forward()
    returns the expected value sum_i p_i z_i, so acting is unchanged.
    """

    support: torch.Tensor  # (atoms,) buffer, with atoms > 1

    def __init__(self, in_dim: int, hidden: int, n_actions: int, dueling: bool = False, noisy: bool = False,
                 atoms: int = 1, support: torch.Tensor | None = None, noisy_sigma: float = 0.5,
                 layer_norm: bool = False) -> None:
        super().__init__()

        def linear(n_in: int, n_out: int) -> nn.Module:
            return NoisyLinear(n_in, n_out, noisy_sigma) if noisy else nn.Linear(n_in, n_out)

        def stream(n_out: int) -> nn.Sequential:
            return nn.Sequential(linear(in_dim, hidden), *([nn.LayerNorm(hidden)] if layer_norm else []), nn.ReLU(),
                                 linear(hidden, n_out))
        self.n_actions, self.atoms, self.dueling = n_actions, atoms, dueling
        self.advantage = stream(n_actions * atoms)
        self.value = stream(atoms) if dueling else None
        if atoms > 1:
            if support is None or len(support) != atoms:
                raise ConfigError(f"a distributional head with {atoms} atoms needs a support of {atoms} values")
            self.register_buffer("support", support.clone())

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        a = self.advantage(features).view(len(features), self.n_actions, self.atoms)  # (B, A, atoms)
        if self.value is None:
            return a
        v = self.value(features).view(len(features), 1, self.atoms)  # (B, 1, atoms)
        return v + a - a.mean(dim=1, keepdim=True)  # (B, A, atoms)

    def log_probs(self, features: torch.Tensor) -> torch.Tensor:
        return self.logits(features).log_softmax(dim=2)  # (B, A, atoms)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.atoms == 1:
            return self.logits(features).squeeze(2)  # (B, A)
        return (self.log_probs(features).exp() * self.support).sum(2)  # (B, A): E[Z(s, a)]

    def reset_noise(self) -> None:
        for m in self.modules():
            if isinstance(m, NoisyLinear):
                m.reset_noise()


class _Pixels(nn.Module):
    """Images (any leading stack dims folded into channels) through a conv stack, scaled as `scale`."""

    def __init__(self, conv: nn.Module, scale: float) -> None:
        super().__init__()
        self.conv, self.scale = conv, scale

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.conv(obs.reshape(len(obs), -1, *obs.shape[-2:]).float() * self.scale)  # (B, features)


class QNetwork(nn.Module):
    """A body (MLP layers or a CNN's convolutions) and a QHead: what the Rainbow flags build.

    The body is the built-in network without its last hidden layer, which the head takes over (one
    per stream when dueling): for an MLP (h1, ..., hk) the body is h1..h(k-1) and the head's hidden
    width hk; the Nature CNN's convolutions with a 512-unit head; the small CNN's with 128 units.
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, arch: str, hidden_sizes: Sequence[int],
                 dueling: bool, noisy: bool, atoms: int, support: torch.Tensor | None,
                 noisy_sigma: float = 0.5, layer_norm: bool = False) -> None:
        super().__init__()
        if arch == "mlp":
            in_dim = 1
            for d in obs_shape:
                in_dim *= int(d)
            layers: list[nn.Module] = [nn.Flatten()]
            for width in hidden_sizes[:-1]:
                layers += dense(in_dim, width, layer_norm)
                in_dim = width
            body: nn.Module = nn.Sequential(*layers)
            hidden = int(hidden_sizes[-1])
        else:
            if arch == "nature_cnn":
                convs: nn.Module = NatureCNN(obs_shape, n_actions, layer_norm).conv
            else:
                small = SmallCNN(obs_shape, n_actions, layer_norm)
                convs = nn.Sequential(*list(small.net)[:small.body_layers])  # conv (norm), ReLU, Flatten
            body = _Pixels(convs, 1 / 255.0 if arch == "nature_cnn" else 1.0)
            with torch.no_grad():
                in_dim = body(torch.zeros(1, *obs_shape)).shape[1]
            hidden = 512 if arch == "nature_cnn" else 128
        self.body, self.pixels = body, arch != "mlp"
        self.head = QHead(in_dim, hidden, n_actions, dueling=dueling, noisy=noisy, atoms=atoms, support=support,
                          noisy_sigma=noisy_sigma, layer_norm=layer_norm)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        return self.body(obs if self.pixels else obs.float())  # (B, features); pixels scale themselves

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(obs))  # (B, A)

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head.log_probs(self.features(obs))  # (B, A, atoms)

    def reset_noise(self) -> None:
        self.head.reset_noise()


NATURE_MIN_SIDE = 36  # the Nature CNN's three convolutions need frames at least this large


def resolve_arch(obs_shape: tuple[int, ...], arch: str, *, board: bool = False) -> str:
    """The built-in network `arch` names: 'auto' picks by observation shape (images have >= 3 dims); a `board`
    (a two-player game's observation; its env kind says so) gets the MLP (boards are tiny: the small CNN's unpadded
    3x3 filter leaves 1x1 of tic-tac-toe)."""
    if arch != "auto":
        return arch
    if board:
        return "mlp"
    if len(obs_shape) >= 3:
        return "nature_cnn" if min(obs_shape[-2:]) >= NATURE_MIN_SIDE else "small_cnn"
    return "mlp"


def build_network(obs_shape: tuple[int, ...], n_actions: int, cfg: NetworkConfig) -> nn.Module:
    """The custom factory if given (checked for the right output shape), else the built-in cfg.arch."""
    if cfg.factory is None:
        arch = cfg.arch
        if arch not in ("mlp", "small_cnn", "nature_cnn"):
            raise ValueError(f"NetworkConfig.arch is {arch!r}: resolve 'auto' first (resolve_arch)")
        if arch != "mlp" and len(obs_shape) < 2:
            raise ConfigError(f"arch={arch!r} needs image observations (C, H, W); this env's are {obs_shape}")
        if arch == "nature_cnn" and min(obs_shape[-2:]) < NATURE_MIN_SIDE:
            raise ConfigError(f"arch='nature_cnn' needs frames of at least {NATURE_MIN_SIDE}x{NATURE_MIN_SIDE}; "
                              f"this env's are {obs_shape[-2:]}: use arch='small_cnn'")
        if cfg.dueling or cfg.noisy or cfg.atoms > 1:
            support = torch.linspace(cfg.v_min, cfg.v_max, cfg.atoms) if cfg.atoms > 1 else None
            return QNetwork(obs_shape, n_actions, arch, cfg.hidden_sizes, cfg.dueling, cfg.noisy, cfg.atoms, support,
                            cfg.noisy_sigma, cfg.layer_norm)
        if arch == "nature_cnn":
            return NatureCNN(obs_shape, n_actions, cfg.layer_norm)
        if arch == "small_cnn":
            return SmallCNN(obs_shape, n_actions, cfg.layer_norm)
        return MLP(obs_shape, n_actions, cfg.hidden_sizes, cfg.layer_norm)
    net = cfg.factory(obs_shape, n_actions)
    if not isinstance(net, nn.Module):
        raise ConfigError(f"network factory returned {type(net).__name__}, not a torch.nn.Module")
    with torch.no_grad():
        out = net(torch.zeros((2, *obs_shape)))
    if tuple(out.shape) != (2, n_actions):
        raise ConfigError(f"network maps a batch [2, *{list(obs_shape)}] to {list(out.shape)}; "
                          f"a Q-network must return [2, {n_actions}] (one Q value per action)")
    return net
