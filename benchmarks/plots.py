"""The docs site's result plots, drawn from measured data in benchmarks/results/ into docs/images/.

    python benchmarks/plots.py                 # every plot
    python benchmarks/plots.py --only speed    # one of: cartpole, speed, connect4

- cartpole_curves.png: the `cartpole` preset on seeds 0-9, from the run directories' metrics.csv that
  `benchmarks/steps_to_solve.py --keep-runs` kept (copied to benchmarks/results/cartpole-30k/ and
  cartpole-solve/). Left: periodic greedy evaluations of runs trained to the full 30,000 steps with
  `--set stop_at_return=None`, the interquartile mean over seeds with a 95% bootstrap band (seeds
  resampled), each seed faint. Middle: share of seeds whose evaluation has reached 475. Right: the saved
  agent's final evaluation (eval_kind "final"), stopped when solved (the preset) against trained on.
- speed.png: env steps/s of deepq, the textbook loop and SB3, and deepq's ratios to them, with the
  min-max over repeats, from benchmarks/results/speed.csv (the newest commit in it).
- connect4.png: Connect Four wins against random and against MCTS-1000 by training plies, greedy and
  searching, with 95% Wilson intervals, from benchmarks/results/connect4.csv.

Every data file starts with '#' lines that give its date, commit, machine and command.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
IMAGES = ROOT / "docs" / "images"
DPI = 110
COLORS = {"deepq": "#3949ab", "textbook": "#8d6e63", "sb3": "#9e9e9e",
          "greedy": "#3949ab", "200": "#f9a825", "800": "#e65100", "3200": "#6a1b9a", "target": "#2e7d32"}


def commented_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file whose leading '#' lines are its provenance."""
    with path.open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def provenance(path: Path) -> dict[str, str]:
    """The '# key: value' lines at the top of a results file."""
    out = {}
    with path.open() as f:
        for line in f:
            if not line.startswith("#"):
                break
            key, _, value = line[1:].partition(":")
            out[key.strip()] = value.strip()
    return out


def save(fig: Figure, name: str) -> Path:
    IMAGES.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    path = IMAGES / name
    fig.savefig(path, dpi=DPI)
    return path


# ---- CartPole learning curves -------------------------------------------------------------------------------

def evaluations(run: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(steps, periodic evaluation means) and the final evaluation's mean of one run directory."""
    steps, means, final = [], [], math.nan
    for r in commented_csv(run / "metrics.csv"):
        if not r["eval_return"]:
            continue
        if r.get("eval_kind") == "final":
            final = float(r["eval_return"])
        else:
            steps.append(int(r["step"]))
            means.append(float(r["eval_return"]))
    return np.array(steps), np.array(means), final


def iqm(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Interquartile mean: the mean of the middle half (a quarter of the values cut from each end, rounded down)."""
    x = np.sort(x, axis=axis)
    n = x.shape[axis]
    cut = n // 4
    return np.take(x, range(cut, n - cut), axis=axis).mean(axis=axis)


def runs(folder: Path) -> Iterator[Path]:
    yield from sorted((p for p in folder.iterdir() if (p / "metrics.csv").exists()),
                      key=lambda p: int(p.name.rsplit("-", 1)[1]))


def plot_cartpole(threshold: float = 475.0, resamples: int = 2000) -> Path:
    long_runs = [evaluations(p) for p in runs(RESULTS / "cartpole-30k")]
    stopped = [evaluations(p) for p in runs(RESULTS / "cartpole-solve")]
    steps = long_runs[0][0]
    assert all(np.array_equal(s, steps) for s, _, _ in long_runs), "runs evaluated at different steps"
    curves = np.stack([m for _, m, _ in long_runs])  # (seeds, evaluations)
    n = len(curves)
    rng = np.random.default_rng(0)
    boot = np.stack([iqm(curves[rng.integers(n, size=n)]) for _ in range(resamples)])  # (resamples, evals)
    lo, hi = np.percentile(boot, [2.5, 97.5], axis=0)

    fig = Figure(figsize=(13.5, 4.4))
    a, b, c = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.5, 1.0, 0.8]})
    for curve in curves:
        a.plot(steps, curve, color="#9fa8da", lw=0.8, alpha=0.7)
    a.fill_between(steps, lo, hi, color=COLORS["deepq"], alpha=0.2, lw=0, label="95% bootstrap band of the IQM")
    a.plot(steps, iqm(curves), color=COLORS["deepq"], lw=2.2, label=f"IQM over {n} seeds")
    a.plot([], [], color="#9fa8da", lw=0.8, label="each seed")
    a.axhline(threshold, color="k", ls="--", lw=0.9, label=f"threshold {threshold:g}")
    a.set(xlabel="env steps", ylabel="greedy evaluation, mean of 20 episodes", ylim=(0, 520),
          title="Trained to 30k steps (stop_at_return=None)")
    a.legend(loc="lower right", fontsize=8)

    # first step each seed's evaluation reached the threshold; the same in both sets (same runs up to the stop)
    first = [next((int(s) for s, m in zip(st, me, strict=True) if m >= threshold), None) for st, me, _ in stopped]
    first_long = [next((int(s) for s, m in zip(st, me, strict=True) if m >= threshold), None)
                  for st, me, _ in long_runs]
    assert first == first_long, (first, first_long)
    solved = sorted(s for s in first if s is not None)
    xs = np.arange(0, int(steps.max()) + 1000, 1000)
    share = [sum(s <= x for s in solved) / len(first) for x in xs]
    b.step(xs, share, where="post", color=COLORS["deepq"], lw=2)
    med = float(np.median(solved))
    b.axvline(med, color="k", ls=":", lw=0.9)
    b.text(med, 0.05, f" median {med:,.0f}", fontsize=8)
    b.set(xlabel="env steps", ylabel="share of seeds solved", ylim=(0, 1.05), xlim=(0, steps.max()),
          title=f"First evaluation ≥ {threshold:g}: {len(solved)}/{len(first)} seeds")

    finals_stop = [f for _, _, f in stopped]
    finals_long = [f for _, _, f in long_runs]
    for i, (f0, f1) in enumerate(zip(finals_stop, finals_long, strict=True)):
        jitter = (i - (n - 1) / 2) * 0.02
        c.plot([0 + jitter, 1 + jitter], [f0, f1], color="#bdbdbd", lw=0.8)
    c.scatter(np.zeros(n) + (np.arange(n) - (n - 1) / 2) * 0.02, finals_stop, color=COLORS["deepq"], zorder=3, s=18)
    c.scatter(np.ones(n) + (np.arange(n) - (n - 1) / 2) * 0.02, finals_long, color=COLORS["800"], zorder=3, s=18)
    c.axhline(threshold, color="k", ls="--", lw=0.9)
    c.set_xticks([0, 1], [f"stopped when solved\nmean {np.mean(finals_stop):.1f}",
                          f"trained to 30k\nmean {np.mean(finals_long):.1f}"], fontsize=8)
    c.set(xlim=(-0.4, 1.4), ylim=(0, 520), ylabel="final evaluation of agent.pt, 20 episodes",
          title="The saved agent")
    for ax in (a, b):
        ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:g}k")
    for ax in (a, b, c):
        ax.grid(alpha=0.25)
    prov = provenance(RESULTS / "cartpole-30k" / "steps_to_solve.txt")
    fig.suptitle(f"CartPole-v1, cartpole preset, seeds 0–9, budget 30,000 env steps: measured {prov['date']}, "
                 f"commit {prov['commit']}, 2-core CPU", fontsize=10)
    fig.tight_layout()
    return save(fig, "cartpole_curves.png")


# ---- speed ----------------------------------------------------------------------------------------------------

def plot_speed() -> Path:
    rows = commented_csv(RESULTS / "speed.csv")
    commit = rows[-1]["commit"]
    date = rows[-1]["date"]
    data = {(r["workload"], r["measure"]): (float(r["median"]), float(r["min"]), float(r["max"]))
            for r in rows if r["commit"] == commit}
    workloads = {"a": "(a) 1 env,\ntrain every 10", "b": "(b) 1 env,\ntrain every step",
                 "c": "(c) 8 envs,\ntrain every 10"}
    fig = Figure(figsize=(12, 4.4))
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1.0]})
    x = np.arange(len(workloads))
    width = 0.26
    for k, (loop, label) in enumerate([("deepq", "deepq"), ("textbook", "textbook PyTorch DQN"),
                                       ("sb3", "Stable-Baselines3 DQN")]):
        med, lo, hi = np.array([data[(w, loop)] for w in workloads]).T
        pos = x + (k - 1) * width
        left.bar(pos, med, width, color=COLORS[loop], label=label)
        left.errorbar(pos, med, yerr=[med - lo, hi - med], fmt="none", ecolor="k", capsize=3, lw=1)
        for p, m, h in zip(pos, med, hi, strict=True):
            left.text(p, h + 250, f"{m:,.0f}", ha="center", fontsize=7.5)
    left.set_xticks(x, list(workloads.values()), fontsize=9)
    left.set(ylabel="env steps per second", title="Env steps per second (median of 3; whiskers: min–max)")
    left.legend(fontsize=8, loc="upper left")
    left.set_ylim(0, max(v[2] for v in data.values()) * 1.15)

    for k, (peer, label) in enumerate([("textbook", "deepq / textbook"), ("sb3", "deepq / SB3")]):
        med, lo, hi = np.array([data[(w, f"deepq/{peer}")] for w in workloads]).T
        pos = x + (k - 0.5) * 0.34
        right.bar(pos, med, 0.34, color=COLORS[peer], label=label)
        right.errorbar(pos, med, yerr=[med - lo, hi - med], fmt="none", ecolor="k", capsize=3, lw=1)
        for p, m, h in zip(pos, med, hi, strict=True):
            right.text(p, h + 0.08, f"{m:.2f}×", ha="center", fontsize=8)
    right.axhline(3, color="k", ls="--", lw=0.9, label="target 3×")
    right.axhline(1, color="k", lw=0.6)
    right.set_xticks(x, list(workloads.values()), fontsize=9)
    right.set(ylabel="deepq's rate / the peer's, median of 3 repeats", ylim=(0, 6.2),
              title="deepq's speed-up, peers run seconds apart")
    right.legend(fontsize=8, loc="upper right")
    for ax in (left, right):
        ax.grid(axis="y", alpha=0.25)
    fig.suptitle(f"CartPole-v1, MLP 120-84, one thread: python benchmarks/speed.py, {date}, commit {commit}, "
                 "2-core CPU (not re-measured since)", fontsize=10)
    fig.tight_layout()
    return save(fig, "speed.png")


# ---- Connect Four ---------------------------------------------------------------------------------------------

def wilson(wins: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a share of wins."""
    p = wins / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def win_share(r: dict[str, str]) -> dict[str, Any]:
    wins = int(r["first_w"]) + int(r["second_w"])
    n = 2 * int(r["games_per_seat"])
    lo, hi = wilson(wins, n)
    return {"plies": int(r["plies"]), "minutes": float(r["minutes"]), "share": wins / n, "lo": lo, "hi": hi,
            "wins": wins, "games": n}


def plot_connect4() -> Path:
    rows = commented_csv(RESULTS / "connect4.csv")
    series = [r for r in rows if r["agent"] == "connect4-mcts-s0"]
    target = [r for r in rows if r["agent"] == "connect4-s0" and r["search"] == "0"]
    fig = Figure(figsize=(12, 5.2))
    axes = fig.subplots(1, 2)
    lines = [("random", "0", "greedy", "o"), ("random", "800", "searching 800 simulations", "s"),
             ("mcts1000", "0", "greedy", "o"), ("mcts1000", "200", "searching 200 simulations", "^"),
             ("mcts1000", "800", "searching 800 simulations", "s"),
             ("mcts1000", "3200", "searching 3,200 simulations", "D")]
    for ax, opponent in zip(axes, ("random", "mcts1000"), strict=True):
        for opp, search, label, marker in lines:
            if opp != opponent:
                continue
            pts = [win_share(r) for r in series if r["opponent"] == opp and r["search"] == search]
            if not pts:
                continue
            shift = {"0": 1.0, "200": 0.97, "800": 1.03, "3200": 1.06}[search]  # side by side, not on top
            xs = np.array([p["plies"] * shift for p in pts])
            ys = np.array([100 * p["share"] for p in pts])
            err = np.array([[100 * (p["share"] - p["lo"]) for p in pts], [100 * (p["hi"] - p["share"]) for p in pts]])
            color = COLORS["greedy" if search == "0" else search]
            ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, ms=6, capsize=3, lw=1.6,
                        label=label)
            for x, p, y in zip(xs, pts, ys, strict=True):
                below = search == "0" if opponent == "random" else search == "200"
                left_side = opponent == "random" and search == "0"  # clear of the target network's marker
                ax.annotate(f"{p['wins']}/{p['games']}", (x, y), textcoords="offset points",
                            xytext=(-8, 0) if left_side else (6, -11 if below else 4), fontsize=7, color=color,
                            ha="right" if left_side else "left", va="center" if left_side else "baseline")
        for r in target:
            if r["opponent"] == opponent:
                p = win_share(r)
                ax.errorbar([p["plies"]], [100 * p["share"]], yerr=[[100 * (p["share"] - p["lo"])],
                            [100 * (p["hi"] - p["share"])]], color=COLORS["target"], marker="x", ms=8, capsize=3,
                            ls="none", label="connect4 preset (target network, 600k plies, 33 min), greedy")
                at, off, ha = ((100 * p["lo"], (0, -11), "center") if opponent == "random"
                               else (100 * p["share"], (6, -11), "left"))
                ax.annotate(f"{p['wins']}/{p['games']}", (p["plies"], at), textcoords="offset points",
                            xytext=off, fontsize=7, color=COLORS["target"], ha=ha)
        ax.set_xscale("log")
        ticks = sorted({int(r["plies"]) for r in series})
        minutes = {int(r["plies"]): float(r["minutes"]) for r in series}
        ax.set_xticks(ticks, [(f"{t / 1e6:.3g}M" if t >= 1e6 else f"{t / 1e3:g}k") + f"\n{minutes[t]:g} min"
                              for t in ticks])
        ax.minorticks_off()
        ax.set_xlim(115_000, 3_600_000)
        ax.set_xlabel("training plies, and training minutes on one core")
        ax.grid(alpha=0.25)
    axes[0].axhline(99, color="k", ls="--", lw=0.9)
    axes[0].text(3_500_000, 99.1, "goal 99%", ha="right", fontsize=8)
    axes[0].set(ylim=(95, 100.6), ylabel="wins, % of games (both seats)",
                title="Against uniform random (200 games a seat; 80 when searching)")
    axes[1].axhline(90, color="k", ls="--", lw=0.9)
    axes[1].text(3_500_000, 91, "goal 90%", ha="right", fontsize=8)
    axes[1].set(ylim=(0, 100), ylabel="wins, % of games (both seats)",
                title="Against OpenSpiel MCTS, 1,000 simulations a move")
    handles, labels = axes[1].get_legend_handles_labels()  # the right panel has every series
    fig.legend(handles, [f"connect4-mcts seed 0, {la}" if "preset" not in la else la for la in labels],
               loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Connect Four: one connect4-mcts run (seed 0) resumed twice; 95% Wilson intervals; "
                 "measured 2026-11-25 (commits b6da275–cf2c492), 2-core CPU", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return save(fig, "connect4.png")


PLOTS = {"cartpole": plot_cartpole, "speed": plot_speed, "connect4": plot_connect4}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(PLOTS), action="append", help="draw only this plot (repeatable)")
    args = ap.parse_args()
    for name in args.only or PLOTS:
        print(PLOTS[name]().relative_to(ROOT))


if __name__ == "__main__":
    main()
