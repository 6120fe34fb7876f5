"""The training loop's bookkeeping: counters saved in every checkpoint, when to stop, Ctrl-C between steps,
and episode tracking. Nothing here learns; deepq/training/loop.py calls it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np
import torch

from deepq.config import Config
from deepq.errors import CheckpointError, RunInterrupted
from deepq.files import safe_load
from deepq.run.log import RunLog
from deepq.signals import Interrupts, name


@dataclass
class LoopState:
    """Counters and episode bookkeeping, saved in every checkpoint (`saved()`: ints, floats, lists and CPU tensors,
    which torch.load(weights_only=True) reads back)."""

    step: int = 0  # env steps collected, summed over envs
    updates: int = 0  # gradient steps taken
    episodes: int = 0  # episodes finished
    evals: int = 0  # evaluations run
    # per env: return and length of the episode in progress, (N,) float64 and int64 tensors; `finished` adds to
    # them through NumPy views. A list (the constructor's argument, or a checkpoint of an older deepq) is turned
    # into a tensor on first use.
    ep_return: torch.Tensor | list[float] = field(default_factory=list)
    ep_length: torch.Tensor | list[int] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)  # returns of the last 20 finished episodes
    last_eval: float | None = None
    solved_at: int | None = None  # env step of the first evaluation reaching cfg.stop_at_return
    loss_sum: float = 0.0  # loss summed since the last episode row of metrics.csv
    loss_count: int = 0

    def __post_init__(self) -> None:
        _tallies(self)

    def saved(self) -> dict[str, Any]:
        """The fields, as a checkpoint holds them (not the NumPy views `finished` keeps beside them)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def add_loss(self, loss: float) -> None:
        """Count one gradient step and its loss."""
        self.loss_sum += loss
        self.loss_count += 1
        self.updates += 1

    def recent_mean(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


class Episodes(NamedTuple):
    """Finished episodes, in the order they ended: what one metrics.csv row sums up."""

    returns: np.ndarray  # (K,) float64: each episode's return as logged (raw rewards; games: the first player's)
    lengths: np.ndarray  # (K,) int64: its length in env steps

    @classmethod
    def of(cls, returns: Iterable[float], lengths: Iterable[int]) -> Episodes:
        """From plain sequences (e.g. a distributed actor's (return, length) pairs, unzipped)."""
        return cls(np.asarray(list(returns), np.float64).reshape(-1), np.asarray(list(lengths), np.int64).reshape(-1))

    @classmethod
    def concat(cls, parts: Iterable[Episodes]) -> Episodes:
        """Several steps' episodes as one, in order (e.g. every vector step of a rollout)."""
        parts = [p for p in parts if len(p.returns)]
        if not parts:
            return NO_EPISODES
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([p.returns for p in parts]), np.concatenate([p.lengths for p in parts]))

    @property
    def size(self) -> int:
        """K, the number of episodes."""
        return len(self.returns)


NO_EPISODES = Episodes(np.zeros(0, np.float64), np.zeros(0, np.int64))
NO_EPISODES.returns.flags.writeable = False  # shared: `finished` returns it whenever nothing ended
NO_EPISODES.lengths.flags.writeable = False


def _tallies(state: LoopState) -> tuple[np.ndarray, np.ndarray]:
    """NumPy views of state.ep_return and state.ep_length, made tensors first where they are lists; the views are
    kept beside the fields (they run every vector step: a 1-env DQN step is ~250 µs, and each call counts)."""
    views = state.__dict__.get("_views")
    if views is not None and views[0] is state.ep_return and views[1] is state.ep_length:
        return views[2], views[3]
    if not isinstance(state.ep_return, torch.Tensor):
        state.ep_return = torch.tensor(np.asarray(state.ep_return, np.float64).reshape(-1))
    if not isinstance(state.ep_length, torch.Tensor):
        state.ep_length = torch.tensor(np.asarray(state.ep_length, np.int64).reshape(-1))
    state.__dict__["_views"] = (state.ep_return, state.ep_length, state.ep_return.numpy(), state.ep_length.numpy())
    return state.__dict__["_views"][2], state.__dict__["_views"][3]


def crossings(prev: int, now: int, every: int) -> int:
    """How many multiples of `every` lie in (prev, now]; 0 when every == 0 (disabled)."""
    return now // every - prev // every if every > 0 else 0


def replay_ratio_updates(cfg: Config, prev: int, step: int) -> int:
    """`gradient_steps` per `train_freq` env steps: the gradient steps due for env steps (prev, step]."""
    return cfg.gradient_steps * crossings(prev, step, cfg.train_freq)


def lr_at(cfg: Config, step: int) -> float:
    """The learning rate at env step `step`: cfg.lr, or with lr_decay cfg.lr × (1 − step / total_steps), ≥ 0."""
    return cfg.lr * max(0.0, 1.0 - step / cfg.total_steps) if cfg.lr_decay else cfg.lr


def finished(state: LoopState, rewards: np.ndarray, ended: np.ndarray) -> Episodes:
    """Add one vector step's logged rewards (N,) to the episodes in progress; return those that ended at this step
    (ended (N,) bool, in env order), their tallies reset for the envs' next episodes. Logs nothing."""
    ret, length = _tallies(state)  # (N,) views: the adds below change the state's tensors
    if len(rewards) != len(ret) or len(ended) != len(ret):
        raise ValueError(f"rewards {np.shape(rewards)} and ended {np.shape(ended)} must have the shape of the "
                         f"episodes in progress {ret.shape}")
    if len(ret) == 1:  # one env (the textbook case, every step): element access, not array ops (1 µs each)
        ret[0] += rewards[0]
        length[0] += 1
        if not ended[0]:
            return NO_EPISODES
        out = Episodes(ret.copy(), length.copy())
        ret[0], length[0] = 0.0, 0
        return out
    ret += rewards  # float64 sums, as the Python floats of a per-env tally gave them
    length += 1
    if not ended.any():  # most steps: no episode ended
        return NO_EPISODES
    done = np.flatnonzero(ended)
    out = Episodes(ret[done], length[done])  # (K,) copies (fancy indexing)
    ret[done], length[done] = 0.0, 0
    return out


def log_episodes(state: LoopState, episodes: Episodes, eps: float, log: RunLog, actor: int | None = None) -> None:
    """Count the episodes one collection finished and write them as one metrics.csv row (none when K == 0), with
    the loss averaged since the previous row; `actor`: whose they were in a distributed run."""
    k = episodes.size
    if k == 0:
        return
    state.episodes += k
    loss = state.loss_sum / state.loss_count if state.loss_count else None
    log.episodes(state.step, state.episodes, episodes.returns, episodes.lengths, eps, loss, actor)
    state.recent = [*state.recent, *episodes.returns[-20:].tolist()][-20:]
    state.loss_sum, state.loss_count = 0.0, 0


def time_limit(cfg: Config) -> Callable[[], bool]:
    """A check that says when cfg.max_minutes of wall-clock time have passed (never, when 0)."""
    if cfg.max_minutes <= 0:
        return lambda: False
    end = time.monotonic() + 60 * cfg.max_minutes
    return lambda: time.monotonic() >= end


def running(state: LoopState, cfg: Config, interrupted: Interrupts, out_of_time: Callable[[], bool]) -> bool:
    """Training goes on until total_steps, a solving evaluation, Ctrl-C or max_minutes."""
    return (state.step < cfg.total_steps and state.solved_at is None and not interrupted.requested
            and not out_of_time())


CHECKPOINT_FORMAT = "deepq-checkpoint"


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoint" / "checkpoint.pt"


def checkpoint_and_stop(step: int, run_dir: Path, signum: int, save_checkpoint: Callable[[], None]) -> NoReturn:
    """After SIGINT, SIGTERM or SIGHUP (handled between steps): save a consistent checkpoint, say how to
    continue, stop. The CLI exits with 128 + the signal's number, as a shell does."""
    save_checkpoint()
    print(f"stopped by {name(signum)} at step {step:,}: checkpoint saved; continue with `deepq train --resume "
          f"{run_dir}`", file=sys.stderr, flush=True)
    raise RunInterrupted(signum, reported=True)


def why_stopped(cfg: Config, state: LoopState) -> str:
    if state.solved_at is not None:
        return f"solved at step {state.solved_at:,} (evaluation {state.last_eval:.2f} >= {cfg.stop_at_return:g})"
    if state.step < cfg.total_steps:
        return f"stopped at the time limit (max_minutes={cfg.max_minutes:g})"
    return f"reached total_steps={cfg.total_steps:,}"


def last_checkpoint(run_dir: Path) -> str:
    path = checkpoint_path(run_dir)
    if not path.is_file():
        return "No checkpoint had been written yet."
    try:
        step = safe_load(path, CHECKPOINT_FORMAT)["loop"]["step"]
    except (CheckpointError, KeyError):
        return f"{path} cannot be read."
    return f"The last checkpoint ({path}, step {step:,}) is intact."


def diverged_advice(cfg: Config, run_dir: Path) -> str:
    """What to do after a non-finite loss. The weights that gave it are not a good state (the env's output
    is checked finite at every step, so they diverged); resuming only helps from an earlier checkpoint."""
    lower = f"a lower lr (now {cfg.lr:g}), loss='huber' or max_grad_norm > 0"
    if checkpoint_path(run_dir).is_file():
        return (f"{last_checkpoint(run_dir)} Continue from it with {lower}: "
                f"`deepq train --resume {run_dir} --lr {cfg.lr / 10:g}`")
    return f"No checkpoint had been written, so start the run again with {lower}"
