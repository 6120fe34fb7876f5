"""The statistics of deepq compare, as rliable defines them (Agarwal et al. 2021, "Deep Reinforcement Learning
at the Edge of the Statistical Precipice"), with percentile bootstrap confidence intervals, and the Markdown
tables that show them.

Every statistic takes arrays shaped (replicates, runs, ...) and reduces the runs axis (axis 1), so one call
computes it for all bootstrap replicates at once; the point estimate is the same call on the data itself as a
single replicate. tests/test_compare.py checks each against rliable.metrics.

The bootstrap is written here rather than taken from rliable.library.get_interval_estimates: that module does
not import beside pandas 3 (arch 7.2's `deprecate_kwarg` call fails), arch 8 rejects the `random_state`
keyword rliable passes, and rliable draws its resamples from NumPy's global generator whatever random_state it
is given, so --seed could not make a result repeatable. It resamples the same way as rliable's
StratifiedBootstrap: runs with replacement, independently within each stratum. deepq compare compares one task
(one env) at a time, so a stratum is a group's runs.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.stats

CI_SIZE = 0.95
_CHUNK_VALUES = 4_000_000  # resampled values held at once (32 MB of float64); more replicates go in chunks


class Interval(NamedTuple):
    """A point estimate with its 95% bootstrap confidence interval."""

    value: float
    low: float
    high: float


def iqm(x: np.ndarray) -> np.ndarray:
    """Interquartile mean over runs: the mean of the middle 50% (rliable's aggregate_iqm, a 25% trimmed mean)."""
    return np.asarray(scipy.stats.trim_mean(x, proportiontocut=0.25, axis=1))


def mean(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.mean(x, axis=1))


def median(x: np.ndarray) -> np.ndarray:
    """The median of the runs' scores. (rliable's aggregate_median is the median over tasks of the per-task
    means, which for one task is the mean; the median of the runs is what one task can tell.)"""
    return np.asarray(np.median(x, axis=1))


def optimality_gap(x: np.ndarray, max_score: float) -> np.ndarray:
    """How far the runs fall short of max_score on average, scores above it counting as max_score (rliable's
    aggregate_optimality_gap with gamma = max_score, in the env's return units)."""
    return np.asarray(max_score - np.mean(np.minimum(x, max_score), axis=1))


def probability_of_improvement(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y): the chance that a random run of X scores above a random run of Y, ties counting half (the
    Mann-Whitney U statistic over nx * ny, as rliable's probability_of_improvement)."""
    a, b = x[:, :, None], y[:, None, :]  # (R, nx, 1) against (R, 1, ny)
    return np.asarray(np.mean((a > b) + 0.5 * (a == b), axis=(1, 2)))


def run_score_profile(x: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The fraction of runs scoring above each tau (rliable's score distribution): (R, runs) -> (R, len(taus))."""
    return np.asarray(np.mean(x[:, :, None] > taus, axis=1))


def bootstrap(stat: Callable[..., np.ndarray], samples: Sequence[np.ndarray], reps: int,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, low, high): stat on the samples (each shaped (runs, ...)), and the 95% percentile interval of stat
    over `reps` replicates, each drawing every sample's runs with replacement, independently of the others."""
    point = stat(*(s[None] for s in samples))[0]
    per_rep = sum(s.size for s in samples)
    chunk = max(1, _CHUNK_VALUES // max(1, per_rep))
    out = []
    for start in range(0, reps, chunk):
        n = min(chunk, reps - start)
        out.append(stat(*(s[rng.integers(0, len(s), size=(n, len(s)))] for s in samples)))  # (n, runs, ...) each
    replicates = np.concatenate(out)  # (reps, ...)
    tail = 100 * (1 - CI_SIZE) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail], axis=0)
    return point, low, high


def final_scores(scores: np.ndarray, max_score: float | None, reps: int,
                 rng: np.random.Generator) -> dict[str, Interval]:
    """IQM, mean, median and (with a max_score) optimality gap of one group's final returns, from one bootstrap
    (each replicate gives all four, as rliable does)."""
    def stat(x: np.ndarray) -> np.ndarray:
        parts = [iqm(x), mean(x), median(x)] + ([optimality_gap(x, max_score)] if max_score is not None else [])
        return np.stack(parts, axis=-1)  # (R, 3 or 4)

    value, low, high = bootstrap(stat, [scores], reps, rng)
    names = ["iqm", "mean", "median", "optimality_gap"][:len(value)]
    return {name: Interval(float(value[i]), float(low[i]), float(high[i])) for i, name in enumerate(names)}


def scalar(stat: Callable[..., np.ndarray], samples: Sequence[np.ndarray], reps: int,
           rng: np.random.Generator) -> Interval:
    """bootstrap() of a statistic that gives one number per replicate, as floats."""
    value, low, high = bootstrap(stat, samples, reps, rng)
    return Interval(float(value), float(low), float(high))


def steps_to(steps: np.ndarray, returns: np.ndarray, threshold: float) -> int | None:
    """The env step of the first evaluation at or above threshold (None: never)."""
    hit = np.flatnonzero(returns >= threshold)
    return int(steps[hit[0]]) if len(hit) else None


def rng_for(seed: int, *keys: str) -> np.random.Generator:
    """The bootstrap's generator for one quantity, seeded by --seed and the quantity's name (such as
    'final/lr=0.0005'): a group's intervals stay the same when other groups are added or removed."""
    return np.random.default_rng([seed, zlib.crc32("/".join(keys).encode())])


def summarize(finals: Mapping[str, npt.ArrayLike], reached: Mapping[str, Sequence[int | None]] | None,
              pairs: Sequence[tuple[str, str]], max_score: float | None, reps: int, seed: int) -> dict[str, Any]:
    """Every number of a comparison, ready for JSON: per group (label) the statistics of its runs' final returns
    and, given `reached` (each run's steps to the threshold, None where it never got there), the IQM of those
    steps over the runs that got there; per pair (x, y), P(X > Y)."""
    groups: dict[str, Any] = {}
    for label, scores in finals.items():
        x = np.asarray(scores, dtype=np.float64)
        entry: dict[str, Any] = {"runs": len(x), "final_return": {
            k: v._asdict() for k, v in final_scores(x, max_score, reps, rng_for(seed, "final", label)).items()}}
        if reached is not None:
            got = np.array([s for s in reached[label] if s is not None], dtype=np.float64)
            entry["steps_to_threshold"] = {"reached": len(got), "not_reached": len(x) - len(got), "iqm": (
                scalar(iqm, [got], reps, rng_for(seed, "steps", label))._asdict() if len(got) else None)}
        groups[label] = entry
    improvement = []
    for first, second in pairs:
        both = [np.asarray(finals[first], dtype=np.float64), np.asarray(finals[second], dtype=np.float64)]
        p = scalar(probability_of_improvement, both, reps, rng_for(seed, "improvement", first, second))
        improvement.append({"x": first, "y": second, **p._asdict()})
    return {"groups": groups, "probability_of_improvement": improvement}


def markdown(summary: dict[str, Any]) -> str:
    """summary.md from deepq compare's summary (summarize's numbers, with the threshold, max score, reps, seed
    and notes): the tables of final returns, steps to threshold and P(improvement), then the notes."""
    groups, threshold, gap = summary["groups"], summary["threshold"], summary["max_score"] is not None
    lines = [f"Final evaluation returns (95% CIs: {summary['reps']:,} bootstrap replicates, seed {summary['seed']}; "
             "a run's final return is its saved agent's evaluation, else its last periodic one)", "",
             "| setting | runs | IQM | mean | median |" + (f" optimality gap (max {summary['max_score']:g}) |"
                                                           if gap else ""),
             "|---|---|---|---|---|" + ("---|" if gap else "")]
    for label, g in groups.items():
        f = g["final_return"]
        lines.append(f"| {label} | {g['runs']} | " + " | ".join(
            _ci(f[k], ",.1f") for k in ("iqm", "mean", "median", "optimality_gap") if k in f) + " |")
    if threshold is not None:
        lines += ["", f"Steps to {threshold:g}: the first env step at which a periodic evaluation reached it "
                  "(IQM over the runs that did)", "",
                  f"| setting | reached {threshold:g} | did not | steps (IQM) |", "|---|---|---|---|"]
        for label, g in groups.items():
            s = g["steps_to_threshold"]
            lines.append(f"| {label} | {s['reached']} of {g['runs']} | {s['not_reached']} | "
                         f"{_ci(s['iqm'], ',.0f') if s['iqm'] else '-'} |")
    if summary["probability_of_improvement"]:
        lines += ["", "Probability of improvement: P(X > Y), the chance that a run of X ends above a run of Y "
                  "(ties count half)", "", "| X | Y | P(X > Y) |", "|---|---|---|"]
        lines += [f"| {p['x']} | {p['y']} | {_ci(p, '.2f')} |" for p in summary["probability_of_improvement"]]
    if summary["notes"]:
        lines += ["", "Notes:", "", *(f"- {n}" for n in summary["notes"])]
    return "\n".join(lines) + "\n"


def _ci(interval: dict[str, float], spec: str) -> str:
    return f"{interval['value']:{spec}} [{interval['low']:{spec}}, {interval['high']:{spec}}]"
