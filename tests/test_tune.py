"""deepq tune: RL Zoo's DQN search space gives valid Configs; the pruner stops trials early; a study continues
from its SQLite file; the best config trains; Ctrl-C keeps the study and the same command finishes it; bad input
is one line.

Real tiny CartPole runs (3,000 env steps, an evaluation of 2 episodes every 500), real SQLite files, a real
SIGINT to a real `deepq tune` process.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from process_harness import stop_with

import deepq
from deepq.cli import main, parse_args
from deepq.config import Config
from deepq.errors import ConfigError
from deepq.presets import preset
from deepq.research import tune
from deepq.research.search_space import DEFAULT_FIELDS, FIELDS, LEARNING_STARTS, NET_ARCH, parse_fields, suggest
from deepq.training.setup import check

STEPS = 3000  # a trial: 6 periodic evaluations, the median pruner looking from step 1,000 on
TINY = ["--total_steps", str(STEPS), "--eval_interval", "500", "--eval_episodes", "2", "--learning_starts", "500",
        "--startup_trials", "1", "--device", "cpu"]
State = optuna.trial.TrialState


def tune_cmd(tmp: Path, trials: int, *extra: str) -> list[str]:
    return ["tune", "cartpole", "--trials", str(trials), "--storage", f"sqlite:///{tmp / 'tune.db'}",
            "--dir", str(tmp / "study"), *TINY, *extra]


def trials_of(tmp: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="cartpole", storage=f"sqlite:///{tmp / 'tune.db'}").get_trials()


def periodic(run_dir: Path) -> list[int]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [int(r["step"]) for r in csv.DictReader(f) if r["eval_kind"] == "periodic"]


# The search space -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fixed", [{}, {"buffer_size": 100}, {"train_freq": 3, "total_steps": 800}])
def test_the_search_space_maps_to_valid_configs(fixed: dict[str, Any]) -> None:
    base = preset("cartpole", **{"total_steps": 4000, **fixed})
    fields = [f for f in FIELDS if f not in fixed]
    # in memory: this draws trials only, and 300 of them through SQLite would cost seconds
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), direction="maximize")
    seen: dict[str, set[Any]] = {f: set() for f in fields}
    for _ in range(300):
        values = suggest(study.ask(), base, fields)
        assert sorted(values) == sorted(fields)
        cfg = check(base.replace(**values))  # every field's check, and batch_size <= buffer_size
        assert 0.97 <= cfg.gamma < 1 and 1e-5 <= cfg.lr <= 2e-3 and 0 <= cfg.eps_end <= 0.2
        assert cfg.batch_size & (cfg.batch_size - 1) == 0 and cfg.batch_size <= min(2048, cfg.buffer_size)
        assert 1 <= cfg.gradient_steps <= cfg.train_freq <= 10
        assert 0 <= cfg.eps_decay_steps <= cfg.total_steps // 2 and cfg.learning_starts < cfg.total_steps
        assert cfg.hidden_sizes in NET_ARCH.values() and 1 <= cfg.target_update_interval <= 20_000
        for f in fields:
            seen[f].add(getattr(cfg, f))
    assert seen["hidden_sizes"] == set(NET_ARCH.values())
    assert (min(seen["batch_size"]), max(seen["batch_size"])) == ((32, 64) if "buffer_size" in fixed else (32, 2048))
    assert seen["learning_starts"] == {s for s in LEARNING_STARTS if s < base.total_steps}  # it could never learn
    assert all(len(v) > 1 for f, v in seen.items() if f != "learning_starts")  # each tuned field really varies


def test_fields_default_to_rl_zoos_less_the_fixed_ones_and_bad_names_are_refused() -> None:
    assert parse_fields(None, set()) == DEFAULT_FIELDS
    assert parse_fields(None, {"lr", "seed"}) == tuple(f for f in DEFAULT_FIELDS if f != "lr")
    assert parse_fields("hidden_sizes, lr,buffer_size", set()) == ("lr", "hidden_sizes", "buffer_size")
    for text, says in [("lrr", "did you mean 'lr'"), ("learning_rate", "deepq's field for RL Zoo's 'learning_rate'"),
                       ("dueling", "outside RL Zoo's DQN search space"), (",", "names no field")]:
        with pytest.raises(ConfigError, match=says):
            parse_fields(text, set())
    with pytest.raises(ConfigError, match="--lr fixes it"):
        parse_fields("lr", {"lr"})


def test_two_workers_sharing_a_study_draw_different_trials_and_a_rerun_draws_the_same(tmp_path: Path) -> None:
    t = tune.settings(parse_args(tune_cmd(tmp_path, 4)))  # the settings a `deepq tune cartpole` worker runs with
    url = f"sqlite:///{tmp_path / 'tune.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    workers = [optuna.load_study(storage=url, study_name="s") for _ in range(2)]  # as two processes would
    drawn = []
    for study in workers:
        trial = study.ask()
        study.sampler = tune.sampler(t, trial.number, optuna)
        drawn.append((trial.number, suggest(trial, t.base, t.fields)))
    assert drawn[0][0] != drawn[1][0] and drawn[0][1] != drawn[1][1]
    again = optuna.create_study(direction="maximize")
    trial = again.ask()  # trial 0 of a new study, drawn by trial 0's sampler
    again.sampler = tune.sampler(t, trial.number, optuna)
    assert suggest(trial, t.base, t.fields) == drawn[0][1]


# A study of 2 trials, then the same command with --trials 4 ---------------------------------------------------------

@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("tune")
    outputs = []
    for trials in (2, 4):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(tune_cmd(tmp, trials)) == 0
        outputs.append(out.getvalue())
    return tmp, outputs


def test_each_finished_trial_is_one_line_and_the_end_names_the_best(studied: tuple[Path, list[str]]) -> None:
    tmp, (first, second) = studied
    lines = [ln for ln in (first + second).splitlines() if ln.startswith("trial ")]
    assert [int(ln.split()[1]) for ln in lines] == [0, 1, 2, 3]
    for ln in lines:
        assert ("complete" in ln or "pruned at step" in ln) and "value" in ln and "lr=" in ln and "gamma=" in ln
    assert second.splitlines()[-1] == f"best config: {tmp / 'study' / 'best.json'} (train it: deepq train --config " \
                                      f"{tmp / 'study' / 'best.json'})"


def test_the_pruner_stops_a_pruned_trials_training(studied: tuple[Path, list[str]]) -> None:
    tmp, _ = studied
    trials = trials_of(tmp)
    pruned = [t for t in trials if t.state == State.PRUNED]
    complete = [t for t in trials if t.state == State.COMPLETE]
    assert pruned and complete
    for t in pruned:
        steps = periodic(tmp / "study" / f"trial-{t.number}")
        assert steps[-1] < STEPS and steps[-1] == t.last_step  # its run stopped at the evaluation that pruned it
        assert (tmp / "study" / f"trial-{t.number}" / "agent.pt").is_file()
    for t in complete:
        assert periodic(tmp / "study" / f"trial-{t.number}")[-1] == STEPS


def test_a_study_continued_from_its_file_numbers_on_and_stops_at_the_total(studied: tuple[Path, list[str]]) -> None:
    tmp, (_, second) = studied
    assert second.startswith(f"study 'cartpole' in sqlite:///{tmp / 'tune.db'}: 2 of 4 trials finished")
    trials = trials_of(tmp)
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert all(t.state in (State.COMPLETE, State.PRUNED) for t in trials)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the total is reached: the same command again trains nothing
        assert main(tune_cmd(tmp, 4)) == 0
    assert "4 of 4 trials finished" in out.getvalue() and "\ntrial " not in out.getvalue()
    assert len(trials_of(tmp)) == 4


def test_the_best_config_is_the_best_trials_and_trains(studied: tuple[Path, list[str]], tmp_path: Path) -> None:
    tmp, _ = studied
    best = max((t for t in trials_of(tmp) if t.state == State.COMPLETE), key=lambda t: t.value or 0.0)
    cfg = Config.from_dict(json.loads((tmp / "study" / "best.json").read_text()))
    for field, value in best.user_attrs["config"].items():
        assert getattr(cfg, field) == (tuple(value) if isinstance(value, list) else value)
    assert (cfg.stop_at_return, cfg.progress, cfg.run_dir) == (475.0, True, "")  # the preset's, and a new run
    agent = deepq.train(cfg.replace(run_dir=str(tmp_path / "best"), progress=False))
    assert agent.final_evaluation.mean > 0  # type: ignore[attr-defined]
    assert periodic(tmp_path / "best")[-1] == STEPS


def test_a_trial_whose_loss_diverges_is_pruned_and_the_study_goes_on(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(tune_cmd(tmp_path, 1, "--lr", "1e30", "--fields", "gamma")) == 0  # NaN at the first update
    (trial,) = trials_of(tmp_path)
    assert trial.state == State.PRUNED and trial.user_attrs["diverged"].startswith("TD loss is ")
    assert "pruned: TD loss diverged" in capsys.readouterr().out


# Ctrl-C ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_keeps_the_study_and_the_same_command_finishes_it(signum: int, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) or SIGTERM, by os.kill, during a trial: its training checkpoints, the trial is marked failed
    and queued, one line says so (not also the training loop's `deepq train --resume` one), exit 128 + signal."""
    argv = tune_cmd(tmp_path, 1, "--total_steps", "3000")
    run_dir = tmp_path / "study" / "trial-0"
    proc = subprocess.Popen([sys.executable, "-m", "deepq.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ((run_dir / "metrics.csv").is_file() and periodic(run_dir)):  # trial 0 is training
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"trial 0 never trained: {proc.communicate()}")
        time.sleep(0.05)
    _, err = stop_with(proc, signum, timeout=60)
    assert proc.returncode == 128 + signum, err
    assert err.startswith(f"deepq tune: stopped by {signal.Signals(signum).name}: trial 0 interrupted and marked "
                          "failed; its run") and err.count("\n") == 1, err
    assert "run the same command again to continue" in err
    (failed, waiting) = trials_of(tmp_path)
    assert failed.state == State.FAIL and waiting.state == State.WAITING
    interrupted_at = periodic(run_dir)[-1]
    assert interrupted_at < 3000 and (run_dir / "checkpoint" / "checkpoint.pt").is_file()
    run_id = json.loads((run_dir / "config.json").read_text())["run_id"]

    out_io = io.StringIO()
    with contextlib.redirect_stdout(out_io):
        assert main(argv) == 0
    assert "trial 1   value" in out_io.getvalue() and "(continued trial 0)" in out_io.getvalue()
    trials = trials_of(tmp_path)  # the continuation is the study's one finished trial: the total is reached
    assert [t.state for t in trials] == [State.FAIL, State.COMPLETE]
    assert trials[1].params == failed.params and trials[1].user_attrs["run_dir"] == str(run_dir)
    # trial 1 resumed trial 0's run (the same run, not a new one in its place): its evaluations go on from there
    assert json.loads((run_dir / "config.json").read_text())["run_id"] == run_id
    steps = periodic(run_dir)
    assert steps == list(range(500, 3001, 500))
    assert sorted(trials[1].intermediate_values) == steps


# Bad input ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("extra", "says"), [
    (["--fields", "lrr"], "--fields: 'lrr' cannot be tuned (did you mean 'lr'?)"),
    (["--storage", "bogus://nowhere"], "--storage bogus://nowhere: Optuna cannot open it"),
    (["--trials", "0"], "--trials 0: a study needs at least one trial"),
    (["--eval_interval", "0"], "eval_interval=0 with total_steps=3,000"),
    (["--run_dir", "x"], "--run_dir: deepq tune gives each trial its own run directory"),
    (["--trials", "1e18"], "--trials 1,000,000,000,000,000,000: at most 10,000 (Optuna reads every earlier trial"),
    (["--startup_trials", "1e9"], "--startup_trials 1,000,000,000: at most 10,000"),
    (["--storage", "sqlite://"], "--storage sqlite://: an in-memory database ends with this command, and the study "
                                 "with it, so the same command could not continue it; leave --storage out"),
    (["--storage", "sqlite:///:memory:"], "--storage sqlite:///:memory:: an in-memory database ends with this"),
])
def test_bad_input_is_one_line(extra: list[str], says: str, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(tune_cmd(tmp_path, 2, *extra)) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("deepq: error: ") and says in captured.err
    assert not list(tmp_path.glob("study/trial-*"))  # refused before any trial


def test_files_and_folders_it_would_write_and_other_databases_are_one_line(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--dir or --best where no file can go, a --study that would make the default DIR a nested path, and an SQLite
    file of another program (Optuna would add its tables to it) or with tables of Optuna's names but not its
    schema: one line each, before any trial, and the other program's database left as it was."""
    (tmp_path / "file").write_text("")
    other, clash = tmp_path / "other.db", tmp_path / "clash.db"
    for db, table in ((other, "t(x)"), (clash, "studies(x)")):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.execute(f"CREATE TABLE {table}")
            conn.commit()
    cases = [(["--dir", str(tmp_path / "file")], f"--dir {tmp_path / 'file'}: it is a file, not a folder"),
             (["--best", str(tmp_path)], f"--best {tmp_path}: it is a folder; give a file name"),
             (["--best", str(tmp_path / "file" / "b.json")], f"--best {tmp_path / 'file' / 'b.json'}: "
                                                              f"{tmp_path / 'file'} is a file, not a folder"),
             (["--storage", f"sqlite:///{other}"], f"--storage sqlite:///{other}: {other} is not an Optuna study "
                                                   "database (it is another program's SQLite database, with the "
                                                   "tables t); give a new file or one deepq tune made"),
             (["--storage", f"sqlite:///{clash}"], f"--storage sqlite:///{clash}: Optuna cannot use it (")]
    for extra, says in cases:
        assert main(tune_cmd(tmp_path, 2, *extra)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("deepq: error: " + says), err
    argv = [a for a in tune_cmd(tmp_path, 2) if a not in ("--dir", str(tmp_path / "study"))]
    assert main([*argv, "--study", "../up"]) == 2
    assert "--study '../up': the default --dir, runs/tune-STUDY, must be one folder name" in capsys.readouterr().err
    with contextlib.closing(sqlite3.connect(other)) as conn:
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    assert not list(tmp_path.glob("study/trial-*"))


def test_a_study_with_other_settings_or_a_foreign_dir_is_one_line(studied: tuple[Path, list[str]], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    tmp, _ = studied
    assert main(tune_cmd(tmp, 6, "--total_steps", "4000")) == 2
    assert "was made with other settings (total_steps 3000 there, 4000 here)" in capsys.readouterr().err
    (tmp_path / "study" / "trial-0").mkdir(parents=True)  # a new study, and a DIR that holds another's runs
    assert main(tune_cmd(tmp_path, 2)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds trial-0, which study 'cartpole'" in err


# Parallel workers (slow: two processes training side by side) ------------------------------------------------------

@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "deepq.cli", *tune_cmd(tmp_path, 6)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    finished = [t for t in trials_of(tmp_path) if t.state in (State.COMPLETE, State.PRUNED)]
    assert 6 <= len(finished) <= 7  # a worker that found 5 finished starts one more: at most one extra per worker
    assert all(out.count("\ntrial ") >= 1 for out, _ in outs)  # both trained some
    ends = [out.splitlines()[-3] for out, _ in outs]  # "N of 6 trials finished: ..." before the best lines
    assert all(e.startswith(("6 of 6 trials finished",  # it saw the count reach 6, or the other's extra trial:
                             "7 trials finished, 6 asked (other workers finished the ones they had started)"))
               for e in ends), ends
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == len(finished)
