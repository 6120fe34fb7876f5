"""The runs deepq compare compares: sweep directories (SWEEP/sweep.json, SWEEP/runs/<label>/seed-<S>/), run
directories, and folders holding them, read into groups. What is missing from a run or cannot be used (a run not
started, a row that is not a finite number) is said in one line per run, in `notes`; a file that is not what it
should be is one ConfigError line naming it."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepq.errors import ConfigError
from deepq.files import read_small_text
from deepq.research.sweep_plan import spec_problem

if TYPE_CHECKING:
    import numpy as np

IGNORED = ("seed", "run_dir", "name", "progress")  # fields that differ between the seeds of one setting
INPUTS = ("give a sweep directory (with sweep.json), a run directory (with config.json and metrics.csv) or a "
          "folder holding them")


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
        data = json.loads(read_small_text(file))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{file} cannot be read ({e}); {fix}") from None
    if problem := spec_problem(data):  # a seed or label that no run directory of it can have
        raise ConfigError(f"{file} is not a deepq sweep file (it needs \"seeds\" and \"settings\" with a \"label\" "
                          f"each; {problem}); {fix}")
    return [(s["label"], [sweep / "runs" / s["label"] / f"seed-{n}" for n in data["seeds"]])
            for s in data["settings"]]


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
        config = json.loads(read_small_text(config_file))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{config_file} cannot be read ({e}); repair it, or move {run_dir} out of the paths "
                          "given") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{config_file} is not a JSON object of Config fields; repair it, or move {run_dir} out "
                          "of the paths given")
    stop = config.get("stop_at_return")
    if stop is not None and (isinstance(stop, bool) or not isinstance(stop, int | float) or not math.isfinite(stop)):
        notes.append(f"{config_file}: its stop_at_return {stop!r:.40} is not a finite number; ignored")
        config["stop_at_return"] = None  # a threshold nothing can be compared with
    if not metrics.is_file():
        notes.append(f"{run_dir}: no metrics.csv (the run has not started); left out")
        return None
    periodic, final, bad = _evaluations(metrics, notes)
    if bad:  # NaN or inf: an evaluation no statistic can use (every interval of its group would be nan)
        notes.append(f"{run_dir}: {len(bad)} evaluation(s) whose return is not a finite number skipped ("
                     f"{', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
    if not periodic and final is None:
        why = "eval_interval is 0" if config.get("eval_interval") == 0 else "it stopped before its first one"
        why = "none has a finite return" if bad else why
        notes.append(f"{run_dir}: no evaluation in metrics.csv ({why}); left out")
        return None
    has_final = final is not None
    if final is None:
        final = periodic[-1]
        why = "its final one is not a finite number" if any(b.startswith("final") for b in bad) else \
            "stopped, killed or still training"
        notes.append(f"{run_dir}: no final evaluation ({why}); its last periodic "
                     f"evaluation (step {final[0]:,}: {final[1]:.1f}) is its final return")
    steps = np.array([s for s, _ in periodic], dtype=np.float64)
    returns = np.array([v for _, v in periodic], dtype=np.float64)
    return Run(run_dir, config, steps, returns, final[1], final[0], has_final)


def _evaluations(metrics: Path, notes: list[str]) -> tuple[list[tuple[int, float]], tuple[int, float] | None,
                                                          list[str]]:
    """((step, return) of each periodic evaluation, that of the final one or None, and 'KIND at step S: VALUE' of
    each evaluation whose return is NaN or inf, left out) from metrics.csv."""
    fix = (f"repair it or delete that run directory ({metrics.parent}), or move it out of the paths given")
    try:
        text = metrics.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{metrics} cannot be read ({e}); {fix}") from None
    if text and not text.endswith("\n"):  # a process killed in the middle of writing a row
        text = text[:text.rfind("\n") + 1]
        notes.append(f"{metrics}: its last line is cut short (the run was killed while writing it); ignored")
    periodic: list[tuple[int, float]] = []
    final, bad = None, []
    try:
        rows = csv.DictReader(text.splitlines())
        if text and not {"step", "eval_return"} <= set(rows.fieldnames or []):
            raise ValueError("its header has no step and eval_return columns")
        for line, row in enumerate(rows, start=2):
            if not row.get("eval_return"):
                continue  # an episode row
            try:
                raw_step, value = float(row["step"]), float(row["eval_return"])
            except (TypeError, ValueError):
                raise ValueError(f"line {line}: step {row['step']!r}, eval_return {row['eval_return']!r} are "
                                 "not numbers") from None
            if not (math.isfinite(raw_step) and raw_step >= 0):
                raise ValueError(f"line {line}: step {row['step']!r} is not an env step")
            step = int(raw_step)
            kind = "final" if row.get("eval_kind") == "final" else "periodic"
            if not math.isfinite(value):
                bad.append(f"{kind} at step {step:,}: {value}")
            elif kind == "final":
                final = (step, value)
            else:
                periodic.append((step, value))
    except (csv.Error, ValueError) as e:
        raise ConfigError(f"{metrics} is not a deepq metrics.csv ({e}); {fix}") from None
    return periodic, final, bad
