"""Learning curves and performance profiles for deepq compare: IQM across seeds with 95% bootstrap bands, drawn
with rliable's plot_utils on a bare matplotlib Figure (PNG and SVG).

Curves are drawn over the periodic evaluations on one step grid shared by all groups. A run's value at a grid
step is its last evaluation at or before it, so a run that stopped early (solved) carries its last value
forward to the end of its group's longest run; a group's curve starts where every one of its runs has been
evaluated once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from deepq.research import stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_GRID = 400  # grid steps at most; runs evaluated at more steps than that are read at evenly spaced ones
TAUS = 201  # thresholds of a performance profile
FIGSIZE = (9.0, 5.5)  # inches: 900 x 550 pixels at DPI
DPI = 100


def step_grid(steps: Sequence[np.ndarray]) -> np.ndarray:
    """Every env step at which some run was evaluated (so each run's evaluations are on it), or MAX_GRID evenly
    spaced steps from the first to the last when there are more."""
    every = np.unique(np.concatenate(steps))
    return every if len(every) <= MAX_GRID else np.linspace(every[0], every[-1], MAX_GRID)


def on_grid(steps: np.ndarray, values: np.ndarray, grid: np.ndarray, end: float) -> np.ndarray:
    """The value of the last evaluation at or before each grid step; NaN before the first one and after end."""
    at = np.searchsorted(steps, grid, side="right") - 1  # index of the last evaluation at or before (-1: none)
    out = np.where(at >= 0, values[np.maximum(at, 0)], np.nan)
    out[grid > end] = np.nan
    return out


def learning_curves(runs: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray]]], reps: int,
                    seed: int) -> dict[str, Any]:
    """Per group (label -> its runs' (steps, returns) of periodic evaluations), the IQM across its runs at each
    grid step where all of them have a value, with a 95% band from resampling whole runs (their curves)."""
    out: dict[str, Any] = {}
    if not runs:
        return out
    grid = step_grid([s for group in runs.values() for s, _ in group])
    for label, group in runs.items():
        end = max(float(s[-1]) for s, _ in group)
        table = np.stack([on_grid(s, v, grid, end) for s, v in group])  # (runs, T)
        keep = ~np.isnan(table).any(axis=0)
        value, low, high = stats.bootstrap(stats.iqm, [table[:, keep]], reps, stats.rng_for(seed, "curve", label))
        out[label] = {"runs": len(group), "steps": grid[keep].tolist(), "iqm": value.tolist(),
                      "low": low.tolist(), "high": high.tolist()}
    return out


def curve_notes(group: Sequence[tuple[str, np.ndarray, np.ndarray, float | None]]) -> list[str]:
    """Lines on a group's runs (name, the steps and returns of its periodic evaluations, its stop_at_return)
    whose evaluations end before the group's, or that have none. The runs that stopped at a solving evaluation,
    a preset's usual end, are one line together, naming how many and where."""
    end = max((steps[-1] for _, steps, _, _ in group if len(steps)), default=0)
    notes, solved = [], []
    for name, steps, returns, stop in group:
        if not len(steps):
            notes.append(f"{name}: no periodic evaluation; left out of the curves")
        elif steps[-1] < end and stop is not None and returns[-1] >= stop:
            solved.append((name, int(steps[-1]), float(returns[-1]), stop))
        elif steps[-1] < end:
            notes.append(f"{name}: its evaluations end at step {int(steps[-1]):,}, its group's at {int(end):,}; on "
                         "the curves its last value is carried forward")
    if len(solved) == 1:
        name, step, value, stop = solved[0]
        notes.append(f"{name}: stopped at a solving evaluation (step {step:,}: {value:.1f} >= {stop:g}); on the "
                     f"curves its last value is carried forward to step {int(end):,}")
    elif solved:
        folder = str(Path(solved[0][0]).parent)
        at = sorted(step for _, step, _, _ in solved)
        notes.append(f"{len(solved)} runs in {folder} stopped at a solving evaluation (>= {solved[0][3]:g}, at steps "
                     f"{at[0]:,} to {at[-1]:,}); on the curves their last values are carried forward to step "
                     f"{int(end):,}")
    return notes


def performance_profiles(finals: Mapping[str, Sequence[float]], span: Sequence[float], reps: int,
                         seed: int) -> dict[str, Any]:
    """Per group, the fraction of its runs whose final return is above each tau, with a 95% band; the taus
    run from the lowest to the highest of `span` (every return the runs were evaluated at, and the max score),
    padded, so the axis reaches from an untrained agent's return to the best."""
    lo, hi = min(span), max(span)
    pad = 0.02 * (hi - lo) if hi > lo else 1.0  # so that the profile's first step (1.0) and last (0) show
    taus = np.linspace(lo - pad, hi + pad, TAUS)
    out: dict[str, Any] = {"taus": taus.tolist(), "groups": {}}
    for label, group in finals.items():
        value, low, high = stats.bootstrap(lambda x: stats.run_score_profile(x, taus),
                                           [np.asarray(group, dtype=np.float64)], reps,
                                           stats.rng_for(seed, "profile", label))
        out["groups"][label] = {"runs": len(group), "fraction": value.tolist(), "low": low.tolist(),
                                "high": high.tolist()}
    return out


def plot_curves(curves: Mapping[str, Mapping[str, Any]], threshold: float | None, title: str,
                out: Path) -> list[Path]:
    """curves.png and curves.svg (from learning_curves): each group's IQM evaluation return over env steps, with
    its band."""
    from rliable import plot_utils

    fig, ax = _figure()
    colors = _colors(curves)
    for label, c in curves.items():  # one group at a time: their step ranges differ
        if not c["steps"]:
            continue
        name = _named(label, c["runs"])
        if len(c["steps"]) == 1:  # one evaluation step: a line of one point would not show; a point and its CI do
            iqm, low, high = c["iqm"][0], c["low"][0], c["high"][0]
            ax.errorbar(c["steps"], [iqm], yerr=[[iqm - low], [high - iqm]], fmt="o", ms=6, capsize=4,
                        color=colors[label], label=name)
            continue
        plot_utils.plot_sample_efficiency_curve(
            np.array(c["steps"]), {name: np.array(c["iqm"])}, {name: np.array([c["low"], c["high"]])},
            colors={name: colors[label]}, ax=ax, marker="", linewidth=2,
            xlabel="env steps", ylabel="evaluation return (IQM across runs)", labelsize="large",
            ticklabelsize="medium")
    if threshold is not None:
        ax.axhline(threshold, color="0.4", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    _finish(ax, f"{title}learning curves: IQM of the periodic evaluations across runs, 95% bootstrap band", "best")
    return _save(fig, out / "curves")


def plot_profiles(profiles: Mapping[str, Any], threshold: float | None, title: str, out: Path) -> list[Path]:
    """profiles.png and profiles.svg (from performance_profiles): the fraction of each group's runs whose final
    return exceeds τ, with the threshold marked."""
    from rliable import plot_utils

    fig, ax = _figure()
    groups = {_named(k, p["runs"]): p for k, p in profiles["groups"].items()}
    plot_utils.plot_performance_profiles(
        {k: np.array(p["fraction"]) for k, p in groups.items()}, np.array(profiles["taus"]),
        performance_profile_cis={k: np.array([p["low"], p["high"]]) for k, p in groups.items()},
        colors=_colors(groups), ax=ax, alpha=0.2, xlabel="final evaluation return τ",
        ylabel="fraction of runs with return > τ", labelsize="large", ticklabelsize="medium")
    if threshold is not None:
        ax.axvline(threshold, color="0.4", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    _finish(ax, f"{title}performance profiles of the final evaluation returns, 95% bootstrap band", "lower left")
    return _save(fig, out / "profiles")


def _figure() -> tuple[Any, Axes]:
    from matplotlib.figure import Figure  # a bare Figure: pyplot's global state and backend are never touched

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    return fig, fig.add_subplot()


def _colors(groups: Mapping[str, Any]) -> dict[str, Any]:
    import seaborn as sns  # rliable's own palette, so a group has the same colour in both plots

    return dict(zip(groups, sns.color_palette("colorblind", n_colors=len(groups)), strict=True))


def _named(label: str, runs: int) -> str:
    """A group's name in a legend: its label and how many runs it holds."""
    return f"{label} ({runs} run{'s' if runs != 1 else ''})"


def _finish(ax: Axes, title: str, legend_at: Literal["best", "lower left"]) -> None:
    """Title, step ticks (2.5k, 10k) and the legend."""
    from matplotlib.ticker import FuncFormatter

    from deepq.run.plot import compact

    ax.set_title(title, fontsize="medium")
    if ax.get_xlabel() == "env steps":
        ax.xaxis.set_major_formatter(FuncFormatter(compact))
    ax.legend(loc=legend_at, fontsize="medium", frameon=False)


def _save(fig: Any, stem: Path) -> list[Path]:
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path)
    return paths
