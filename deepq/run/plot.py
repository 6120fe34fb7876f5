"""learning_curve.png from a run directory's metrics.csv.

A run side channel: nothing in the core imports it, and matplotlib is imported only when a plot is
drawn (on a bare Figure with the Agg canvas, so pyplot's global state and backend are never touched).

The top panel holds the returns: training episode returns (each row's mean, faint, and a moving mean weighted
by the episodes in each row, so a row of 200 episodes counts 200 times one of a single episode), the
periodic greedy evaluations (mean, with a band of ± one std that never leaves the possible range),
the final evaluation of the saved agent (a star), and the solved threshold with the step it was
first reached. Two-player games show the evaluation score from each seat instead of the ±1 episode
returns. A smaller panel below shares the step axis and holds the TD loss.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (9.0, 6.0)  # inches; at DPI this is a 900 x 600 PNG, with or without the loss panel
DPI = 100
MAX_POINTS = 4000  # points per drawn line; longer series are decimated to a min/max per bin
GAME_RANGE = (-1.0, 1.0)  # a game's score: +1 win, 0 draw, −1 loss


@dataclass
class Metrics:
    """metrics.csv as arrays; NaN where a row leaves a column empty or the file lacks it."""

    ep_step: np.ndarray  # (E,) env step at which each episode row's collection ended
    ep_return: np.ndarray  # (E,) the row's mean return
    ep_count: np.ndarray  # (E,) episodes in the row (episodes_in_row; 1 where the file has none: an older deepq's)
    loss_step: np.ndarray  # (L,) episode rows that carry a finite loss
    loss: np.ndarray  # (L,) mean TD loss since the previous episode row
    ev_step: np.ndarray  # (V,) one entry per evaluation row
    ev_mean: np.ndarray  # (V,)
    ev_std: np.ndarray  # (V,)
    ev_min: np.ndarray  # (V,) lowest episode return of the evaluation
    ev_max: np.ndarray  # (V,) highest
    ev_first: np.ndarray  # (V,) games: mean score playing first
    ev_second: np.ndarray  # (V,) games: mean score playing second
    ev_final: np.ndarray  # (V,) bool: the final evaluation of the saved agent (eval_kind == "final")


def read_metrics(path: Path) -> Metrics:
    """Parse metrics.csv; a column the file lacks (files from older versions) reads as empty, and so does a
    cell that is not a number or bytes that are not UTF-8 (a damaged line is left out, not fatal)."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        rows = list(reader)
    where = {name: i for i, name in enumerate(header)}

    def text(name: str, keep: np.ndarray | None = None) -> list[str]:
        """The column's strings, of the rows at indices `keep` (all rows by default)."""
        i = where.get(name)
        picked = rows if keep is None else [rows[j] for j in keep]
        if i is None:
            return [""] * len(picked)
        return [r[i] if i < len(r) else "" for r in picked]

    def number(name: str, keep: np.ndarray | None = None) -> np.ndarray:
        # "nan"/"inf" in the file count as empty too: nothing non-finite reaches the plot
        a = np.array([_float(s) for s in text(name, keep)], dtype=np.float64)
        a[~np.isfinite(a)] = np.nan
        return a

    # the full columns are parsed once; the evaluation columns only on the (few) evaluation rows
    step, ret, ev = number("step"), number("episode_return"), number("eval_return")
    ep = np.flatnonzero(np.isfinite(ret) & np.isfinite(step))
    count = number("episodes_in_row", ep)
    count[~(count >= 1)] = 1.0  # empty (one episode a row before the column existed), or damaged
    loss = number("loss", ep)
    has_loss = np.isfinite(loss)
    evi = np.flatnonzero(np.isfinite(ev) & np.isfinite(step))
    return Metrics(
        ep_step=step[ep], ep_return=ret[ep], ep_count=count, loss_step=step[ep][has_loss], loss=loss[has_loss],
        ev_step=step[evi], ev_mean=ev[evi], ev_std=number("eval_std", evi),
        ev_min=number("eval_min", evi), ev_max=number("eval_max", evi),
        ev_first=number("eval_first", evi), ev_second=number("eval_second", evi),
        ev_final=np.array([k == "final" for k in text("eval_kind", evi)], dtype=bool))


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # '' (the column is not this row's), or damage
        return float("nan")


def eval_band(mean: np.ndarray, std: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None,
              return_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """mean ± std, clipped to the evaluation's own lowest/highest return and to the possible range.

    A NaN std counts as 0; a NaN lo/hi (not recorded) does not clip. The result always holds
    low <= high, so the band never turns inside out.
    """
    mean = np.asarray(mean, dtype=np.float64)
    std = np.nan_to_num(np.asarray(std, dtype=np.float64), nan=0.0)
    low, high = mean - std, mean + std
    if lo is not None:
        low = np.fmax(low, np.asarray(lo, dtype=np.float64))  # fmax/fmin ignore NaN
    if hi is not None:
        high = np.fmin(high, np.asarray(hi, dtype=np.float64))
    if return_range is not None:
        low, high = np.clip(low, *return_range), np.clip(high, *return_range)
    return np.minimum(low, high), high


def compact(x: float, _pos: int | None = None, digits: int = 4) -> str:
    """A tick label: 0, 500, 2.5k, 10k, 250k, 1.5M, 2B (a matplotlib FuncFormatter function).

    At most `digits` significant digits: ticks are round numbers, and 3 digits label a step in text.
    """
    if x == 0 or not math.isfinite(x):
        return "0"
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div * (1 - 0.5 * 10.0 ** -digits):  # 999,960 reads 1M, not 1000k
            return f"{x / div:.{digits}g}{suffix}".replace("-", "\u2212")
    return f"{x:.{digits}g}".replace("-", "\u2212")


def solved_step(m: Metrics, threshold: float | None) -> float | None:
    """The step of the first periodic evaluation whose mean reached threshold (None: never)."""
    if threshold is None:
        return None
    hit = ~m.ev_final & (m.ev_mean >= threshold)
    return float(m.ev_step[hit][0]) if hit.any() else None


def moving_mean(y: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Mean of each k consecutive values: (len(y) - k + 1,), aligned with y[k - 1:]. With `weights` (the episodes
    in each row, whose mean y is), the mean of the episodes of each k consecutive rows: Σ w·y / Σ w."""
    if weights is None:
        c = np.concatenate([[0.0], np.cumsum(y, dtype=np.float64)])
        return (c[k:] - c[:-k]) / k
    c = np.concatenate([[0.0], np.cumsum(np.asarray(weights, np.float64) * y, dtype=np.float64)])
    n = np.concatenate([[0.0], np.cumsum(weights, dtype=np.float64)])
    return (c[k:] - c[:-k]) / (n[k:] - n[:-k])


def smoothing_window(n: int) -> int:
    """20 rows for a short run, ~1% of the rows for a long one, never more than a fifth (of n rows)."""
    return max(1, min(max(20, n // 100), n // 5))


def window_text(count: np.ndarray, k: int) -> str:
    """What a moving mean of k rows averages: "20" (episodes) where every row holds one episode, else the rows
    and about how many episodes they hold ("20 rows, ~3,560 episodes")."""
    if (count == 1).all():
        return f"{k:,}"
    return f"{k:,} rows, ~{round(k * float(count.mean())):,} episodes"


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most max_points points that draw like the full line: each bin's min and max in turn.

    With bins narrower than a pixel the strokes cover the same pixels as the full series, and
    drawing takes milliseconds instead of seconds for 10^5 points.
    """
    n = len(y)
    if n <= max_points:
        return x, y
    size = -(-n // (max_points // 2))  # ceil: points per bin
    starts = np.arange(0, n, size)
    lo, hi = np.minimum.reduceat(y, starts), np.maximum.reduceat(y, starts)
    return np.repeat(x[starts], 2), np.column_stack([lo, hi]).ravel()


def plot_learning_curve(run_dir: Path, title: str = "", threshold: float | None = None,
                        return_range: tuple[float, float] | None = None, game: bool = False) -> Path:
    """Write run_dir/learning_curve.png from run_dir/metrics.csv and return its path.

    threshold: the solved return (a dashed line; the first periodic evaluation reaching it is
    marked). return_range: the lowest and highest return the env allows, if it states them; the
    evaluation band stays inside it. game: a two-player game, plotted as scores per seat in [−1, 1].
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = learning_curve_figure(read_metrics(run_dir / "metrics.csv"), title or run_dir.name, threshold,
                                return_range, game)
    out = run_dir / "learning_curve.png"
    FigureCanvasAgg(fig).print_png(out)
    return out


def learning_curve_figure(m: Metrics, title: str = "", threshold: float | None = None,
                          return_range: tuple[float, float] | None = None, game: bool = False) -> Figure:
    """The learning-curve Figure (no file written): the returns panel, and the loss panel when losses exist."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    if game and return_range is None:
        return_range = GAME_RANGE
    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    if m.loss.size:
        ax, lax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    else:
        ax, lax = fig.subplots(), None
    fig.suptitle(title)

    if game:
        _game_returns(ax, m)
    else:
        _returns(ax, m, return_range)
    _threshold(ax, m, threshold)
    if m.ev_step.size == 0 and m.ep_step.size == 0:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no episodes or evaluations yet", transform=ax.transAxes, ha="center", va="center",
                color="0.4", bbox={"fc": "white", "ec": "none"})
    if lax is not None:
        _loss(lax, m)

    steps = np.concatenate([m.ep_step, m.ev_step])
    if steps.size and steps.max() > 0:
        ax.set_xlim(0, steps.max() * 1.02)
    ax.xaxis.set_major_formatter(FuncFormatter(compact))
    if not game:
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
    (lax if lax is not None else ax).set_xlabel("env steps")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # above the panels, never over the data; 2 columns when the labels are long
        ncols = min(3 if max(map(len, labels)) <= 40 else 2, len(handles))
        ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=ncols, fontsize=9,
                  frameon=False)
    return fig


def _returns(ax: Axes, m: Metrics, return_range: tuple[float, float] | None) -> None:
    """Single-agent: raw episode returns (faint), their moving mean, evaluation mean ± band."""
    if m.ep_step.size:
        alpha = 0.25 if m.ep_step.size <= MAX_POINTS else 0.15  # a long run's raw returns fill a band
        raw = "episode return" if (m.ep_count == 1).all() else "episode return, mean of each row's episodes"
        ax.plot(*decimate(m.ep_step, m.ep_return), color="tab:blue", alpha=alpha, lw=0.8, label=raw,
                marker="o" if m.ep_step.size == 1 else "", ms=3)  # one point draws no line
        k = smoothing_window(m.ep_return.size)
        if k > 1:
            ax.plot(*decimate(m.ep_step[k - 1:], moving_mean(m.ep_return, k, m.ep_count)), color="tab:blue", lw=1.5,
                    label=f"episode return, mean of {window_text(m.ep_count, k)}")
    periodic = ~m.ev_final
    if periodic.any():
        s, mean = m.ev_step[periodic], m.ev_mean[periodic]
        low, high = eval_band(mean, m.ev_std[periodic], m.ev_min[periodic], m.ev_max[periodic], return_range)
        ax.fill_between(s, low, high, color="tab:orange", alpha=0.25, lw=0)
        ax.plot(s, mean, color="tab:orange", marker="o", ms=3, lw=1.5, label="greedy evaluation, mean ± std")
    if m.ev_final.any():
        f = m.ev_final
        low, high = eval_band(m.ev_mean[f], m.ev_std[f], m.ev_min[f], m.ev_max[f], return_range)
        mean = m.ev_mean[f]
        ax.errorbar(m.ev_step[f], mean, yerr=np.vstack([mean - low, high - mean]), fmt="none", ecolor="tab:red",
                    capsize=3, lw=1.2)
        ax.plot(m.ev_step[f], mean, ls="none", marker="*", ms=14, color="tab:red", mec="white", mew=0.8,
                label=f"final evaluation (saved agent): {mean[-1]:.4g}")
    ax.set_ylabel("return")


def _game_returns(ax: Axes, m: Metrics) -> None:
    """Two-player game: evaluation score per seat and their mean; training returns only smoothed."""
    if m.ep_step.size:
        # ±1 per game: only a long mean says anything (5% of the rows, at least 20, at most a fifth)
        n = m.ep_return.size
        k = max(1, min(max(20, n // 20), n // 5))
        ax.plot(*decimate(m.ep_step[k - 1:], moving_mean(m.ep_return, k, m.ep_count)), color="0.6", lw=1,
                marker="o" if n == 1 else "", ms=3,
                label=f"training, first player's return (mean of {window_text(m.ep_count, k)})")
    seats = [("playing first", m.ev_first, "tab:blue", "^"), ("playing second", m.ev_second, "tab:purple", "v"),
             ("mean of both seats", m.ev_mean, "tab:orange", "o")]
    periodic = ~m.ev_final
    for name, score, color, marker in seats:
        ok = periodic & np.isfinite(score)
        if ok.any():
            main = name.startswith("mean")
            ax.plot(m.ev_step[ok], score[ok], color=color, marker=marker, ms=4 if main else 3.5,
                    lw=2 if main else 1.2, alpha=1 if main else 0.85, label=f"evaluation, {name}")
    final = m.ev_final
    if final.any():
        for name, score, color, _ in seats:
            ok = final & np.isfinite(score)
            if ok.any():
                main = name.startswith("mean")
                ax.plot(m.ev_step[ok], score[ok], ls="none", marker="*", ms=14 if main else 10, color=color,
                        mec="white", mew=0.8,
                        label=f"final evaluation (saved agent): {score[ok][-1]:+.2f}" if main else None)
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_ylim(-1.08, 1.08)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_ylabel("score (+1 win, 0 draw, \u22121 loss)")


def _threshold(ax: Axes, m: Metrics, threshold: float | None) -> None:
    """The solved threshold (dashed) and the step of the first periodic evaluation that reached it."""
    if threshold is None:
        return
    at = solved_step(m, threshold)
    ax.axhline(threshold, color="tab:green", ls="--", lw=1.2,
               label=f"solved threshold {compact(threshold)}" + ("" if at is not None else " (not reached)"))
    if at is not None:
        when = f"solved at {compact(at, digits=3)}"
        ax.axvline(at, color="tab:green", ls=":", lw=1.2, label=when)
        # at the foot of the line: a rising curve leaves the bottom right empty by the time it is solved;
        # left of the line when it is near the right edge (a run that stops once solved ends there)
        right = at > 0.75 * max(m.ep_step.max(initial=0), m.ev_step.max(initial=0))
        ax.text(at, 0.03, f"{when} " if right else f" {when}", transform=ax.get_xaxis_transform(),
                ha="right" if right else "left", va="bottom", fontsize=9, color="tab:green",
                bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8})


def _loss(ax: Axes, m: Metrics) -> None:
    """TD loss per episode row (faint) and its moving mean; log scale when it spans two decades or more."""
    from matplotlib.ticker import FuncFormatter

    ax.plot(*decimate(m.loss_step, m.loss), color="tab:red", alpha=0.3, lw=0.8, marker="o" if m.loss.size == 1 else "",
            ms=3)
    k = smoothing_window(m.loss.size)
    if k > 1:
        ax.plot(*decimate(m.loss_step[k - 1:], moving_mean(m.loss, k)), color="tab:red", lw=1.2)
    positive = m.loss[m.loss > 0]
    if positive.size and positive.size == m.loss.size and positive.max() / positive.min() >= 100:
        ax.set_yscale("log")
    else:
        ax.yaxis.set_major_formatter(FuncFormatter(compact))
    ax.set_ylabel("TD loss")
    ax.grid(alpha=0.3)
