"""The run directory: its lock, config.json, metrics.csv, TensorBoard events, learning_curve.png.

A side channel of the training loop: nothing in the core imports it.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepq.config import Config
from deepq.core.results import EvalResult
from deepq.errors import RunDirError
from deepq.files import current_umask, read_small_text, remove_stale_temp_files

# An episode row sums up the episodes that ended in one collection (see RunLog.episodes); the last three columns
# were added when rows stopped being one per episode, at the end, so that the others kept their places.
COLUMNS = ["step", "episode", "episode_return", "episode_length", "epsilon", "loss",
           "eval_return", "eval_std", "eval_min", "eval_max", "eval_first", "eval_second", "eval_kind",
           "episodes_in_row", "return_min", "return_max"]
ACTOR_COLUMNS = [*COLUMNS, "actor"]  # a distributed run's: which actor played the row's episodes
RUN_FILES = ("config.json", "metrics.csv", "agent.pt", "learning_curve.png", "checkpoint")  # what a run writes


def new_run_dir(cfg: Config) -> Path:
    """cfg.run_dir, or runs/<name>-<seed>-<timestamp>/ (never reusing an existing folder); open_run_dir makes it."""
    if cfg.run_dir:
        path = Path(cfg.run_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{cfg.run_name}-{cfg.seed}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{cfg.run_name}-{cfg.seed}-{stamp}-{n}"
    return path


def make_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create the run directory {path}: {e.strerror}; choose another --run_dir") \
            from None
    return path


class RunDirLock:
    """An exclusive lock on RUN/.lock, held for the life of one training process.

    flock(2) locks belong to the open file, so the OS drops the lock when the process dies, SIGKILL
    included: a killed run never leaves a stale lock. The holder writes its pid into the file, so
    a second process can say who has the run.
    """

    def __init__(self, run_dir: Path, created: bool = False) -> None:
        self.run_dir, self.created = run_dir, created  # created: this process made the folder
        try:
            self._fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:  # a read-only disk, a folder without write permission, .lock not a file ...
            raise RunDirError(f"cannot lock {run_dir / '.lock'}: {e.strerror}; a run needs a folder it can write "
                              "(its checkpoints and metrics): copy the run to a writable disk and resume it there, "
                              "or train into another --run_dir") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self._fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(self._fd)
            raise RunDirError(f"{run_dir} is in use by another deepq process (pid {holder}); wait for it to end "
                              "or stop it, or train into another --run_dir") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self, tidy: bool = False) -> None:
        """Drop the lock. `tidy` (a fresh run): when the run wrote nothing (its set-up failed or was stopped),
        remove the lock file too, and the folder when this process made it, so a failed start leaves nothing."""
        if self._fd < 0:
            return
        if tidy and not holds_run(self.run_dir):
            Path(self.run_dir / ".lock").unlink(missing_ok=True)  # while locked: no other process has it
            if self.created:
                try:
                    self.run_dir.rmdir()  # only if empty: never anything a user put there
                except OSError:
                    pass
        os.close(self._fd)  # closing the file drops the lock
        self._fd = -1


def lock_holder(run_dir: Path) -> str:
    """The pid of the process that holds run_dir's lock, or '' when none does (nothing is created or changed)."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY)
    except OSError:
        return ""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted only while no process holds it exclusively
        return ""
    except BlockingIOError:
        return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
    except OSError:
        return ""
    finally:
        os.close(fd)  # drops the shared lock, if it was granted


def holds_run(run_dir: Path) -> list[str]:
    """The files of a deepq run found in run_dir (empty when it holds none)."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    return found + (["TensorBoard events"] if any(run_dir.glob("events.out.tfevents.*")) else [])


def claim_fresh(run_dir: Path, overwrite: bool) -> None:
    """A fresh run may only start in a folder that holds no run, unless told to replace it (overwrite)."""
    found = holds_run(run_dir)
    if not found:
        return
    if not overwrite:
        resumable = (run_dir / "checkpoint" / "checkpoint.pt").exists()
        how = f"continue it with `deepq train --resume {run_dir}`, " if resumable else ""
        raise RunDirError(f"{run_dir} already holds a run ({', '.join(found)}); {how}train into another "
                          "--run_dir, or pass --overwrite to replace it")
    for name in RUN_FILES:
        target = run_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for events in run_dir.glob("events.out.tfevents.*"):
        events.unlink()


def open_run_dir(run_dir: Path, fresh: bool, overwrite: bool) -> RunDirLock:
    """Lock run_dir for this process (released by the caller) and clear what a killed write left in it. A fresh
    run needs a folder that holds no run (or overwrite); a resumed one, a checkpoint."""
    created = fresh and not run_dir.exists()
    if fresh:
        make_dir(run_dir)
    elif not (run_dir / "checkpoint" / "checkpoint.pt").is_file():
        holder = lock_holder(run_dir)
        if holder:  # e.g. a sweep's run still before its first checkpoint
            raise RunDirError(f"cannot resume {run_dir}: another deepq process (pid {holder}) is training it and has "
                              "not written its first checkpoint yet; wait for it to end or stop it, then resume")
        what = "does not exist" if not run_dir.exists() else "has no checkpoint/checkpoint.pt"
        raise RunDirError(f"cannot resume {run_dir}: it {what}; pass a run directory written by deepq train "
                          "(checkpoints are written every checkpoint_interval env steps)")
    lock = RunDirLock(run_dir, created)
    try:
        if fresh:
            claim_fresh(run_dir, overwrite)
        for folder in (run_dir, run_dir / "checkpoint"):
            remove_stale_temp_files(folder)  # what a SIGKILL in the middle of a write left behind
    except BaseException:
        lock.release()
        raise
    return lock


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file through a temp file in the same folder, fsync and rename: a reader (or a kill)
    sees the old file or the new one, never a part of either."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_config(run_dir: Path, cfg: Config, run_id: str) -> None:
    """config.json: the run's id (its checkpoints carry the same one) and its Config."""
    atomic_write_text(run_dir / "config.json", json.dumps({"run_id": run_id, **cfg.to_dict()}, indent=2) + "\n")


def read_run_id(run_dir: Path) -> str:
    """The run id in run_dir/config.json ('' when there is none: no file, or one from an older deepq)."""
    try:
        data = json.loads(read_small_text(run_dir / "config.json"))
    except (OSError, ValueError):  # (UnicodeDecodeError is a ValueError)
        return ""
    return str(data.get("run_id", "")) if isinstance(data, dict) else ""


class RunLog:
    """metrics.csv: one row per collection that finished episodes and one per evaluation; the same scalars to
    TensorBoard.

    An episode row holds the episodes that ended in one `collect` of a training mode (one vector step of DQN, one
    rollout of PQN, one batch of searched episodes, one shipment of a distributed actor): their count, mean return
    and length, lowest and highest return. Rows per episode grew with the episode rate, which the vectorized
    modes multiply: 15M plies of Connect Four PQN self-play wrote 658,721 rows (24 MB); at 4,096 plies per rollout
    the same run writes ~3,700. One episode's row is the row it always was, plus count 1 and its return as min and
    max.

    metrics.csv only grows while a run trains. A resumed run cuts it back to what it was when its
    checkpoint was written (`metrics_bytes` in the checkpoint: rows written after it are dropped), with
    one truncate(2) in place, so no moment exists in which a kill loses an earlier row. TensorBoard
    events after the checkpoint's step are purged. So a resumed run's files match a run that never stopped.

    TensorBoard scalars are handed to the writer in bursts (every PUSH_EVERY scalars, at each
    evaluation and flush), each with the wall time it was logged at. SummaryWriter passes every
    scalar to a background thread; handing them over one at a time made that thread contend for
    the GIL with the training loop (measured: 15% of a CartPole run's wall time).
    """

    PUSH_EVERY = 256

    def __init__(self, run_dir: Path, resume_step: int | None = None, resume_bytes: int | None = None,
                 actor_column: bool = False) -> None:
        """actor_column: a distributed run's metrics.csv also says which actor played each episode."""
        from torch.utils.tensorboard import SummaryWriter  # slow import, kept out of the core

        self.run_dir = run_dir
        path = run_dir / "metrics.csv"
        columns = ACTOR_COLUMNS if actor_column else COLUMNS
        if resume_step is not None and path.exists():
            _cut_back(path, resume_step, resume_bytes, columns)
            self._file = path.open("a", newline="")
            self._csv = csv.DictWriter(self._file, fieldnames=columns)
        else:
            self._file = path.open("w", newline="")
            self._csv = csv.DictWriter(self._file, fieldnames=columns)
            self._csv.writeheader()
            self._file.flush()
        self.tb = SummaryWriter(str(run_dir), purge_step=resume_step)
        self._scalars: list[tuple[str, float, int, float]] = []  # (tag, value, step, wall time) not yet pushed

    def episodes(self, step: int, episode: int, returns: np.ndarray, lengths: np.ndarray, eps: float,
                 loss: float | None, actor: int | None = None) -> None:
        """One row for the K >= 1 episodes of one collection: `step` the env step at its end, `episode` the episodes
        finished so far (the last one's number), mean return and length, count, lowest and highest return; `loss`
        the mean since the previous episode row."""
        k = len(returns)
        if k == 0 or len(lengths) != k:
            raise ValueError(f"an episode row needs K >= 1 returns and as many lengths (got {k} and {len(lengths)})")
        if k == 1:  # the common row (one env, or one episode ended): plain floats, no reductions (a row per step)
            ret = low = high = float(returns[0])
            length: int | float = int(lengths[0])
        else:
            ret = float(np.mean(returns, dtype=np.float64))
            low, high = float(np.min(returns)), float(np.max(returns))
            total = int(np.sum(lengths, dtype=np.int64))
            length = total // k if total % k == 0 else total / k  # an integer where it is one
        row: dict[str, Any] = {"step": step, "episode": episode, "episode_return": ret, "episode_length": length,
                               "epsilon": round(eps, 6), "loss": "" if loss is None else f"{loss:.6g}",
                               "episodes_in_row": k, "return_min": low, "return_max": high}
        self._csv.writerow(row if actor is None else {**row, "actor": actor})
        self._scalar("train/episode_return", ret, step)
        self._scalar("train/episode_length", length, step)
        self._scalar("train/epsilon", eps, step)
        if loss is not None:
            self._scalar("train/loss", loss, step)

    def episode(self, step: int, episode: int, ret: float, length: int, eps: float, loss: float | None,
                actor: int | None = None) -> None:
        """One episode's row (`episodes` with K = 1)."""
        self.episodes(step, episode, np.array([ret], np.float64), np.array([length], np.int64), eps, loss, actor)

    def evaluation(self, step: int, result: EvalResult, final: bool = False) -> None:
        """One evaluation row: mean, std and range of its returns (games: the score from each seat);
        `final` marks the evaluation of the saved agent after training ended."""
        row: dict[str, Any] = {"step": step, "eval_return": result.mean, "eval_std": result.std,
                               "eval_min": min(result.returns), "eval_max": max(result.returns),
                               "eval_kind": "final" if final else "periodic"}
        if result.seats is not None:
            row["eval_first"], row["eval_second"] = result.seats
        self._csv.writerow(row)
        self._file.flush()
        self._scalar("eval/final_mean_return" if final else "eval/mean_return", result.mean, step)
        self._push()

    def speed(self, step: int, steps_per_sec: float) -> None:
        self._scalar("perf/steps_per_sec", steps_per_sec, step)

    def _scalar(self, tag: str, value: float, step: int) -> None:
        self._scalars.append((tag, value, step, time.time()))
        if len(self._scalars) >= self.PUSH_EVERY:
            self._push()

    def _push(self) -> None:
        for tag, value, step, wall in self._scalars:
            self.tb.add_scalar(tag, value, step, walltime=wall)
        self._scalars.clear()

    def flush(self) -> int:
        """Write everything out; returns metrics.csv's size in bytes (a checkpoint records it)."""
        self._file.flush()
        self._push()
        self.tb.flush()
        return os.fstat(self._file.fileno()).st_size

    def close(self) -> None:
        self._file.close()
        self._push()
        self.tb.close()


def _cut_back(path: Path, step: int, size: int | None, columns: list[str]) -> None:
    """Drop the rows written after the checkpoint being resumed (see RunLog): cut metrics.csv back to `size`, its
    bytes when the checkpoint was written, or where the checkpoint did not record them (an older deepq), to the
    rows up to its step. A file in an older deepq's columns is rewritten in today's."""
    with path.open("rb") as f:
        header = f.readline()
    today = header.decode(errors="replace") == ",".join(columns) + "\r\n"
    if not today and not header.startswith(b"step,"):
        raise RunDirError(f"{path} is damaged (its first line is not the header deepq writes), so rows "
                          f"cannot be appended to it; it was left as it is. Move it aside (mv {path} "
                          f"{path.with_suffix('.damaged.csv')}) to resume without the earlier rows")
    if size is not None and path.stat().st_size < size:
        raise RunDirError(f"{path} is shorter ({path.stat().st_size:,} bytes) than when the checkpoint was "
                          f"written ({size:,} bytes): rows are missing; it was left as it is. Move it "
                          "aside to resume without the earlier rows")
    if today and size is not None:
        os.truncate(path, size)  # one call: the rows up to the checkpoint stay whatever happens
        return
    # Otherwise the kept rows are written to a temp file that replaces metrics.csv in one rename.
    try:
        with path.open("rb") as f:
            text = f.read(-1 if size is None else size).decode("utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        if size is None:
            rows = [r for r in rows if int(r["step"]) <= step]
    except (ValueError, KeyError, TypeError, csv.Error) as e:  # (UnicodeDecodeError is a ValueError)
        raise RunDirError(f"{path} is damaged ({type(e).__name__}: {e}); it was left as it is. Move it aside "
                          "to resume without the earlier rows") from None
    for row in rows:
        if row.get("episode_return") and not row.get("episodes_in_row"):  # an older deepq's: one episode a row
            row.update(episodes_in_row="1", return_min=row["episode_return"], return_max=row["episode_return"])
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, out.getvalue())
