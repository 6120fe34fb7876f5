"""The run directory: config.json, metrics.csv, TensorBoard events, learning_curve.png.

A side channel of the training loop: nothing in the core imports it.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from deepq.config import Config
from deepq.evaluate import EvalResult

COLUMNS = ["step", "episode", "episode_return", "episode_length", "epsilon", "loss", "eval_return", "eval_std"]


def new_run_dir(cfg: Config) -> Path:
    """cfg.run_dir, or runs/<name>-<seed>-<timestamp>/ (never reusing an existing folder)."""
    if cfg.run_dir:
        path = Path(cfg.run_dir)
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path("runs") / f"{cfg.run_name}-{cfg.seed}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = Path("runs") / f"{cfg.run_name}-{cfg.seed}-{stamp}-{n}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_config(run_dir: Path, cfg: Config) -> None:
    (run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")


def read_config(run_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((run_dir / "config.json").read_text())
    return data


class RunLog:
    """One metrics.csv row per finished episode and per evaluation; the same scalars to TensorBoard.

    On resume from step S, rows and events after S (written before the run was killed) are dropped,
    so a resumed run's files match those of a run that never stopped.

    TensorBoard scalars are handed to the writer in bursts (every PUSH_EVERY scalars, at each
    evaluation and flush), each with the wall time it was logged at. SummaryWriter passes every
    scalar to a background thread; handing them over one at a time made that thread contend for
    the GIL with the training loop (measured: 15% of a CartPole run's wall time).
    """

    PUSH_EVERY = 256

    def __init__(self, run_dir: Path, resume_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import, kept out of the core

        self.run_dir = run_dir
        path = run_dir / "metrics.csv"
        if resume_step is not None and path.exists():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        else:
            rows = []
        self._file = path.open("w", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=COLUMNS)
        self._csv.writeheader()
        self._csv.writerows(rows)
        self._file.flush()
        self.tb = SummaryWriter(str(run_dir), purge_step=resume_step)
        self._scalars: list[tuple[str, float, int, float]] = []  # (tag, value, step, wall time) not yet pushed

    def episode(self, step: int, episode: int, ret: float, length: int, eps: float, loss: float | None) -> None:
        self._csv.writerow({"step": step, "episode": episode, "episode_return": ret, "episode_length": length,
                            "epsilon": round(eps, 6), "loss": "" if loss is None else f"{loss:.6g}"})
        self._scalar("train/episode_return", ret, step)
        self._scalar("train/episode_length", length, step)
        self._scalar("train/epsilon", eps, step)
        if loss is not None:
            self._scalar("train/loss", loss, step)

    def evaluation(self, step: int, result: EvalResult) -> None:
        self._csv.writerow({"step": step, "eval_return": result.mean, "eval_std": result.std})
        self._file.flush()
        self._scalar("eval/mean_return", result.mean, step)
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

    def flush(self) -> None:
        self._file.flush()
        self._push()
        self.tb.flush()

    def close(self) -> None:
        self._file.close()
        self._push()
        self.tb.close()


def plot_learning_curve(run_dir: Path, title: str = "") -> Path:
    """learning_curve.png from metrics.csv: episode returns (raw and smoothed) and evaluation means."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    with (run_dir / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    ep = [(int(r["step"]), float(r["episode_return"])) for r in rows if r["episode_return"]]
    ev = [(int(r["step"]), float(r["eval_return"]), float(r["eval_std"])) for r in rows if r["eval_return"]]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    if ep:
        s, r = np.array(ep).T
        ax.plot(s, r, color="tab:blue", alpha=0.25, lw=0.8, label="episode return")
        k = max(1, min(20, len(r) // 5))
        ax.plot(s[k - 1:], np.convolve(r, np.ones(k) / k, mode="valid"), color="tab:blue",
                label=f"episode return ({k}-episode mean)")
    if ev:
        s, m, sd = np.array(ev).T
        ax.errorbar(s, m, yerr=sd, color="tab:orange", marker="o", ms=3, capsize=2, label="greedy evaluation")
    ax.set_xlabel("env steps")
    ax.set_ylabel("return")
    ax.set_title(title or run_dir.name)
    ax.grid(alpha=0.3)
    if ep or ev:
        ax.legend(loc="best")
    out = run_dir / "learning_curve.png"
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
