"""deepq compare: runs grouped by setting, compared with rliable's statistics (issue 20).

    deepq compare SWEEP [SWEEP ...]            # sweep directories (sweep.json, runs/<label>/seed-<S>/)
    deepq compare runs/a runs/b --out cmp/     # run directories, or folders holding them

Each group's final evaluation returns get IQM, mean, median and optimality gap with 95% bootstrap CIs; pairs
of groups get the probability of improvement; runs get the first env step at which a periodic evaluation
reached a threshold; --out also draws learning curves and performance profiles. What was missing from a run,
and what was done about it, is said in one line per run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from deepq.cli_args import integer, number
from deepq.errors import ConfigError
from deepq.research import checks, interrupt
from deepq.research.run_dirs import Group, find_groups
from deepq.signals import noted

DEFAULT_REPS = 2000
# The most replicates an interval may take. Measured on a 2-core Intel Xeon: 100,000 of the learning curves of 4
# groups (10 runs x 400 evaluations each) took 44 s and 1.3 GB at their peak, the tables alone 0.5 s; time grows
# with the replicates, memory with those of one curve (its 400 points x 8 bytes, held about 3 times: ~10 kB each).
MAX_REPS = 100_000


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare groups of runs (IQM, CIs, P(improvement), curves)", allow_abbrev=False,
        description="Group runs by setting and compare their final evaluation returns with rliable's statistics "
                    "(IQM, mean, median, optimality gap, 95% stratified bootstrap CIs), the probability of "
                    "improvement and the steps to a threshold. Example: deepq compare sweeps/lr --out cmp")
    p.add_argument("paths", nargs="+", metavar="SWEEP_OR_RUN_DIR",
                   help="sweep directories, run directories, or folders holding run directories")
    p.add_argument("--threshold", type=number, metavar="X",
                   help="return for steps-to-threshold (default: the runs' stop_at_return when they share one)")
    p.add_argument("--max-score", type=number, metavar="X",
                   help="best possible return, for the optimality gap (default: the threshold)")
    p.add_argument("--baseline", metavar="LABEL",
                   help="P(improvement) of every other group over this one (default: every pair, for 2-4 groups)")
    p.add_argument("--reps", type=integer, default=DEFAULT_REPS, metavar="N",
                   help=f"bootstrap replicates per interval, 100 to {MAX_REPS:,} (default {DEFAULT_REPS:,})")
    p.add_argument("--seed", type=integer, default=0, metavar="S", help="seed of the bootstrap (default 0)")
    p.add_argument("--out", metavar="DIR",
                   help="write summary.md, summary.json, curves.png/.svg and profiles.png/.svg into DIR")


def run(args: argparse.Namespace) -> int:
    """Check the flags and --out, read the runs, compute every number, print the tables; with --out, write them
    and draw the plots. A signal stops it in one line; the files of --out are written whole or not at all."""
    check_args(args)
    with interrupt.raising(lambda sig: f"deepq compare: stopped by {sig} before it wrote anything; run it again"):
        from deepq.research import stats  # numpy and scipy: imported when a comparison runs, not by `deepq --help`

        summary, envs = compute(args)
        text = stats.markdown(summary)
    print(text, end="")
    if args.out is None:
        print("\n(--out DIR also writes summary.md, summary.json and the curves and profiles as PNG and SVG)")
        return 0
    with noted() as signals:  # a signal waits for the files being written: none is left half written
        written = write(Path(args.out), text, summary, envs)
    print("\n" + "\n".join(f"wrote {p}" for p in written), flush=True)
    if signals:
        interrupt.stop(signals[0], f"deepq compare: stopped by {interrupt.name(signals[0])} as it wrote {args.out}, "
                       "which it finished")
    return 0


def check_args(args: argparse.Namespace) -> None:
    """The flags and --out, before anything is read or computed."""
    if args.reps < 100:
        raise ConfigError(f"--reps {args.reps}: a 95% interval needs at least 100 bootstrap replicates "
                          f"(default {DEFAULT_REPS:,})")
    checks.at_most("--reps", args.reps, MAX_REPS, "twice rliable's 50,000; 100,000 replicates of 4 groups' learning "
                   "curves took 44 s and 1.3 GB on a 2-core machine, and both grow with the replicates")
    for flag, value in (("--threshold", args.threshold), ("--max-score", args.max_score)):
        if value is not None and not math.isfinite(value):  # no return is at or above nan; every one is below inf
            raise ConfigError(f"{flag} {value}: give a finite number (a return, such as 475)")
    if not 0 <= args.seed <= checks.MAX_SEED:
        raise ConfigError(f"--seed {args.seed}: the bootstrap's seed is an integer from 0 to {checks.MAX_SEED:,}")
    if args.out is not None:
        checks.writable_dir("--out", Path(args.out))


def compute(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Every number of the comparison (summary.json's content), and the envs the runs train on."""
    try:
        import rliable  # noqa: F401  (its plot_utils draw the plots; it brings scipy, which the statistics use)

        from deepq.research import curves, stats
    except ImportError as e:
        raise ConfigError(f"deepq compare needs rliable ({e}); install it with pip install -e \".[research]\" "
                          "(make does)") from None

    notes: list[str] = []
    groups = find_groups(args.paths, notes)
    for g in groups:
        if len(g.runs) == 1:
            notes.append(f"{g.label}: 1 run, so its intervals are that run's value; run more seeds")
        elif len(g.runs) < 4:
            notes.append(f"{g.label}: {len(g.runs)} runs; the IQM of fewer than 4 trims none (it is their mean), "
                         "and a bootstrap of so few understates the uncertainty: run more seeds")
    envs = sorted({str(r.config.get("env")) for g in groups for r in g.runs})
    if len(envs) > 1:
        notes.append(f"the runs train on {len(envs)} envs ({', '.join(envs)}): their returns are on different "
                     "scales, so compare the groups of one env at a time")
    threshold = _threshold(groups, args.threshold, notes)
    max_score = args.max_score if args.max_score is not None else threshold
    if max_score is None:
        notes.append("no optimality gap: it needs the best possible return; give --max-score X")
    pairs = _pairs([g.label for g in groups], args.baseline, notes)
    finals = {g.label: [r.final for r in g.runs] for g in groups}
    reached = None if threshold is None else {
        g.label: [stats.steps_to(r.steps, r.returns, threshold) for r in g.runs] for g in groups}
    summary: dict[str, Any] = {"threshold": threshold, "max_score": max_score, "reps": args.reps, "seed": args.seed,
                               **stats.summarize(finals, reached, pairs, max_score, args.reps, args.seed)}
    for g in groups:
        summary["groups"][g.label]["run_dirs"] = [
            {"run_dir": str(r.path), "seed": r.config.get("seed"), "final_return": r.final, "final_step": r.final_step,
             "final_from": "final" if r.has_final else "last periodic",
             "steps_to_threshold": None if reached is None else reached[g.label][i]} for i, r in enumerate(g.runs)]
    if args.out is not None:
        on_curves = {g.label: [(r.steps, r.returns) for r in g.runs if len(r.steps)] for g in groups}
        for g in groups:
            notes += curves.curve_notes([(str(r.path), r.steps, r.returns, r.config.get("stop_at_return"))
                                         for r in g.runs])
        summary["curves"] = curves.learning_curves({k: v for k, v in on_curves.items() if v}, args.reps, args.seed)
        notes += [f"{label}: no step at which all its runs have been evaluated; no learning curve drawn"
                  for label, runs in on_curves.items() if runs and not summary["curves"][label]["steps"]]
        span = [v for g in groups for r in g.runs for v in (r.final, *r.returns)]
        span += [max_score] if max_score is not None else []
        summary["profiles"] = curves.performance_profiles(finals, span, args.reps, args.seed)
    summary["notes"] = notes
    return summary, envs


def write(out: Path, text: str, summary: dict[str, Any], envs: list[str]) -> list[Path]:
    """summary.md, summary.json and the plots into `out` (made if missing); the paths written."""
    from deepq.research import curves
    from deepq.run.log import atomic_write_text

    title = f"{envs[0]}: " if len(envs) == 1 else ""  # the plots' titles name the env when there is one
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "summary.md", text)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return [out / "summary.md", out / "summary.json",
                *(curves.plot_curves(summary["curves"], summary["threshold"], title, out)
                  if any(c["steps"] for c in summary["curves"].values()) else []),
                *curves.plot_profiles(summary["profiles"], summary["threshold"], title, out)]
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write there ({e.strerror}); choose another --out DIR") from None


def _threshold(groups: list[Group], given: float | None, notes: list[str]) -> float | None:
    """--threshold, else the stop_at_return every run shares, else None (said)."""
    if given is not None:
        return given
    values = {r.config.get("stop_at_return") for g in groups for r in g.runs}
    if len(values) == 1 and (shared := next(iter(values))) is not None:
        return float(shared)
    why = ("the runs set no stop_at_return" if values == {None} else
           f"the runs' stop_at_return differ ({', '.join(sorted(str(v) for v in values))})")
    notes.append(f"no steps to threshold: {why}; give --threshold X")
    return None


def _pairs(labels: list[str], baseline: str | None, notes: list[str]) -> list[tuple[str, str]]:
    """(x, y) pairs for P(X > Y): each group against --baseline, else each later group against each earlier one
    when there are 2-4 groups."""
    if baseline is not None:
        if len(labels) == 1:
            raise ConfigError(f"--baseline {baseline}: P(improvement) needs two groups and these runs make one; "
                              "add the runs of another setting")
        if baseline not in labels:
            raise ConfigError(f"--baseline {baseline!r} is not one of the groups here: {', '.join(map(repr, labels))}")
        return [(x, baseline) for x in labels if x != baseline]
    if len(labels) > 4:
        notes.append(f"no P(improvement): {len(labels)} groups make {len(labels) * (len(labels) - 1) // 2} pairs; "
                     "give --baseline LABEL to compare each group with one")
        return []
    return [(labels[j], labels[i]) for i in range(len(labels)) for j in range(i + 1, len(labels))]
