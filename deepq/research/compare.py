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
import csv
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepq.cli_args import integer, number
from deepq.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

IGNORED = ("seed", "run_dir", "name", "progress")  # fields that differ between the seeds of one setting
DEFAULT_REPS = 2000
INPUTS = ("give a sweep directory (with sweep.json), a run directory (with config.json and metrics.csv) or a "
          "folder holding them")


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
                   help=f"bootstrap replicates per interval (default {DEFAULT_REPS:,})")
    p.add_argument("--seed", type=integer, default=0, metavar="S", help="seed of the bootstrap (default 0)")
    p.add_argument("--out", metavar="DIR",
                   help="write summary.md, summary.json, curves.png/.svg and profiles.png/.svg into DIR")


@dataclass
class Run:
    """One run directory's evaluations: the periodic ones, and the final return compare uses."""

    path: Path
    config: dict[str, Any]
    steps: np.ndarray  # (V,) env step of each periodic evaluation
    returns: np.ndarray  # (V,) its mean return
    final: float  # the "final" row's return, else the last periodic one
    final_step: int
    has_final: bool  # False: metrics.csv has no "final" row, so `final` is the last periodic evaluation


@dataclass
class Group:
    label: str
    runs: list[Run]


def run(args: argparse.Namespace) -> int:
    """Read the runs, compute every number, print the tables; with --out, write them and draw the plots."""
    try:
        import rliable  # noqa: F401  (its plot_utils draw the plots; it brings scipy, which the statistics use)

        from deepq.research import curves, stats
    except ImportError as e:
        raise ConfigError(f"deepq compare needs rliable ({e}); install it with pip install -e \".[research]\" "
                          "(make does)") from None

    if args.reps < 100:
        raise ConfigError(f"--reps {args.reps}: a 95% interval needs at least 100 bootstrap replicates "
                          f"(default {DEFAULT_REPS:,})")
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
    out = None if args.out is None else Path(args.out)
    if out is not None:
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
    text = stats.markdown(summary)
    print(text, end="")
    if out is None:
        print("\n(--out DIR also writes summary.md, summary.json and the curves and profiles as PNG and SVG)")
        return 0
    title = f"{envs[0]}: " if len(envs) == 1 else ""  # the plots' titles name the env when there is one
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.md").write_text(text, encoding="utf-8")
        (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        written = [out / "summary.md", out / "summary.json",
                   *(curves.plot_curves(summary["curves"], threshold, title, out)
                     if any(c["steps"] for c in summary["curves"].values()) else []),
                   *curves.plot_profiles(summary["profiles"], threshold, title, out)]
    except OSError as e:
        raise ConfigError(f"--out {out}: cannot write there ({e.strerror}); choose another --out DIR") from None
    print("\n" + "\n".join(f"wrote {p}" for p in written))
    return 0


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


def find_groups(paths: list[str], notes: list[str]) -> list[Group]:
    """The groups to compare: a sweep's settings, then the other runs grouped by their config (minus IGNORED).
    Runs that cannot be compared are left out, with a line in notes."""
    sweeps: list[tuple[Path, str, list[Path]]] = []  # (sweep dir, label, its seeds' run dirs)
    plain: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise ConfigError(f"{path}: no such file or directory; {INPUTS}")
        if not path.is_dir():
            raise ConfigError(f"{path} is a file; give the run directory that holds it ({path.parent}), or "
                              f"{INPUTS.removeprefix('give ')}")
        found = list(_walk(path))
        if not found:
            raise ConfigError(f"{path} holds no deepq run or sweep (no config.json or sweep.json in it or below it); "
                              f"{INPUTS}")
        for kind, where in found:
            if kind == "sweep":
                sweeps += [(where, label, dirs) for label, dirs in _read_sweep(where)]
            else:
                plain.append(where)
    seen: set[Path] = set()
    groups = []
    for where, label, dirs in sweeps:
        runs = [r for d in dirs if (r := _once(d, seen, notes)) is not None]
        groups.append((where.name, label, runs))
    by_config: dict[str, list[Run]] = {}
    for d in plain:
        if (r := _once(d, seen, notes)) is not None:
            by_config.setdefault(json.dumps(_setting(r.config), sort_keys=True, default=str), []).append(r)
    groups += [(p.name, label, runs) for (label, p), runs in zip(_labels(list(by_config.values())),
                                                                   by_config.values(), strict=True)]
    out = []
    for source, label, runs in groups:
        if not runs:
            notes.append(f"{label}: no run with an evaluation; left out")
            continue
        twice = sum(g[1] == label for g in groups) > 1
        out.append(Group(f"{label} ({source})" if twice else label, sorted(runs, key=_by_seed)))
    if not out:
        raise ConfigError(f"no run with an evaluation in {' '.join(paths)}; train some first (deepq train, "
                          "deepq sweep), with eval_interval > 0")
    return out


def _by_seed(run: Run) -> tuple[int, str]:
    seed = run.config.get("seed")
    return (seed if isinstance(seed, int) else -1, str(run.path))


def _walk(root: Path) -> Iterator[tuple[str, Path]]:
    """('sweep' | 'run', dir) for each sweep and run directory at or below root; neither is searched inside."""
    for here, dirs, files in os.walk(root):  # never follows symlinks, so a link loop cannot trap it
        dirs.sort()
        if "sweep.json" in files:
            yield "sweep", Path(here)
            dirs.clear()
        elif "config.json" in files:
            yield "run", Path(here)
            dirs.clear()


def _read_sweep(sweep: Path) -> list[tuple[str, list[Path]]]:
    """(label, run directories of its seeds) for each setting of SWEEP/sweep.json."""
    file = sweep / "sweep.json"
    fix = f"repair it, or compare the runs without it: deepq compare {sweep / 'runs'}"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        seeds = [int(s) for s in data["seeds"]]
        labels = [str(s["label"]) for s in data["settings"]]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{file} cannot be read ({e}); {fix}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{file} is not a deepq sweep file (it needs \"seeds\" and \"settings\" with a \"label\" "
                          f"each; {type(e).__name__}: {e}); {fix}") from None
    return [(label, [sweep / "runs" / label / f"seed-{s}" for s in seeds]) for label in labels]


def _once(run_dir: Path, seen: set[Path], notes: list[str]) -> Run | None:
    """read_run, once per run directory however many of the paths given reach it."""
    key = run_dir.resolve()
    if key in seen:
        return None
    seen.add(key)
    return read_run(run_dir, notes)


def _setting(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in IGNORED and k != "run_id"}


LABEL_FIELDS = 3  # groups that differ in more fields than this are labelled by their folders


def _labels(groups: list[list[Run]]) -> list[tuple[str, Path]]:
    """(label, folder) per group of plain runs: the config fields that differ between the groups
    ('lr=0.0005,double=False'); where they differ in more than LABEL_FIELDS fields (two presets), or in none, the
    deepest folder holding all of a group's runs, as the path given names it (a link keeps its own name)."""
    settings = [_setting(runs[0].config) for runs in groups]
    fields = [k for k in settings[0] if any(s.get(k) != settings[0].get(k) for s in settings)] if settings else []
    fields += [k for s in settings for k in s if k not in settings[0] and k not in fields]
    folders = [Path(os.path.commonpath([os.path.abspath(r.path) for r in runs])) for runs in groups]
    by_folder = len(fields) > LABEL_FIELDS and len({f.name for f in folders}) == len(folders)
    out = []
    for s, folder in zip(settings, folders, strict=True):
        label = "" if by_folder else ",".join(f"{k}={s.get(k)}" for k in fields).replace("/", "_")
        out.append((label or folder.name, folder))
    return out


def read_run(run_dir: Path, notes: list[str]) -> Run | None:
    """A run's evaluations from its config.json and metrics.csv; None (and a note) when it has none."""
    import numpy as np

    config_file, metrics = run_dir / "config.json", run_dir / "metrics.csv"
    if not config_file.is_file():
        notes.append(f"{run_dir}: not there or no config.json (not run yet?); left out")
        return None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{config_file} cannot be read ({e}); repair it, or move {run_dir} out of the paths "
                          "given") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_file} is not a JSON object of Config fields; repair it, or move {run_dir} out "
                          "of the paths given")
    if not metrics.is_file():
        notes.append(f"{run_dir}: no metrics.csv (the run has not started); left out")
        return None
    periodic, final = _evaluations(metrics, notes)
    if not periodic and final is None:
        why = "eval_interval is 0" if config.get("eval_interval") == 0 else "it stopped before its first one"
        notes.append(f"{run_dir}: no evaluation in metrics.csv ({why}); left out")
        return None
    has_final = final is not None
    if final is None:
        final = periodic[-1]
        notes.append(f"{run_dir}: no final evaluation (stopped, killed or still training); its last periodic "
                     f"evaluation (step {final[0]:,}: {final[1]:.1f}) is its final return")
    steps = np.array([s for s, _ in periodic], dtype=np.float64)
    returns = np.array([v for _, v in periodic], dtype=np.float64)
    return Run(run_dir, config, steps, returns, final[1], final[0], has_final)


def _evaluations(metrics: Path, notes: list[str]) -> tuple[list[tuple[int, float]], tuple[int, float] | None]:
    """((step, return) of each periodic evaluation, that of the final one or None) from metrics.csv."""
    fix = (f"repair it or delete that run directory ({metrics.parent}), or move it out of the paths given")
    try:
        text = metrics.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{metrics} cannot be read ({e}); {fix}") from None
    if text and not text.endswith("\n"):  # a process killed in the middle of writing a row
        text = text[:text.rfind("\n") + 1]
        notes.append(f"{metrics}: its last line is cut short (the run was killed while writing it); ignored")
    periodic: list[tuple[int, float]] = []
    final = None
    try:
        rows = csv.DictReader(text.splitlines())
        if text and not {"step", "eval_return"} <= set(rows.fieldnames or []):
            raise ValueError("its header has no step and eval_return columns")
        for line, row in enumerate(rows, start=2):
            if not row.get("eval_return"):
                continue  # an episode row
            try:
                step, value = int(float(row["step"])), float(row["eval_return"])
            except (TypeError, ValueError):
                raise ValueError(f"line {line}: step {row['step']!r}, eval_return {row['eval_return']!r} are "
                                 "not numbers") from None
            if row.get("eval_kind") == "final":
                final = (step, value)
            else:
                periodic.append((step, value))
    except (csv.Error, ValueError) as e:
        raise ConfigError(f"{metrics} is not a deepq metrics.csv ({e}); {fix}") from None
    return periodic, final
