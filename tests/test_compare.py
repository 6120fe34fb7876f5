"""deepq compare: its statistics against hand-computed values and rliable, the bootstrap's coverage, steps to a
threshold, what it says about incomplete runs, its plots, its command line and bad input, and one comparison of
real training runs.

Synthetic run directories are written the way a run writes them: config.json by write_config, metrics.csv by
RunLog (episode rows, periodic evaluations, the final evaluation).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rliable.metrics
from process_harness import stop_with, wait_until_loaded

import deepq
from deepq.cli import main
from deepq.core.results import EvalResult
from deepq.research import stats
from deepq.run.log import RunLog, write_config


def write_run(run_dir: Path, evals: list[tuple[int, float]], final: float | None, seed: int = 0,
              **fields: Any) -> Path:
    """A cartpole run directory whose periodic evaluations are `evals` (step, mean return) and whose final
    evaluation is `final` (None: no final row, as in a run that was killed)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = deepq.preset("cartpole", seed=seed, run_dir=str(run_dir), progress=False, **fields)
    write_config(run_dir, cfg, run_id=f"test-{seed}")
    log = RunLog(run_dir)
    for i, (step, value) in enumerate(evals):
        log.episode(step - 1, i + 1, 20.0 + i, 20 + i, 0.5, 0.1)
        log.evaluation(step, EvalResult(returns=[value - 1.0, value + 1.0]))
    if final is not None:
        log.evaluation(evals[-1][0] if evals else 0, EvalResult(returns=[final, final]), final=True)
    log.close()
    return run_dir


def curve(values: Sequence[float], every: int = 1000) -> list[tuple[int, float]]:
    """Periodic evaluations every `every` env steps, the first at `every`."""
    return [(every * (i + 1), v) for i, v in enumerate(values)]


def compare(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """deepq compare argv, as the command line runs it: (exit code, stdout, stderr)."""
    code = main(["compare", *argv, "--reps", "500"])
    out, err = capsys.readouterr()
    return code, out, err


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / "summary.json").read_text())  # type: ignore[no-any-return]


# ---- the statistics --------------------------------------------------------------------------------------
def test_iqm_of_known_numbers() -> None:
    one = lambda xs: float(stats.iqm(np.array([xs], dtype=float))[0])  # noqa: E731
    assert one([8, 1, 7, 2, 6, 3, 5, 4]) == 4.5  # the middle half: 3, 4, 5, 6
    assert one([0, 10, 20, 30, 1000]) == 20.0  # a quarter of 5 runs is 1 from each end: 10, 20, 30
    assert one([1, 2, 9]) == 4.0  # a quarter of 3 runs is no whole run: the mean


def test_statistics_are_rliables() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(200, 50, 13), rng.normal(230, 50, 9)
    assert stats.iqm(x[None])[0] == pytest.approx(rliable.metrics.aggregate_iqm(x[:, None]))
    assert stats.mean(x[None])[0] == pytest.approx(rliable.metrics.aggregate_mean(x[:, None]))
    assert stats.optimality_gap(x[None], 220.0)[0] == pytest.approx(
        rliable.metrics.aggregate_optimality_gap(x[:, None], gamma=220.0))
    ties = np.round(x / 50) * 50, np.round(y / 50) * 50  # Mann-Whitney counts a tie as half
    for a, b in [(x, y), ties]:
        assert stats.probability_of_improvement(a[None], b[None])[0] == pytest.approx(
            rliable.metrics.probability_of_improvement(a[:, None], b[:, None]))


def test_bootstrap_interval_covers_the_true_iqm_95_percent_of_the_time() -> None:
    # Exponential(1): IQM = E[X | Q1 < X < Q3] = 2((1 + a) e^-a - (1 + b) e^-b), a = ln 4/3, b = ln 4 (0.738);
    # its mean (1) and median (ln 2) are far enough from it that intervals of the wrong statistic miss it often.
    a, b = math.log(4 / 3), math.log(4)
    true_iqm = 2 * ((1 + a) * 0.75 - (1 + b) * 0.25)
    rng = np.random.default_rng(0)
    draws = 200
    intervals = [stats.scalar(stats.iqm, [rng.exponential(1.0, 20)], 2000, rng) for _ in range(draws)]
    coverage = np.mean([ci.low <= true_iqm <= ci.high for ci in intervals])
    tolerance = 3 * math.sqrt(0.95 * 0.05 / draws)  # 3 binomial standard deviations of 200 draws: 0.046
    assert abs(coverage - 0.95) <= tolerance, f"coverage {coverage:.3f}"


def test_probability_of_improvement_separated_and_equal_groups() -> None:
    rng = np.random.default_rng(1)
    low, high = rng.normal(100, 10, 10), rng.normal(400, 10, 10)
    better = stats.scalar(stats.probability_of_improvement, [high, low], 2000, rng)
    assert better.value == 1.0 and better.low == 1.0
    worse = stats.scalar(stats.probability_of_improvement, [low, high], 2000, rng)
    assert worse.value == 0.0 and worse.high == 0.0
    same = stats.scalar(stats.probability_of_improvement, [low, low.copy()], 2000, rng)
    assert same.value == 0.5 and same.low < 0.5 < same.high
    x, y = rng.normal(100, 10, 40), rng.normal(100, 10, 40)  # one distribution: about 0.5
    alike = stats.scalar(stats.probability_of_improvement, [x, y], 2000, rng)
    assert abs(alike.value - 0.5) < 0.15 and alike.low < 0.5 < alike.high


def test_the_same_seed_gives_the_same_intervals_and_another_group_changes_none() -> None:
    x = np.array([10.0, 200.0, 300.0, 350.0, 500.0])
    first = stats.summarize({"a": x}, None, [], 475.0, 500, seed=0)["groups"]["a"]
    again = stats.summarize({"b": x * 2, "a": x}, None, [], 475.0, 500, seed=0)["groups"]["a"]
    assert first == again
    assert first != stats.summarize({"a": x}, None, [], 475.0, 500, seed=1)["groups"]["a"]


# ---- runs of different lengths, missing evaluations, steps to threshold ------------------------------------
def test_steps_to_threshold_with_runs_that_never_reach_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, values in enumerate([[100, 480], [200, 300, 300, 490, 500], [100, 200], [300, 400]]):
        write_run(tmp_path / f"seed-{seed}", curve(values), final=values[-1], seed=seed)
    code, out, _ = compare(capsys, str(tmp_path), "--out", str(tmp_path / "cmp"))
    assert code == 0
    steps = summary(tmp_path / "cmp")["groups"][tmp_path.name]["steps_to_threshold"]
    assert (steps["reached"], steps["not_reached"]) == (2, 2)
    assert steps["iqm"]["value"] == 3000.0  # reached at 2,000 and 4,000; two runs is no quarter to trim
    assert f"| {tmp_path.name} | 2 of 4 | 2 | 3,000 [2,000, 4,000] |" in out
    # at or above 300: steps 2,000, 2,000 (300 counts), never, 1,000 (300 again); the IQM of 3 runs is their mean
    code, out, _ = compare(capsys, str(tmp_path), "--threshold", "300")
    assert f"| {tmp_path.name} | 3 of 4 | 1 | 1,667 [" in out


def test_incomplete_runs_are_said_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    solved = write_run(runs / "solved", curve([100, 480]), final=470.0, seed=0)
    write_run(runs / "full", curve([100, 200, 300, 400]), final=410.0, seed=1)
    killed = write_run(runs / "killed", curve([150, 250, 350]), final=None, seed=2)
    silent = write_run(runs / "silent", [], final=None, seed=3)
    cut = write_run(runs / "cut", curve([120, 220, 320, 420]), final=430.0, seed=4)
    with (cut / "metrics.csv").open("a") as f:
        f.write("4100,9,31.0,31,0.5")  # a row a kill cut short: no end of line
    code, out, _ = compare(capsys, str(runs), "--out", str(tmp_path / "cmp"))
    assert code == 0
    notes = summary(tmp_path / "cmp")["notes"]
    assert notes == [
        f"{cut / 'metrics.csv'}: its last line is cut short (the run was killed while writing it); ignored",
        f"{killed}: no final evaluation (stopped, killed or still training); its last periodic evaluation "
        "(step 3,000: 350.0) is its final return",
        f"{silent}: no evaluation in metrics.csv (it stopped before its first one); left out",
        f"{killed}: its evaluations end at step 3,000, its group's at 4,000; on the curves its last value is "
        "carried forward",
        f"{solved}: stopped at a solving evaluation (step 2,000: 480.0 >= 475); on the curves its last value is "
        "carried forward to step 4,000"]
    assert all(f"- {n}" in out for n in notes)
    group = summary(tmp_path / "cmp")["groups"]["runs"]
    assert group["runs"] == 4  # the run without an evaluation is left out
    by_dir = {Path(r["run_dir"]).name: r for r in group["run_dirs"]}
    assert by_dir["killed"]["final_return"] == 350.0 and by_dir["killed"]["final_from"] == "last periodic"
    assert by_dir["solved"]["final_return"] == 470.0 and by_dir["full"]["final_from"] == "final"
    curves = summary(tmp_path / "cmp")["curves"]["runs"]
    assert curves["steps"] == [1000.0, 2000.0, 3000.0, 4000.0]
    assert curves["iqm"][-1] == 410.0  # IQM of 400, 420 and the carried-forward 350, 480: the middle two


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # write_run's std of a NaN
def test_nan_and_inf_evaluations_are_skipped_and_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An evaluation whose return is NaN or inf would make every interval of its group nan: it is left out, and
    a note per run says which; a run with no finite evaluation is left out; a stop_at_return of NaN is no
    threshold."""
    runs = tmp_path / "runs"
    nan = write_run(runs / "nan", curve([100, math.nan, 300]), final=math.nan, seed=0)
    inf = write_run(runs / "inf", curve([100, math.inf, 320]), final=330.0, seed=1)
    write_run(runs / "fine", curve([100, 200, 310]), final=320.0, seed=2)
    none = write_run(tmp_path / "none" / "run", curve([-math.inf]), final=math.nan, seed=3)
    (none / "config.json").write_text((none / "config.json").read_text().replace('"stop_at_return": 475.0',
                                                                                   '"stop_at_return": NaN'))
    code, out, err = compare(capsys, str(runs), str(none), "--out", str(tmp_path / "cmp"))
    assert code == 0 and err == "" and "nan" not in out.split("Notes:")[0], out
    result = summary(tmp_path / "cmp")
    assert {r["run_dir"]: r["final_return"] for r in result["groups"]["runs"]["run_dirs"]} == {
        str(nan): 300.0, str(inf): 330.0, str(runs / "fine"): 320.0}
    assert result["groups"]["runs"]["final_return"]["mean"]["value"] == pytest.approx(950 / 3)
    assert result["curves"]["runs"]["steps"] == [1000.0, 2000.0, 3000.0]  # nan's carries its 1,000 value on
    assert result["threshold"] == 475  # the runs that share it: none's NaN is no threshold
    assert result["notes"][:5] == [  # the runs in the order found: fine, inf, nan, then none
        f"{inf}: 1 evaluation(s) whose return is not a finite number skipped (periodic at step 2,000: inf)",
        f"{nan}: 2 evaluation(s) whose return is not a finite number skipped (periodic at step 2,000: nan, final at "
        "step 3,000: nan)",
        f"{nan}: no final evaluation (its final one is not a finite number); its last periodic evaluation (step "
        "3,000: 300.0) is its final return",
        f"{none / 'config.json'}: its stop_at_return nan is not a finite number; ignored",
        f"{none}: 2 evaluation(s) whose return is not a finite number skipped (periodic at step 1,000: -inf, final "
        "at step 1,000: nan)"]
    assert f"{none}: no evaluation in metrics.csv (none has a finite return); left out" in result["notes"]


def test_runs_that_stopped_solved_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A preset that stops at its solving evaluation leaves most runs short of the longest: one line says so."""
    runs = tmp_path / "runs"
    write_run(runs / "a", curve([100, 480]), final=470.0, seed=0)
    write_run(runs / "b", curve([100, 200, 490]), final=480.0, seed=1)
    write_run(runs / "c", curve([100, 200, 300, 400]), final=410.0, seed=2)
    write_run(runs / "d", curve([100, 200, 300, 420]), final=430.0, seed=3)
    code, _, _ = compare(capsys, str(runs), "--out", str(tmp_path / "cmp"))
    assert code == 0
    assert summary(tmp_path / "cmp")["notes"] == [
        f"2 runs in {runs} stopped at a solving evaluation (>= 475, at steps 2,000 to 3,000); on the curves their "
        "last values are carried forward to step 4,000"]


def test_labels_of_plain_runs_and_of_a_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed in (0, 1):
        write_run(tmp_path / "a" / f"s{seed}", curve([100, 200]), 200.0, seed=seed)
        write_run(tmp_path / "b" / f"s{seed}", curve([100, 300]), 300.0, seed=seed, lr=5e-4, double=False)
    compare(capsys, str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"))
    assert list(summary(tmp_path / "cmp")["groups"]) == ["lr=0.001,double=True", "lr=0.0005,double=False"]
    compare(capsys, str(tmp_path / "a"), "--out", str(tmp_path / "one"))
    assert list(summary(tmp_path / "one")["groups"]) == ["a"]  # one group: its folder's name
    # two presets differ in many fields: their folders name them, as the paths given (a link) call them
    for seed in (0, 1):
        write_run(tmp_path / "runs-of-pqn" / f"s{seed}", curve([100, 300]), 300.0, seed=seed, target="pqn",
                  layer_norm=True, double=False, num_envs=4, learning_starts=0)
    (tmp_path / "pqn").symlink_to(tmp_path / "runs-of-pqn")
    compare(capsys, str(tmp_path / "a"), str(tmp_path / "pqn"), "--out", str(tmp_path / "two"))
    assert list(summary(tmp_path / "two")["groups"]) == ["a", "pqn"]

    sweep = tmp_path / "sweep"
    settings = [{"label": "default", "overrides": {}}, {"label": "lr=0.0005", "overrides": {"lr": 5e-4}}]
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"target": "cartpole", "seeds": [0, 1, 2], "settings": settings,
                                                  "common": {}, "version": 1}))
    for s in settings:
        for seed in (0, 1):  # seed 2 has not run yet
            write_run(sweep / "runs" / str(s["label"]) / f"seed-{seed}", curve([100, 400]), 400.0, seed=seed,
                      **s["overrides"])  # type: ignore[arg-type]
    code, out, _ = compare(capsys, str(sweep))
    assert code == 0 and "| default | 2 |" in out and "| lr=0.0005 | 2 |" in out
    assert f"- {sweep / 'runs' / 'default' / 'seed-2'}: not there or no config.json (not run yet?); left out" in out
    assert "| lr=0.0005 | default | 0.50 [" in out  # P(later > earlier) for two groups


def test_runs_on_different_envs_are_said(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_run(tmp_path / "cartpole", curve([100, 200]), 200.0)
    write_run(tmp_path / "acrobot", curve([-500, -400]), -400.0, env="Acrobot-v1")
    code, out, _ = compare(capsys, str(tmp_path))
    assert code == 0 and "| env=Acrobot-v1 | 1 |" in out and "| env=CartPole-v1 | 1 |" in out
    assert ("- the runs train on 2 envs (Acrobot-v1, CartPole-v1): their returns are on different scales, so "
            "compare the groups of one env at a time") in out


# ---- the plots, the command line, bad input --------------------------------------------------------------
def test_plots_are_written_and_drawn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib.image
    import seaborn as sns
    from matplotlib.colors import to_hex

    for seed in range(3):
        write_run(tmp_path / "base" / f"s{seed}", curve([50 + 10 * seed, 150, 250, 300]), 300.0 + seed, seed=seed)
        write_run(tmp_path / "fast" / f"s{seed}", curve([50, 250, 400, 480 + seed]), 490.0, seed=seed, lr=5e-4)
    out = tmp_path / "cmp"
    code, text, _ = compare(capsys, str(tmp_path / "base"), str(tmp_path / "fast"), "--out", str(out))
    assert code == 0
    for name in ("summary.md", "summary.json", "curves.png", "curves.svg", "profiles.png", "profiles.svg"):
        assert f"wrote {out / name}" in text
    colors = sns.color_palette("colorblind", 2)  # the groups' colours, in order
    for stem in ("curves", "profiles"):
        pixels = matplotlib.image.imread(out / f"{stem}.png")[..., :3]
        assert pixels.shape == (550, 900, 3)
        for color in colors:  # each group's line is drawn in its colour
            assert (np.abs(pixels - np.array(color)).max(axis=-1) < 0.02).sum() > 300, stem
        svg = (out / f"{stem}.svg").read_text()
        assert svg.count("<path") > 50 and all(to_hex(c) in svg for c in colors), stem
    assert (out / "summary.md").read_text() in text


def test_the_command_prints_the_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for seed, finals in enumerate([(500.0, 100.0), (480.0, 120.0), (490.0, 500.0), (470.0, 90.0), (20.0, 80.0)]):
        write_run(tmp_path / "good" / f"s{seed}", curve([100, finals[0]]), finals[0], seed=seed)
        write_run(tmp_path / "bad" / f"s{seed}", curve([100, finals[1]]), finals[1], seed=seed, lr=1e-2)
    code, out, err = compare(capsys, str(tmp_path / "good"), str(tmp_path / "bad"), "--baseline", "lr=0.001")
    assert code == 0 and err == ""
    assert "| setting | runs | IQM | mean | median | optimality gap (max 475) |" in out
    # good: 20, 470, 480, 490, 500: IQM 480 (the middle three), mean 392, median 480, gap 475 - mean(20, 470,
    # 475, 475, 475) = 92
    assert "| lr=0.001 | 5 | 480.0 [" in out and "| 392.0 [" in out and "| 480.0 [" in out and "| 92.0 [" in out
    # bad's 500 beats 4 of good's runs and ties one, its 80, 90, 100, 120 beat 20: 8.5 of 25 pairs
    assert "| lr=0.01 | lr=0.001 | 0.34 [" in out
    assert "| lr=0.001 | 3 of 5 | 2 | 2,000 [" in out and "| lr=0.01 | 1 of 5 | 4 | 2,000 [" in out
    assert out.endswith("(--out DIR also writes summary.md, summary.json and the curves and profiles as PNG and SVG)\n")


BAD_INPUT = {  # case: the start of the one line it gets
    "missing": ("{tmp}/nowhere: no such file or directory; give a sweep directory (with sweep.json), a run "
                "directory (with config.json and metrics.csv) or a folder holding them"),
    "empty": ("{tmp}/empty holds no deepq run or sweep (no config.json or sweep.json in it or below it); give a "
              "sweep directory"),
    "file": "{tmp}/one/config.json is a file; give the run directory that holds it ({tmp}/one)",
    "unreadable": ("{tmp}/one/metrics.csv is not a deepq metrics.csv (line 5: step '2000', eval_return 'lots' are "
                   "not numbers); repair it or delete that run directory ({tmp}/one), or move it out of the paths "
                   "given"),
    "not csv": ("{tmp}/one/metrics.csv is not a deepq metrics.csv (its header has no step and eval_return "
                "columns); repair it"),
    "baseline alone": ("--baseline one: P(improvement) needs two groups and these runs make one; add the runs of "
                       "another setting"),
    "baseline unknown": "--baseline 'lr=1' is not one of the groups here: 'lr=0.001', 'lr=0.0005'",
    "sweep": ("{tmp}/sw/sweep.json is not a deepq sweep file (it needs \"seeds\" and \"settings\" with a \"label\" "
              "each; \"settings\" must be a list of objects, not null); repair it, or compare the runs without it: "
              "deepq compare {tmp}/sw/runs"),
    "reps": "--reps 10: a 95% interval needs at least 100 bootstrap replicates (default 2,000)",
    "reps huge": ("--reps 1,000,000,000,000: at most 100,000 (twice rliable's 50,000; 100,000 replicates of 4 groups' "
                  "learning curves took 44 s and 1.3 GB on a 2-core machine, and both grow with the replicates); give "
                  "a smaller --reps"),
    "threshold nan": "--threshold nan: give a finite number (a return, such as 475)",
    "max-score inf": "--max-score inf: give a finite number (a return, such as 475)",
    "seed negative": "--seed -1: the bootstrap's seed is an integer from 0 to 4,294,967,295",
    "out a file": "--out {tmp}/one/config.json: it is a file, not a folder; choose another --out",
    "out under a file": "--out {tmp}/one/config.json/cmp: {tmp}/one/config.json is a file, not a folder",
    "out unwritable": "--out /proc/deepq-compare: cannot write in /proc (",
    "sweep seed inf": ("{tmp}/sw/sweep.json is not a deepq sweep file (it needs \"seeds\" and \"settings\" with a "
                       "\"label\" each; \"seeds\" must be a list of integers from 0 to 4,294,967,295, not "
                       "[Infinity]); repair it"),
    "sweep label escapes": ("{tmp}/sw/sweep.json is not a deepq sweep file (it needs \"seeds\" and \"settings\" with "
                            "a \"label\" each; the label '../..' is not a folder name); repair it"),
    "step inf": "{tmp}/one/metrics.csv is not a deepq metrics.csv (line 3: step 'inf' is not an env step); repair it",
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    one = write_run(tmp_path / "one", curve([100, 200]), 200.0)
    two = write_run(tmp_path / "two", curve([100, 300]), 300.0, lr=5e-4)
    (tmp_path / "empty").mkdir()
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "sweep.json").write_text('{"seeds": [0]}')
    if case == "unreadable":
        text = (one / "metrics.csv").read_text().replace(",200.0,", ",lots,", 1)
        (one / "metrics.csv").write_text(text)
    if case == "not csv":
        (one / "metrics.csv").write_text("this is not\na metrics file\n")
    if case == "step inf":
        (one / "metrics.csv").write_text((one / "metrics.csv").read_text().replace("\n1000,,", "\ninf,,", 1))
    if case.startswith("sweep "):
        seeds, label = ("[1e400]", "default") if case == "sweep seed inf" else ("[0]", "../..")
        (tmp_path / "sw" / "sweep.json").write_text(f'{{"seeds": {seeds}, "settings": [{{"label": "{label}"}}]}}')
    argv = {"missing": [str(tmp_path / "nowhere")], "empty": [str(tmp_path / "empty")],
            "file": [str(one / "config.json")], "baseline alone": [str(one), "--baseline", "one"],
            "baseline unknown": [str(one), str(two), "--baseline", "lr=1"], "sweep": [str(tmp_path / "sw")],
            "reps": [str(one), "--reps", "10"], "reps huge": [str(one), "--reps", "1e12"],
            "threshold nan": [str(one), "--threshold", "nan"], "max-score inf": [str(one), "--max-score", "inf"],
            "seed negative": [str(one), "--seed", "-1"], "out a file": [str(one), "--out", str(one / "config.json")],
            "out under a file": [str(one), "--out", str(one / "config.json" / "cmp")],
            "out unwritable": [str(one), "--out", "/proc/deepq-compare"], "sweep seed inf": [str(tmp_path / "sw")],
            "sweep label escapes": [str(tmp_path / "sw")]}.get(case, [str(one)])
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("deepq: error: " + BAD_INPUT[case].format(tmp=tmp_path)), err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_bootstrap_stops_it_in_one_line(signum: int, tmp_path: Path) -> None:
    """100,000 replicates of two groups' learning curves take many seconds: SIGTERM or Ctrl-C stops them at once,
    with one line and exit 128 + the signal, and --out is not made."""
    rng = np.random.default_rng(0)
    for (group, lr), seed in ((g, s) for g in (("a", 1e-3), ("b", 5e-4)) for s in range(5)):
        write_run(tmp_path / group / f"s{seed}", curve(rng.normal(200, 50, 400).tolist(), every=100), 300.0,
                  seed=seed, lr=lr)
    out, argv = tmp_path / "cmp", ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--reps", "100000", "--out"]
    proc = subprocess.Popen([sys.executable, "-m", "deepq.cli", *argv, str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert wait_until_loaded(proc, "scipy"), proc.communicate()  # the statistics' imports: it is computing
    time.sleep(0.5)
    stdout, err = stop_with(proc, signum, timeout=5)
    assert proc.returncode == 128 + signum, err
    assert err == f"deepq compare: stopped by {signal.Signals(signum).name} before it wrote anything; run it again\n"
    assert stdout == "" and not out.exists()


# ---- real runs -------------------------------------------------------------------------------------------
def test_two_groups_of_real_training_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for lr in (1e-3, 5e-4):
        for seed in (0, 1):
            deepq.train(deepq.preset("cartpole", seed=seed, run_dir=str(tmp_path / f"lr{lr}" / f"seed-{seed}"),
                                     progress=False, total_steps=2000, eval_interval=500, eval_episodes=2,
                                     checkpoint_interval=0, lr=lr))
    code, out, err = compare(capsys, str(tmp_path), "--out", str(tmp_path / "cmp"))
    assert code == 0 and err == ""
    result = summary(tmp_path / "cmp")
    assert list(result["groups"]) == ["lr=0.0005", "lr=0.001"]  # the folders' order: lr0.0005/ before lr0.001/
    assert [g["runs"] for g in result["groups"].values()] == [2, 2]
    assert result["curves"]["lr=0.001"]["steps"] == [500.0, 1000.0, 1500.0, 2000.0]
    assert all(r["final_from"] == "final" for g in result["groups"].values() for r in g["run_dirs"])
    assert "| lr=0.001 | lr=0.0005 | " in out
    assert result["notes"] == [f"{label}: 2 runs; the IQM of fewer than 4 trims none (it is their mean), and a "
                               "bootstrap of so few understates the uncertainty: run more seeds"
                               for label in result["groups"]]
