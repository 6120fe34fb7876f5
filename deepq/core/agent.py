"""Agent: the online Q-network, its target copy, the optimizer, and the TD update."""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from deepq.config import Config
from deepq.core.fast_path import FusedMLPUpdate, NumpyMLPUpdate, NumpyPolicy
from deepq.core.losses import categorical_projection, td_loss, td_target
from deepq.core.memory import available_bytes, check_network_memory, network_needs, size_text
from deepq.core.networks import build_network, resolve_arch
from deepq.core.replay import Batch
from deepq.errors import CheckpointError, ConfigError, NonFiniteLossError
from deepq.files import FORMAT_VERSION, atomic_save, first_sentence, remove_stale_temp_files, safe_load, short_repr

AGENT_FORMAT = "deepq-agent"
MAX_OBS_VALUES = 2 ** 40  # numbers in one observation: far above any env's, far below int64 overflow in a layer
# atomic_save, safe_load and remove_stale_temp_files live in deepq/files.py; importable from here as before
__all__ = ["AGENT_FORMAT", "FORMAT_VERSION", "Agent", "atomic_save", "load", "remove_stale_temp_files",
           "resolve_device", "safe_load", "set_cpu_threads"]


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when torch sees a GPU), 'cpu', 'cuda' or 'cuda:N'; a CUDA device torch cannot use is a
    ConfigError here, in one line, rather than a traceback from the first tensor moved there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"device={name!r} but torch sees no CUDA device (torch {torch.__version__}, {build}); "
                              "use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device={name!r} but torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}; "
                              "use one of those, --device cpu or auto")
    return device


def set_cpu_threads(n: int) -> None:
    """CPU threads for torch and for NumPy's BLAS (the NumPy update and acting use it), process-wide."""
    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")


def make_optimizer(net: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    if cfg.optimizer == "rmsprop":
        # Nature DQN's table (gradient and squared-gradient momentum 0.95, min squared gradient 0.01),
        # as the MinAtar paper's reference code sets it in torch.
        return torch.optim.RMSprop(net.parameters(), lr=cfg.lr, alpha=0.95, eps=0.01, centered=True, momentum=0.95)
    # fused Adam: one kernel for all parameters (3x faster than the per-tensor loop on CPU).
    return torch.optim.Adam(net.parameters(), lr=cfg.lr, fused=True)


class Agent:
    """Q(s, .) for every action in one forward pass; greedy acting; one TD update per call."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, cfg: Config,
                 device: torch.device | str | None = None, two_player: bool = False) -> None:
        self.cfg = cfg  # two_player: the env kind's (board games get the MLP, networks.resolve_arch)
        self.obs_shape = tuple(obs_shape)
        self.n_actions = n_actions
        self.device = resolve_device(cfg.device if device is None else str(device))
        # before allocating: one line, not an OOM
        check_network_memory(self.obs_shape, n_actions, cfg, self.device, two_player=two_player)
        self.online = build_network(self.obs_shape, n_actions, cfg, two_player=two_player).to(self.device)
        # target="none": the online net computes its own target (the instability the target net prevents).
        self.target: nn.Module | None = None
        if cfg.target not in ("none", "mcts"):  # MCTS targets come from search, not from a copy of the net
            self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_optimizer(self.online, cfg)
        self._params: list[torch.Tensor] = list(self.online.parameters())
        self._target_params: list[torch.Tensor] = list(self.target.parameters()) if self.target is not None else []
        # The fast path for deepq's own MLP (deepq/core/fast_path.py): same update, same actions, less overhead.
        rainbow = cfg.dueling or cfg.noisy or cfg.atoms > 1 or cfg.prioritized
        own_mlp = (cfg.fused and cfg.network is None and cfg.optimizer == "adam" and not rainbow
                   and resolve_arch(self.obs_shape, cfg, two_player=two_player) == "mlp")
        fast = NumpyMLPUpdate if self.device.type == "cpu" else FusedMLPUpdate  # NumPy on CPU: fewer, cheaper calls
        self._fused = fast(self.online, self.target, self.optimizer, cfg) if own_mlp else None
        self._numpy = NumpyPolicy(self.online) if own_mlp and self.device.type == "cpu" else None
        self.td_errors: torch.Tensor | None = None  # (B,) of the last autograd update, for priorities

    # ---- acting -------------------------------------------------------------------------
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
                q = self.online(t).float().cpu().numpy()  # (B, A)
        return q[0] if single else q

    def act(self, obs: Any, legal: np.ndarray | None = None) -> Any:
        """Greedy action: an int for one observation, an int64 array for a batch.
        `legal` ([A] or [B, A] bool, games): the greedy choice is among legal actions only."""
        q = self.q_values(obs)
        if legal is not None:
            q = np.where(legal, q, -np.inf)
        a = q.argmax(axis=-1)
        return int(a) if a.ndim == 0 else a

    # ---- learning -----------------------------------------------------------------------
    def update(self, batch: Batch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """One gradient step on the TD loss; returns the loss (detached).

        `weights` (B,): prioritized replay's importance weights, applied per transition. After the
        autograd update `self.td_errors` (B,) holds each transition's |TD error| (C51: its
        cross-entropy), which prioritized replay turns into new priorities.
        """
        if self._fused is not None:
            return self._fused(batch)
        return self.autograd_update(batch, weights)

    def autograd_update(self, batch: Batch, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The reference TD update, as the algorithm states it; FusedMLPUpdate must match it bit for bit."""
        cfg = self.cfg
        target_net = self.target if self.target is not None else self.online
        if cfg.noisy:  # fresh noise for this update's passes (the target net's independent of the online's)
            for net in ([self.online] if target_net is self.online else [self.online, target_net]):  # fixed order
                net.reset_noise()  # type: ignore[operator]
        if cfg.atoms > 1:
            per_sample = self._c51_loss(batch, target_net)  # (B,)
            loss = per_sample.mean() if weights is None else (weights * per_sample).mean()
            self.td_errors = per_sample.detach()
        else:
            double = cfg.double and self.target is not None
            if double:
                # One online pass over [s; s']: Q(s, .) for the loss, Q(s', .) (detached) to select a*.
                q_both = self.online(torch.cat([batch.obs, batch.next_obs]))  # (2B, A)
                q_all, next_q_online = q_both[: len(batch.obs)], q_both[len(batch.obs):].detach()  # (B, A) each
            else:
                q_all, next_q_online = self.online(batch.obs), None  # (B, A)
            with torch.no_grad():
                next_q = target_net(batch.next_obs)  # (B, A)
                y = td_target(batch.rewards, batch.discounts, next_q, next_q_online, batch.next_legal)  # (B,)
            q = q_all.gather(1, batch.actions.unsqueeze(1)).squeeze(1)  # (B,) Q(s, a)
            if weights is None:
                loss = td_loss(q, y, cfg.loss)
            else:
                loss = (weights * td_loss(q, y, cfg.loss, reduction="none")).mean()
            self.td_errors = (y - q).detach().abs()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"TD loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self._params, cfg.max_grad_norm)
        self.optimizer.step()
        if cfg.target == "polyak":
            torch._foreach_lerp_(self._target_params, self._params, cfg.tau)  # θ⁻ ← θ⁻ + τ(θ − θ⁻)
        return loss.detach()

    def fit_targets(self, obs: torch.Tensor, targets: torch.Tensor, searched: torch.Tensor) -> torch.Tensor:
        """target='mcts': one gradient step on the mean over searched (s, a) of (Q(s, a) − Q_mcts(s, a))².

        obs (B, *obs_shape); targets (B, A) the search's mean values; searched (B, A) bool, the actions the
        search tried: the others get no target and no gradient.
        """
        obs, targets, searched = (x.to(self.device) for x in (obs, targets, searched))
        q = self.online(obs)  # (B, A)
        mask = searched.to(q.dtype)  # (B, A)
        loss = ((q - targets) ** 2 * mask).sum() / mask.sum().clamp(min=1.0)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"MCTS regression loss is {loss.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self._params, self.cfg.max_grad_norm)
        self.optimizer.step()
        return loss.detach()

    def _c51_loss(self, batch: Batch, target_net: nn.Module) -> torch.Tensor:
        """C51 (Bellemare et al. 2017): cross-entropy between the projected target distribution of
        r + γ^n Z(s', a*) and the predicted distribution of Z(s, a); (B,) per transition."""
        rows = torch.arange(len(batch.actions), device=batch.actions.device)
        log_p = self.online.log_probs(batch.obs)[rows, batch.actions]  # type: ignore[operator]  # (B, atoms)
        with torch.no_grad():
            support: torch.Tensor = target_net.head.support  # type: ignore[union-attr,assignment]  # (atoms,)
            next_p = target_net.log_probs(batch.next_obs).exp()  # type: ignore[operator]  # (B, A, atoms)
            if self.cfg.double and self.target is not None:
                next_q = self.online(batch.next_obs)  # (B, A) Double: the online net chooses a*
            else:
                next_q = (next_p * support).sum(2)  # (B, A) the target's own expected values
            if batch.next_legal is not None:  # games: a* among legal moves (a terminal s' has discount 0)
                next_q = next_q.masked_fill(~batch.next_legal, float("-inf"))
            best = next_q.argmax(dim=1)  # (B,) a*
            target = categorical_projection(next_p[rows, best], batch.rewards, batch.discounts, support)  # (B, atoms)
        return -(target * log_p).sum(1)  # (B,)

    def sync_target(self) -> None:
        """Hard sync θ⁻ ← θ."""
        if self.target is not None:
            self.target.load_state_dict(self.online.state_dict())

    def params_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self._params)

    # ---- persistence --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to continue training bit-for-bit."""
        return {"online": self.online.state_dict(),
                "target": self.target.state_dict() if self.target is not None else None,
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        if self.target is not None and state["target"] is not None:
            self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """One file with the config, the spaces and the online weights (no code)."""
        atomic_save({"format": AGENT_FORMAT, "version": FORMAT_VERSION, "config": self.cfg.to_dict(),
                     "obs_shape": list(self.obs_shape), "n_actions": self.n_actions,
                     "custom_network": self.cfg.network is not None,
                     "online": {k: v.cpu() for k, v in self.online.state_dict().items()}}, path)


def load(path: str | os.PathLike[str], network: Any = None, device: str = "cpu",
         two_player: Callable[[Config], bool] = lambda cfg: False) -> Agent:
    """Load an agent saved by Agent.save (or a run directory's agent.pt); never executes code from the file.

    A custom network is code, so it is not in the file: pass the same factory as `network`. The file is
    checked before anything is allocated from it: its entries' types and ranges, its config, the size of
    the network that config builds against the memory available, then each tensor's name, shape, dtype and
    values (NaN and inf are refused). Each problem is one CheckpointError naming the file.
    `two_player(cfg)`: whether the file's env is a two-player game (its kind's; deepq.load passes it).
    """
    p = Path(path)
    if p.is_dir():
        p = p / "agent.pt"
    data = safe_load(p, AGENT_FORMAT)
    obs_shape, n_actions, weights = _agent_entries(p, data)
    cfg = _agent_config(p, data, network).replace(device=device)
    game = two_player(cfg)
    expected = _network_state(p, obs_shape, n_actions, cfg, game)  # None for a custom network (its factory is code)
    if expected is not None:
        check_weights(p, weights, expected)
    agent = Agent(obs_shape, n_actions, cfg, two_player=game)
    if expected is None:
        check_weights(p, weights, agent.online.state_dict())
    try:
        agent.online.load_state_dict(weights)
    except RuntimeError as e:  # check_weights found nothing wrong, so this is rare: torch's lines, joined into one
        why = "; ".join(line.strip() for line in str(e).splitlines() if line.strip())
        raise CheckpointError(f"{p}: the weights do not fit the network this config builds: {why}") from None
    agent.sync_target()
    return agent


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _agent_entries(p: Path, data: dict[str, Any]) -> tuple[tuple[int, ...], int, dict[str, torch.Tensor]]:
    """The spaces and the weights, with their types and ranges checked."""
    damaged = "the file is damaged or was not written by deepq"
    for key in ("config", "obs_shape", "n_actions", "online"):
        if key not in data:
            raise CheckpointError(f"{p} has no {key!r} entry, which every deepq agent file has: {damaged}")

    def wrong(key: str, want: str) -> CheckpointError:
        value = data[key]
        return CheckpointError(f"{p}: {key} is {short_repr(value)} ({type(value).__name__}); a deepq agent file has "
                               f"{want} there: {damaged}")
    shape = data["obs_shape"]
    if not (isinstance(shape, list | tuple) and 1 <= len(shape) <= 8 and all(_is_int(d) and d > 0 for d in shape)
            and math.prod(shape) <= MAX_OBS_VALUES):
        raise wrong("obs_shape", "a list of 1 to 8 positive integers (an observation of at most 2**40 values)")
    if not (_is_int(data["n_actions"]) and data["n_actions"] > 0):
        raise wrong("n_actions", "a positive integer")
    if not isinstance(data["config"], dict):
        raise wrong("config", "a dict of Config fields")
    weights = data["online"]
    if not (isinstance(weights, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in weights.items())):
        raise wrong("online", "a dict of named tensors (the network's state dict)")
    if not isinstance(data.get("custom_network", False), bool):
        raise wrong("custom_network", "True or False")
    return tuple(int(d) for d in shape), int(data["n_actions"]), weights


def _agent_config(p: Path, data: dict[str, Any], network: Any) -> Config:
    """The file's config, validated as a run's is (a ConfigError here is about the file, so it names it)."""
    hidden = data["config"].get("hidden_sizes", ())
    if not isinstance(hidden, list | tuple):
        raise CheckpointError(f"{p}: its config's hidden_sizes is {short_repr(hidden)} ({type(hidden).__name__}); "
                              "deepq writes a list of widths there: the file is damaged or was altered")
    try:
        cfg = Config.from_dict(data["config"]).replace(network=network).validate()
    except (ConfigError, TypeError, ValueError) as e:
        raise CheckpointError(f"{p}: its config is not valid ({e}); the file is damaged or was altered") from None
    if data.get("custom_network", False) and network is None:
        raise CheckpointError(f"{p} was trained with a custom network ({data['config'].get('network')}); "
                              "pass the same factory: deepq.load(path, network=factory)")
    return cfg


def _network_state(p: Path, obs_shape: tuple[int, ...], n_actions: int,
                   cfg: Config, two_player: bool) -> dict[str, torch.Tensor] | None:
    """The state dict (meta tensors: shapes and dtypes, no storage) of the built-in network the file's config
    builds, once its size is known to fit in memory; None for a custom network."""
    if cfg.network is not None:
        return None
    try:
        with torch.device("meta"):
            state = build_network(obs_shape, n_actions, cfg, two_player=two_player).state_dict()
        needs = network_needs(obs_shape, n_actions, cfg, two_player=two_player)
    except (ConfigError, RuntimeError, ValueError, OverflowError, TypeError) as e:
        why = first_sentence(str(e)) or type(e).__name__
        raise CheckpointError(f"{p}: its config and spaces (observations {list(obs_shape)}, {n_actions:,} actions) "
                              f"do not make a network ({why}); the file is damaged or was altered") from None
    assert needs is not None
    nets, device = needs[0], resolve_device(cfg.device)  # what Agent() allocates: the network and its target copy
    have = available_bytes(device)
    if nets.nbytes > have:
        where = "this machine" if device.type == "cpu" else str(device)
        raise CheckpointError(f"{p}: its network ({nets.setting}, {n_actions:,} actions) needs "
                              f"~{size_text(nets.nbytes)} for {nets.what}; {where} has {size_text(have)} available: "
                              "the file is damaged, or was written for a machine with more memory")
    return state


def check_weights(path: Path, weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """CheckpointError unless `weights` has exactly `expected`'s names, each with its shape and dtype and only
    finite values (a network with NaN or inf weights acts on NaN Q values)."""
    missing = [k for k in expected if k not in weights]
    unexpected = [k for k in weights if k not in expected]
    if missing or unexpected:
        parts = [f"{what} {', '.join(map(repr, names[:3]))}" + (f" and {len(names) - 3} more" if len(names) > 3 else "")
                 for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
        raise CheckpointError(f"{path}: the weights do not fit the network its config builds: {'; '.join(parts)}")
    for name, want in expected.items():
        t = weights[name]
        where = f"{path}: tensor online[{name!r}]"
        if t.layout != torch.strided or tuple(t.shape) != tuple(want.shape):
            layout = f" ({t.layout})" if t.layout != torch.strided else ""
            raise CheckpointError(f"{where} has shape {list(t.shape)}{layout}; the network its config builds has "
                                  f"{list(want.shape)}: the file is damaged or was altered")
        if t.dtype != want.dtype:
            raise CheckpointError(f"{where} is {str(t.dtype).removeprefix('torch.')}; deepq writes "
                                  f"{str(want.dtype).removeprefix('torch.')} there: the file was altered or not "
                                  "written by deepq")
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            nan = int(torch.isnan(t).sum())
            inf = int((~torch.isfinite(t)).sum()) - nan
            raise CheckpointError(f"{where} holds {nan:,} NaN and {inf:,} inf among its {t.numel():,} values; a "
                                  "network with them computes NaN Q values: use a file from before the run diverged "
                                  "(a run's checkpoint keeps its last good state), or train again")
