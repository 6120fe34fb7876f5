"""The training loop's bookkeeping: counters saved in every checkpoint, when to stop, Ctrl-C between steps,
and episode tracking. Nothing here learns; deepq/training/loop.py calls it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import numpy as np

from deepq.config import Config
from deepq.errors import CheckpointError, RunInterrupted
from deepq.files import safe_load
from deepq.run.log import RunLog
from deepq.signals import Interrupts, name


@dataclass
class LoopState:
    """Counters and episode bookkeeping, saved in every checkpoint."""

    step: int = 0  # env steps collected, summed over envs
    updates: int = 0  # gradient steps taken
    episodes: int = 0  # episodes finished
    evals: int = 0  # evaluations run
    ep_return: list[float] = field(default_factory=list)  # per env: return of the episode in progress
    ep_length: list[int] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)  # returns of the last 20 finished episodes
    last_eval: float | None = None
    solved_at: int | None = None  # env step of the first evaluation reaching cfg.stop_at_return
    loss_sum: float = 0.0  # loss summed since the last finished episode (for metrics.csv)
    loss_count: int = 0

    def add_loss(self, loss: float) -> None:
        """Count one gradient step and its loss."""
        self.loss_sum += loss
        self.loss_count += 1
        self.updates += 1

    def recent_mean(self) -> float | None:
        return sum(self.recent) / len(self.recent) if self.recent else None


def crossings(prev: int, now: int, every: int) -> int:
    """How many multiples of `every` lie in (prev, now]; 0 when every == 0 (disabled)."""
    return now // every - prev // every if every > 0 else 0


def replay_ratio_updates(cfg: Config, prev: int, step: int) -> int:
    """`gradient_steps` per `train_freq` env steps: the gradient steps due for env steps (prev, step]."""
    return cfg.gradient_steps * crossings(prev, step, cfg.train_freq)


def lr_at(cfg: Config, step: int) -> float:
    """The learning rate at env step `step`: cfg.lr, or with lr_decay cfg.lr × (1 − step / total_steps), ≥ 0."""
    return cfg.lr * max(0.0, 1.0 - step / cfg.total_steps) if cfg.lr_decay else cfg.lr


def track_episodes(state: LoopState, rewards: np.ndarray, done: np.ndarray, eps: float, log: RunLog) -> None:
    """Add one step's rewards (N,) to the episodes in progress; log and reset those that ended."""
    for i in range(len(rewards)):
        state.ep_return[i] += float(rewards[i])
        state.ep_length[i] += 1
        if done[i]:
            episode_ended(state, state.ep_return[i], state.ep_length[i], eps, log)
            state.ep_return[i], state.ep_length[i] = 0.0, 0


def episode_ended(state: LoopState, ret: float, length: int, eps: float, log: RunLog, actor: int | None = None) -> None:
    """Count and log one finished episode (with the loss averaged since the last one); `actor`: whose it was
    in a distributed run."""
    state.episodes += 1
    loss = state.loss_sum / state.loss_count if state.loss_count else None
    log.episode(state.step, state.episodes, ret, length, eps, loss, actor)
    state.recent = ([*state.recent, ret])[-20:]
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
