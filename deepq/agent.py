"""Agent: the online Q-network, its target copy, the optimizer, and the TD update."""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from deepq.config import Config
from deepq.errors import CheckpointError, NonFiniteLossError
from deepq.fused import FusedMLPUpdate, NumpyMLPUpdate, NumpyPolicy
from deepq.loss import categorical_projection, td_loss, td_target
from deepq.networks import build_network, resolve_arch
from deepq.replay import Batch

AGENT_FORMAT = "deepq-agent"
FORMAT_VERSION = 1


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


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
                 device: torch.device | str | None = None) -> None:
        self.cfg = cfg
        self.obs_shape = tuple(obs_shape)
        self.n_actions = n_actions
        self.device = resolve_device(cfg.device) if device is None else torch.device(device)
        self.online = build_network(self.obs_shape, n_actions, cfg).to(self.device)
        # target="none": the online net computes its own target (the instability the target net prevents).
        self.target: nn.Module | None = None
        if cfg.target not in ("none", "mcts"):  # MCTS targets come from search, not from a copy of the net
            self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = make_optimizer(self.online, cfg)
        self._params: list[torch.Tensor] = list(self.online.parameters())
        self._target_params: list[torch.Tensor] = list(self.target.parameters()) if self.target is not None else []
        # The fast path for deepq's own MLP (deepq/fused.py): same update, same actions, less overhead.
        rainbow = cfg.dueling or cfg.noisy or cfg.atoms > 1 or cfg.prioritized
        own_mlp = (cfg.fused and cfg.network is None and cfg.optimizer == "adam" and not rainbow
                   and resolve_arch(self.obs_shape, cfg) == "mlp")
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


def load(path: str | os.PathLike[str], network: Any = None, device: str = "cpu") -> Agent:
    """Load an agent saved by Agent.save (or a run directory's agent.pt); never executes code from the file.

    A custom network is code, so it is not in the file: pass the same factory as `network`.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "agent.pt"
    data = safe_load(p, AGENT_FORMAT)
    cfg = Config.from_dict(data["config"]).replace(network=network, device=device)
    if data["custom_network"] and network is None:
        raise CheckpointError(f"{p} was trained with a custom network ({data['config']['network']}); "
                              "pass the same factory: deepq.load(path, network=factory)")
    agent = Agent(tuple(data["obs_shape"]), int(data["n_actions"]), cfg)
    try:
        agent.online.load_state_dict(data["online"])
    except RuntimeError as e:
        raise CheckpointError(f"{p}: the weights do not fit the network this config builds: {e}") from e
    agent.sync_target()
    return agent


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_load(path: Path, expected_format: str) -> dict[str, Any]:
    """torch.load with weights_only=True, turning every failure into one clear CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (expected a deepq {expected_format.split('-')[1]} file)")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated/corrupt/unsafe files
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "Unsupported global" in str(e):
            why = "it contains Python objects that deepq never writes, and loading them could run code"
        else:
            why = f"it is corrupt or truncated ({type(e).__name__}: {text[:200]})"
        raise CheckpointError(f"cannot load {path}: {why}. Use a file written by deepq, "
                              "or train again to produce one.") from None
    if not isinstance(data, dict) or data.get("format") != expected_format:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a {expected_format} file (found format {found!r}); "
                              f"it was not written by deepq or is a different kind of deepq file")
    if data.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has {expected_format} version {data.get('version')}; this deepq "
                              f"reads version {FORMAT_VERSION}")
    return data
