"""The MinAtar table (issue #34): PQN (presets minatar-<game>-pqn) on the five MinAtar games, against the MinAtar
paper's DQN (Young & Tian 2019) at 5M frames.

    python benchmarks/minatar_table.py [--results benchmarks/results/minatar/pqn-5M]
                                       [--events-root sweeps/minatar] [--out docs/images]

Per game and seed (run dirs <results>/<game>/seed-<N>/, each with metrics.csv):
- final greedy evaluation: the eval_return of metrics.csv's 'final' row (the saved agent, 30 episodes), else of
  its last 'periodic' row (an unfinished run, marked * in the table);
- training return over the last ~100 episodes (the issue's metric, ε-greedy at 0.05): training rows are walked
  from the end, each row's episode_return (the mean of its episodes_in_row episodes) weighted by its
  episodes_in_row, until at least 100 episodes are covered; the last row taken may push past 100 (Freeway's rows
  hold 128 episodes each, as all its envs end together). The same metric computed at every training row gives
  the learning curves and the step at which the run first reaches the paper's DQN score;
- from the run's TensorBoard event files (copied beside its metrics.csv, else in
  <events-root>/<game>-pqn/runs/default/seed-<N>/, the sweep's run dir): the
  wall-clock time of training and the time to the paper's DQN score. Only time inside each event file (from
  its first event to its last) counts, summed over the files in order, so a run stopped and resumed is not
  charged for the pause; the seconds before a file's first event (process start, the first rollout) are not
  counted. Env steps map to seconds by linear interpolation over every scalar event's (step, wall time).
IQMs over seeds carry 95% percentile bootstrap CIs, 2,000 replicates, seeded as `deepq compare` does
(deepq.research.stats; the final evaluations' match `deepq compare sweeps/minatar/<game>-pqn`). Writes
<out>/minatar_pqn_curves.png (learning curves) and <out>/minatar_pqn_profile.png (performance profile of the
final greedy returns over paper DQN's, every game).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from deepq.research import curves, stats

ROOT = Path(__file__).resolve().parent.parent
GAMES = {"breakout": "Breakout", "spaceinvaders": "SpaceInvaders", "freeway": "Freeway", "asterix": "Asterix",
         "seaquest": "Seaquest"}
# The MinAtar paper's DQN (Young & Tian 2019) at 5M frames, as issue #34 read them off the learning-curve figure
# of the MinAtar README (github.com/kenjyoung/MinAtar): approximate, read by eye.
PAPER_DQN = {"breakout": 10.0, "spaceinvaders": 43.0, "freeway": 50.0, "asterix": 17.0, "seaquest": 20.0}
# Every agent of that figure (img/learning_curves.gif of kenjyoung/MinAtar at 4241f24: the moving average of training
# returns over 100 episodes, 30 seeds), read by eye at the right end of each curve, 5M frames, on 2026-12-07: to about
# ±0.5 on the axes up to 20-50, ±3 on SpaceInvaders' axis to 200. (Seaquest's curves predate MinAtar 1.0.11's
# oxygen-bar fix.)
PAPER_AGENTS = {
    "breakout": {"DQN": 10.0, "DQN without replay": 4.2, "AC(0.8)": 17.5, "AC(0)": 15.3},
    "spaceinvaders": {"DQN": 43.0, "DQN without replay": 14.0, "AC(0.8)": 186.0, "AC(0)": 146.0},
    "freeway": {"DQN": 50.2, "DQN without replay": 8.5, "AC(0.8)": 47.5, "AC(0)": 47.0},
    "asterix": {"DQN": 17.3, "DQN without replay": 5.3, "AC(0.8)": 19.5, "AC(0)": 20.5},
    "seaquest": {"DQN": 20.5, "DQN without replay": 0.4, "AC(0.8)": 15.5, "AC(0)": 7.3},
}
WINDOW = 100  # episodes of the training-return metric
REPS, SEED = 2000, 0  # bootstrap replicates and seed: deepq compare's defaults


@dataclass
class Run:
    seed: int
    steps: np.ndarray  # env steps of the training rows
    last100: np.ndarray  # the last-~100-episode training return at each training row
    covered: int  # episodes in the final window
    final: float  # final greedy evaluation return
    done: bool  # has a 'final' evaluation (else the run is unfinished and `final` is its last periodic one)
    seconds: float | None  # wall-clock seconds of training (None: no event files)
    clock_from: int | None  # env step of the first event: time before it is not counted
    to_paper: tuple[int, float | None] | None  # (step, seconds) where last100 first reaches the paper DQN score


def running_mean(returns: np.ndarray, counts: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """At each row, the mean return of the fewest latest rows holding >= window episodes (all rows before, while
    fewer have ended), each row's mean weighted by its episodes; and how many episodes each window holds."""
    n = np.concatenate([[0], np.cumsum(counts)])
    total = np.concatenate([[0.0], np.cumsum(returns * counts)])
    start = np.maximum(np.searchsorted(n, n[1:] - window, side="right") - 1, 0)  # first row of each window
    episodes = n[1:] - n[start]
    return (total[1:] - total[start]) / episodes, episodes


def read_metrics(path: Path) -> tuple[np.ndarray, np.ndarray, int, float, bool]:
    """Training rows' steps, their last-100 metric, the final window's episodes, the final greedy return, and
    whether it is the 'final' evaluation."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    train = [r for r in rows if not r["eval_kind"] and r["episode_return"]]
    evals = [r for r in rows if r["eval_kind"] in ("periodic", "final")]
    final = next((r for r in evals if r["eval_kind"] == "final"), evals[-1])  # else the last periodic
    returns = np.array([float(r["episode_return"]) for r in train])
    counts = np.array([int(r["episodes_in_row"]) for r in train])
    last100, episodes = running_mean(returns, counts, WINDOW)
    return (np.array([int(r["step"]) for r in train]), last100, int(episodes[-1]), float(final["eval_return"]),
            final["eval_kind"] == "final")


def event_clock(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """Env steps and the training seconds spent by then, over the run's event files (time inside files only)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    steps: list[np.ndarray] = []
    seconds: list[np.ndarray] = []
    spent = 0.0
    for path in sorted(run_dir.glob("events.out.tfevents.*"), key=lambda p: int(p.name.split(".")[3])):
        acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
        acc.Reload()
        events = [e for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag)]
        if not events:
            continue
        wall = np.array([e.wall_time for e in events])
        order = np.argsort(wall, kind="stable")
        s, w = np.array([e.step for e in events])[order], wall[order]
        if steps:  # a resumed file: an earlier one's steps from here on were redone, so this file's times hold
            keep = steps[-1] < s[0]
            steps[-1], seconds[-1] = steps[-1][keep], seconds[-1][keep]
        steps.append(s)
        seconds.append(spent + w - w[0])
        spent += w[-1] - w[0]
    if not steps:
        return None
    s, t = np.concatenate(steps), np.concatenate(seconds)
    s, first = np.unique(s, return_index=True)  # a step's first event: when it was reached
    return s, t[first]


def load_run(run_dir: Path, game: str, events_root: Path | None) -> Run:
    steps, last100, covered, final, done = read_metrics(run_dir / "metrics.csv")
    hit = np.flatnonzero(last100 >= PAPER_DQN[game])
    # the run's own TensorBoard files where they were copied beside its metrics, else the sweep's run dir
    events = run_dir if any(run_dir.glob("events.out.tfevents.*")) else (
        events_root / f"{game}-pqn" / "runs" / "default" / run_dir.name if events_root else None)
    clock = event_clock(events) if events is not None and events.is_dir() else None
    at = int(steps[hit[0]]) if len(hit) else None
    to_paper = None if at is None else (at, float(np.interp(at, *clock)) if clock else None)
    return Run(int(run_dir.name.split("-")[1]), steps, last100, covered, final, done,
               float(clock[1][-1]) if clock else None, int(clock[0][0]) if clock else None, to_paper)


def load(results: Path, events_root: Path | None) -> dict[str, list[Run]]:
    out = {}
    for game in GAMES:
        dirs = sorted((results / game).glob("seed-*"), key=lambda p: int(p.name.split("-")[1]))
        runs = [load_run(d, game, events_root) for d in dirs if (d / "metrics.csv").is_file()]
        if runs:
            out[game] = runs
    return out


def ci(values: list[float], game: str | None) -> str:
    """IQM [95% CI] of the runs' values: of final returns (game None) drawn as `deepq compare
    sweeps/minatar/<game>-pqn` draws its group "default", so the two agree to the digit; else keyed by game."""
    x = np.array(values)
    v = (stats.final_scores(x, None, REPS, stats.rng_for(SEED, "final", "default"))["iqm"] if game is None else
         stats.scalar(stats.iqm, [x], REPS, stats.rng_for(SEED, "train", game)))
    return f"{v.value:.1f} [{v.low:.1f}, {v.high:.1f}]"


def minutes(run: Run) -> str:
    if run.to_paper is None:
        return "not reached"
    step, secs = run.to_paper
    return f"{secs / 60:.1f} ({step / 1e6:.2f}M)" if secs is not None else f"- ({step / 1e6:.2f}M)"


def per_seed(values: list[float], runs: list[Run]) -> str:
    return ", ".join(f"{v:.1f}" + "*" * (not r.done) for v, r in zip(values, runs, strict=True))


def best_agent(game: str) -> str:
    name, value = max(PAPER_AGENTS[game].items(), key=lambda kv: kv[1])
    return f"{name} {value:g}"


def table(games: dict[str, list[Run]]) -> str:
    lines = ["| game | seeds | final greedy eval: IQM [95% CI] | per seed | training return, last ~100 episodes: "
             "IQM [95% CI] | per seed | paper DQN at 5M | the paper's best agent at 5M | minutes (env steps) to the "
             "paper DQN score, per seed | minutes of training per run |", "|---|---|---|---|---|---|---|---|---|---|"]
    for game, runs in games.items():
        finals, trains = [r.final for r in runs], [float(r.last100[-1]) for r in runs]
        secs = [r.seconds / 60 for r in runs if r.seconds is not None and r.done]  # finished runs only
        seeds = f" of 5 (seeds {', '.join(str(r.seed) for r in runs)})" if len(runs) < 5 else ""
        spent = f"{min(secs):.1f}-{max(secs):.1f}" if secs else "-"
        lines.append(" | ".join([
            f"| {GAMES[game]}", f"{len(runs)}{seeds}", ci(finals, None), per_seed(finals, runs), ci(trains, game),
            per_seed(trains, runs), f"{PAPER_DQN[game]:g}", best_agent(game), "; ".join(minutes(r) for r in runs),
            spent + (f" ({len(secs)} finished runs)" if secs and len(secs) < len(runs) else "")]) + " |")
    return "\n".join(lines)


def notes(games: dict[str, list[Run]], results: Path, events_root: Path | None) -> list[str]:
    out = [f"last ~100 episodes: the final window held {min(r.covered for g in games.values() for r in g)}-"
           f"{max(r.covered for g in games.values() for r in g)} episodes (whole rows; Freeway's rows hold 128)",
           "minutes: time inside the TensorBoard event files only (pauses between a resumed run's files and the "
           "seconds before each file's first event are not counted), one core per run; other work may have run "
           "beside the runs, so the times vary"]
    if starts := sorted({r.clock_from for g in games.values() for r in g if r.clock_from is not None}):
        out.append(f"the clock starts at each run's first event, at env step {starts[0]:,} to {starts[-1]:,} "
                   "(Freeway's first event is its first evaluation: its training rows come every ~320k steps)")
    out += [f"{GAMES[g]}: {len(runs)} runs; the IQM of fewer than 4 trims none (it is their mean)"
            for g, runs in games.items() if len(runs) < 4]
    out += [f"*: {GAMES[g]} seed {r.seed} is unfinished (no 'final' evaluation; training rows end at step "
            f"{int(r.steps[-1]):,}): its last periodic evaluation, and on the curves its last value carried forward"
            for g, runs in games.items() for r in runs if not r.done]
    for game in GAMES.keys() - games.keys():
        running = sorted(events_root.glob(f"{game}-pqn/runs/default/seed-*")) if events_root else []
        out.append(f"{GAMES[game]}: no runs in {results}" + (f"; {len(running)} run dirs under {events_root}, "
                                                             f"{sum((d / 'agent.pt').is_file() for d in running)} "
                                                             "finished" if running else ""))
    return out


def plot_curves(games: dict[str, list[Run]], path: Path) -> None:
    """IQM over seeds of the last-~100-episode training return against env steps, a 95% band, the paper's DQN."""
    fig = Figure(figsize=(13.5, 7.5), dpi=100, layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    for ax, (game, runs) in zip(axes, games.items(), strict=False):
        c = curves.learning_curves({game: [(r.steps, r.last100) for r in runs]}, REPS, SEED)[game]
        x = np.array(c["steps"]) / 1e6
        ax.fill_between(x, c["low"], c["high"], color="#3949ab", alpha=0.2, linewidth=0)
        ax.plot(x, c["iqm"], color="#3949ab", linewidth=2, label="PQN: IQM over seeds, 95% bootstrap band")
        ax.axhline(PAPER_DQN[game], color="#e65100", linestyle="--", linewidth=1.5, label="paper DQN at 5M frames")
        unfinished = sum(not r.done for r in runs)
        ax.set_title(f"{GAMES[game]} ({len(runs)} seed{'s' if len(runs) != 1 else ''}"
                     + (f", {unfinished} unfinished)" if unfinished else ")"), fontsize="large")
        ax.set_xlabel("env steps (millions)")
        ax.set_ylabel("training return, last ~100 episodes")
        ax.set_xlim(0, round(max(float(r.steps[-1]) for r in runs) / 1e6))  # 5 (the 5M runs) or 10
        ax.grid(alpha=0.3)
    for ax in axes[len(games):]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    legend_ax = axes[5] if len(games) < 6 else axes[0]
    legend_ax.legend(handles, labels, loc="center", fontsize="large", frameon=False)
    fig.suptitle("MinAtar, PQN (presets minatar-<game>-pqn): training return (ε 0.05) against the MinAtar paper's "
                 "DQN", fontsize="x-large")
    fig.savefig(path)


def plot_profile(games: dict[str, list[Run]], path: Path) -> None:
    """The fraction of runs whose final greedy return / paper DQN exceeds τ, each game weighing equally (so a
    game with fewer seeds counts as much), with a 95% band from resampling seeds within each game (rliable's
    stratified bootstrap; deepq.research.curves.performance_profiles resamples one pool, hence not used)."""
    scores = [np.array([r.final for r in runs]) / PAPER_DQN[game] for game, runs in games.items()]
    hi = max(float(s.max()) for s in scores)
    taus = np.linspace(0.0, 1.03 * hi, curves.TAUS)
    fraction, low, high = stats.bootstrap(
        lambda *xs: np.mean([stats.run_score_profile(x, taus) for x in xs], axis=0), scores, REPS,
        stats.rng_for(SEED, "profile", "minatar"))
    fig = Figure(figsize=curves.FIGSIZE, dpi=curves.DPI, layout="constrained")
    ax = fig.add_subplot()
    runs = sum(len(s) for s in scores)
    ax.fill_between(taus, low, high, color="#3949ab", alpha=0.2, linewidth=0)
    ax.plot(taus, fraction, color="#3949ab", linewidth=2, label=f"PQN, 5M frames ({runs} runs, {len(scores)} games)")
    ax.axvline(1.0, color="#e65100", linestyle="--", linewidth=1.5, label="paper DQN at 5M frames (τ = 1)")
    ax.set_xlabel("normalized score τ (final greedy return / paper DQN return)", fontsize="large")
    ax.set_ylabel("fraction of runs with score > τ (games weigh equally)", fontsize="large")
    ax.set_xlim(0, taus[-1])
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize="medium", frameon=False)
    ax.set_title(f"MinAtar performance profile ({', '.join(GAMES[g] for g in games)}), 95% bootstrap band",
                 fontsize="medium")
    fig.savefig(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "benchmarks/results/minatar/pqn-5M")
    p.add_argument("--events-root", type=Path, default=Path("sweeps/minatar"),
                   help="the sweeps' dir, for runs whose event files were not copied beside their metrics.csv")
    p.add_argument("--out", type=Path, default=ROOT / "docs/images")
    args = p.parse_args()
    events_root = args.events_root if args.events_root.is_dir() else None
    games = load(args.results, events_root)
    if not games:
        sys.exit(f"no runs under {args.results}/<game>/seed-<N>/")
    print(table(games) + "\n")
    print("\n".join(f"- {n}" for n in notes(games, args.results, events_root)) + "\n")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, plot in (("minatar_pqn_curves.png", plot_curves), ("minatar_pqn_profile.png", plot_profile)):
        plot(games, args.out / name)
        print(f"wrote {args.out / name}")
    print("made by: python " + shlex.join(["benchmarks/minatar_table.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
