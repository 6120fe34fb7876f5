"""deepq sweep, with real `deepq train` subprocesses on tiny CartPole runs: the sweep directory's layout and a line
per run; the same command again skips finished runs; Ctrl-C (a real SIGINT to a real `deepq sweep`) checkpoints the
runs and the printed command resumes them; a changed sweep into the same --dir and bad input are one line before
anything is written; with a real local Ray, the runs are Ray tasks (and Ctrl-C cancels them: a slow test)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from process_harness import processes_with, wait_until_handled
from ray_lock import one_ray_at_a_time

import deepq
from deepq.cli import main
from deepq.research.sweep import Job, ended
from deepq.training.ray_cluster import LOOPBACK_ONLY

assert os.environ.get(LOOPBACK_ONLY) == "0"  # tests/conftest.py, before Ray's first import: loopback only
TINY = ["--total_steps", "1500", "--common", "eval_interval=500", "--common", "eval_episodes=2",
        "--common", "learning_starts=500"]
LRS = {"lr=0.001": 0.001, "lr=0.0005": 0.0005}


def sweep_argv(sweep: Path, *extra: str, seeds: int = 2, sets: tuple[str, ...] = ("lr=1e-3,5e-4",),
               target: str = "cartpole", tiny: list[str] = TINY) -> list[str]:
    return ["sweep", target, "--seeds", str(seeds), *(w for s in sets for w in ("--set", s)), *tiny,
            "--dir", str(sweep), *extra]


def rows(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def files(folder: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def local_ray() -> Any:
    """A real local Ray on loopback (one for the module: it takes seconds to start), as `deepq sweep --ray_address
    auto` finds one started on this machine."""
    ray = pytest.importorskip("ray")
    with one_ray_at_a_time():  # no other test's Ray meanwhile (tests/ray_lock.py says why)
        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                     logging_level="ERROR")
        yield ray
        if started:
            ray.shutdown()


def ray_tasks(ray: Any) -> int:
    return len([e for e in ray.timeline() if e.get("name") == "deepq.research.sweep.ray_task"])


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, str]:
    """A 2-setting x 2-seed sweep, two runs at a time: (its directory, exit code, stdout)."""
    sweep = tmp_path_factory.mktemp("sweep") / "sw"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(sweep_argv(sweep, "--parallel", "2"))
    return sweep, code, out.getvalue()


def test_a_sweep_writes_its_layout_and_a_line_per_run(swept: tuple[Path, int, str]) -> None:
    sweep, code, out = swept
    assert code == 0, out
    assert json.loads((sweep / "sweep.json").read_text()) == {
        "target": "cartpole", "seeds": [0, 1],
        "settings": [{"label": label, "overrides": {"lr": lr}} for label, lr in LRS.items()],
        "common": {"eval_interval": 500, "eval_episodes": 2, "learning_starts": 500, "total_steps": 1500},
        "version": 1}
    assert sorted(p.relative_to(sweep).as_posix() for p in (sweep / "runs").glob("*/*")) == \
        ["runs/lr=0.0005/seed-0", "runs/lr=0.0005/seed-1", "runs/lr=0.001/seed-0", "runs/lr=0.001/seed-1"]
    finals: dict[str, list[float]] = {}
    for label, lr in LRS.items():
        for seed in (0, 1):
            run = sweep / "runs" / label / f"seed-{seed}"
            cfg = json.loads((run / "config.json").read_text())
            assert (cfg["lr"], cfg["seed"], cfg["total_steps"], cfg["eval_interval"], cfg["run_dir"]) == \
                (lr, seed, 1500, 500, str(run))
            assert cfg["threads"] == 1 and cfg["progress"] is False  # two at a time: a core each
            final = rows(run)[-1]
            assert (final["eval_kind"], final["step"]) == ("final", "1500") and (run / "agent.pt").is_file()
            log = (run / "train.log").read_text()
            assert log.startswith(f"$ deepq train cartpole --seed {seed} --run_dir {run} --progress false")
            assert "final evaluation: mean" in log
            line = re.escape(f"{label} seed {seed}: final eval {float(final['eval_return']):.1f} ± "
                             f"{float(final['eval_std']):.1f}, 1,500 env steps, not solved, ")
            assert re.search(rf"^\[[1-4]/4\] {line}\d+\.\d s$", out, re.M), out
            finals.setdefault(label, []).append(float(final["eval_return"]))
    for label, got in finals.items():
        assert re.search(rf"^{re.escape(label)} +2/2 +{sum(got) / 2:.1f} +0/2$", out, re.M), out
    assert out.splitlines()[-1] == f"compare them: deepq compare {sweep}"


def test_the_same_command_again_skips_finished_runs(swept: tuple[Path, int, str],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    sweep, _, first = swept
    before = files(sweep / "runs")
    assert main(sweep_argv(sweep, "--parallel", "2")) == 0
    out = capsys.readouterr().out
    assert "4 finished (skipped), 0 to resume, 0 to start" in out
    assert files(sweep / "runs") == before  # no train.log, metrics.csv or agent.pt rewritten
    assert "[1/4]" not in out and out.splitlines()[-4:] == first.splitlines()[-4:]  # the same table


@pytest.mark.parametrize(("change", "says"), [
    (dict(target="rainbow"), 'target "cartpole" -> "rainbow"'),
    (dict(seeds=1), "this command leaves out seed 1"),
    (dict(sets=("double=true,false",)), "this command leaves out lr=0.001, lr=0.0005"),
    (dict(tiny=[*TINY[:1], "2000", *TINY[2:]]), '"total_steps": 1500} -> {'),
])
def test_a_changed_sweep_into_the_same_dir_is_refused(swept: tuple[Path, int, str], change: dict[str, Any],
                                                       says: str, capsys: pytest.CaptureFixture[str]) -> None:
    sweep, _, _ = swept
    before = files(sweep / "runs"), (sweep / "sweep.json").read_text()
    assert main(sweep_argv(sweep, **change)) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"deepq: error: --dir {sweep} holds another sweep (") and err.count("\n") == 1, err
    assert says in err and "or sweep into another --dir" in err
    assert (files(sweep / "runs"), (sweep / "sweep.json").read_text()) == before


@pytest.mark.parametrize(("bad", "says"), [
    (["--set", "lr=abc"], "--set 'lr=abc': expected a number (such as 0.001 or 1e-3), got 'abc'"),
    (["--set", "lrr=1e-3"], "--set 'lrr=1e-3': 'lrr' is not a Config field (did you mean 'lr'?)"),
    (["--set", "double=maybe"], "--set 'double=maybe': expected true or false, got 'maybe'"),
    (["--set", "lr"], "--set 'lr': write FIELD=V1,V2, e.g. --set lr=1e-3,5e-4"),
    (["--set", "seed=1,2"], "seed is set by the sweep (the seeds are --seeds N and --first-seed S)"),
    (["--set", "loss=huber,hubr"], "setting loss=hubr: loss='hubr' is not valid"),
    (["--set", "lr=1e-3", "--common", "lr=5e-4"], "lr is given twice"),
    (["--ray_address", "127.0.0.1:1"], "nothing answers at ray_address '127.0.0.1:1'"),
])
def test_bad_input_is_one_line_before_anything_is_written(bad: list[str], says: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sweep", "cartpole", "--seeds", "2", *bad, "--dir", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepq: error: ") and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "sw").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_checkpoints_the_runs_and_the_same_command_resumes_them(signum: int, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C (SIGINT) or a scheduler's SIGTERM, by os.kill to a real `deepq sweep`: its run checkpoints, the sweep
    says so in one line and exits with 128 + the signal, leaving no process running; the line's command resumes."""
    sweep = tmp_path / "sw"
    argv = sweep_argv(sweep, seeds=1, sets=(), tiny=["--total_steps", "3000", *TINY[2:]])
    proc = subprocess.Popen([sys.executable, "-m", "deepq.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(len(rows(m.parent)) > 1 for m in sweep.glob("runs/*/*/metrics.csv")):  # a run is training
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert processes_with(str(sweep)) == []
    run = sweep / "runs" / "default" / "seed-0"
    assert (run / "checkpoint" / "checkpoint.pt").is_file() and not (run / "agent.pt").exists(), out
    run_id = json.loads((run / "config.json").read_text())["run_id"]
    assert out.splitlines()[-1] == "default seed 0: stopped, checkpoint saved" and "[1/1]" not in out, out
    assert err.startswith(f"stopped by {signal.Signals(signum).name}: ") and err.count("\n") == 1, err
    again = shlex.split(err.split(": ")[-1])
    assert again[:2] == ["deepq", "sweep"] and main(again[1:]) == 0  # the command it printed
    out = capsys.readouterr().out
    assert "0 finished (skipped), 1 to resume, 0 to start" in out
    assert re.search(r"^\[1/1\] default seed 0: final eval .*, 3,000 env steps, not solved, .* \(resumed\)$", out, re.M)
    assert json.loads((run / "config.json").read_text())["run_id"] == run_id  # the same run, not started again
    assert re.findall(r"^\$ deepq train (\S+)", (run / "train.log").read_text(), re.M) == ["cartpole", "--resume"]
    steps = [int(r["step"]) for r in rows(run) if r["episode_return"]]
    assert steps == sorted(set(steps)) and rows(run)[-1]["eval_kind"] == "final"  # no row written twice


def test_with_a_ray_address_each_run_is_a_ray_task(local_ray: Any, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    tasks = ray_tasks(local_ray)
    assert main(sweep_argv(tmp_path / "sw", "--ray_address", "auto", seeds=1, sets=())) == 0
    assert ray_tasks(local_ray) == tasks + 1 and local_ray.is_initialized()  # a Ray it joined is left running
    out = capsys.readouterr().out
    run = tmp_path / "sw" / "runs" / "default" / "seed-0"
    assert rows(run)[-1]["eval_kind"] == "final" and json.loads((run / "config.json").read_text())["threads"] == 1
    assert "1 to start, as many at a time as Ray has CPUs" in out, out
    assert re.search(r"^\[1/1\] default seed 0: final eval .*, 1,500 env steps, not solved, ", out, re.M), out


def sigint_when_training(runs: str, sweep: Path, done: threading.Event) -> None:
    """Ctrl-C, to this process (the sweep's), once one of `runs` has written an episode row: it is training."""
    deadline = time.monotonic() + 120
    while not done.is_set() and time.monotonic() < deadline:
        if any(len(rows(m.parent)) > 1 for m in sweep.glob(f"{runs}/metrics.csv")):
            os.kill(os.getpid(), signal.SIGINT)
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_ctrl_c_cancels_the_ray_tasks_and_the_same_command_resumes_them(
        local_ray: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second seed extends a sweep: its finished run is skipped, the new one is a Ray task. Ctrl-C (a real SIGINT
    to this process, the sweep's) cancels it, its run checkpoints; the same command resumes it. The runs are
    10,000 steps that do not stop once solved, so that the cancelled one is still training when the signal
    reaches it: the signal goes at its first evaluation (500 steps, when metrics.csv is first flushed), and
    1,500-step runs could end first on a fast machine."""
    sweep = tmp_path / "sw"
    long = ["--total_steps", "10000", "--common", "stop_at_return=None", *TINY[2:]]  # evaluated, never stopped
    assert main(sweep_argv(sweep, seeds=1, sets=(), tiny=long)) == 0
    capsys.readouterr()
    before, argv = files(sweep / "runs"), sweep_argv(sweep, "--ray_address", "auto", seeds=2, sets=(), tiny=long)
    done = threading.Event()
    threading.Thread(target=sigint_when_training, args=("runs/*/seed-1", sweep, done), daemon=True).start()
    try:
        assert main(argv) == 130
    finally:
        done.set()
    stopped = capsys.readouterr()
    run = sweep / "runs" / "default" / "seed-1"
    assert (run / "checkpoint" / "checkpoint.pt").is_file() and not (run / "agent.pt").exists(), stopped
    run_id = json.loads((run / "config.json").read_text())["run_id"]
    assert "stopped by SIGINT" in stopped.err, stopped
    assert "1 finished (skipped), 0 to resume, 1 to start" in stopped.out, stopped.out
    assert "default seed 1: stopped, checkpoint saved" in stopped.out, stopped.out
    tasks = ray_tasks(local_ray)
    assert main(argv) == 0 and ray_tasks(local_ray) == tasks + 1
    out = capsys.readouterr().out
    assert "1 finished (skipped), 1 to resume, 0 to start" in out, out
    assert json.loads((sweep / "sweep.json").read_text())["seeds"] == [0, 1]
    assert all(files(sweep / "runs")[p] == t for p, t in before.items())  # the finished run is left as it was
    assert rows(run)[-1]["eval_kind"] == "final"
    assert re.search(r"^\[2/2\] default seed 1: final eval .*, 10,000 env steps.* \(resumed\)$", out, re.M), out
    assert "stopped by SIGTERM at step" in (run / "train.log").read_text()  # from its task, cancelled
    assert json.loads((run / "config.json").read_text())["run_id"] == run_id  # the same run, resumed


def test_a_run_that_finished_as_the_sweep_was_stopped_counts_as_finished(swept: tuple[Path, int, str]) -> None:
    """A signal for the sweep can reach a run after its final evaluation: killed then (exit −15), it is complete."""
    run = swept[0] / "runs" / "lr=0.001" / "seed-0"
    text, ok = ended(Job("lr=0.001", 0, run), -15, 1.0, resumed=False, stopping=True)
    assert ok and text.startswith("lr=0.001 seed 0: final eval ") and "1,500 env steps" in text, text
    text, ok = ended(Job("lr=0.001", 0, run), -15, 1.0, resumed=False, stopping=False)
    assert not ok and text.startswith("lr=0.001 seed 0: failed (exit -15)"), text  # not stopping: a failure


def test_a_saved_config_is_swept_and_tuple_values_are_written_in_parentheses(tmp_path: Path) -> None:
    """The target may be a JSON file of Config fields (deepq tune's best.json): every run trains it with
    `deepq train --config FILE`, here with --set hidden_sizes=(16,16),(8,): values in parentheses, one each."""
    best = tmp_path / "best.json"
    best.write_text(json.dumps(deepq.Config(env="CartPole-v1", lr=7e-4, run_dir="/gone").to_dict()))
    sweep = tmp_path / "sw"
    code = main(sweep_argv(sweep, target=str(best), seeds=1, sets=("hidden_sizes=(16,16),(8,)",),
                           tiny=["--total_steps", "600", "--common", "learning_starts=200",
                                 "--common", "eval_interval=0", "--common", "eval_episodes=1"]))
    assert code == 0
    for label, hidden in (("hidden_sizes=16_16", [16, 16]), ("hidden_sizes=8", [8])):
        saved = json.loads((sweep / "runs" / label / "seed-0" / "config.json").read_text())
        assert (saved["lr"], saved["hidden_sizes"], saved["total_steps"]) == (7e-4, hidden, 600)
    assert main(["sweep", str(tmp_path / "missing.json"), "--seeds", "1", "--dir", str(tmp_path / "x")]) == 2


# ---- every count, seed and path checked before anything starts; every signal honoured ------------------------
MANY_LRS = ",".join(f"{1e-3 + i * 1e-7:.7f}" for i in range(200))


@pytest.mark.parametrize(("bad", "says"), [
    (["--seeds", "1e9"], "--seeds 1,000,000,000: at most 10,000 (a sweep's runs: each is a process"),
    (["--seeds", "100", "--set", f"lr={MANY_LRS}"], "--seeds 100 x 200 setting(s) of --set make 20,000 runs; a sweep "
                                                      "holds at most 10,000"),
    (["--seeds", "1", "--first-seed", "1e30"], "--first-seed 1,000,000,000,000,000,000,000,000,000,000: the seeds"),
    (["--seeds", "2", "--first-seed", "4294967295"], "the seeds 4,294,967,295 to 4,294,967,296 must lie in 0 to "
                                                     "4,294,967,295 (a training seed is 32-bit); give --first-seed "
                                                     "between 0 and 4,294,967,294"),
    (["--seeds", "1000", "--parallel", "1000"], "--parallel 1,000: 1,000 runs at a time need ~"),
    (["--seeds", "1", "--set", "env=CartPole-v1,evil"], "setting env=evil: unknown environment id 'evil'"),
    (["--seeds", "1", "--set", f"hidden_sizes=({','.join(['1'] * 200)})"],
     "its folder name is 412 bytes, more than a file name can be (255)"),
], ids=["a billion seeds", "20,000 runs", "seed 1e30", "seeds past 2**32-1", "1,000 at a time", "no such env",
        "a label too long"])
def test_what_cannot_run_is_one_line_before_anything_starts(bad: list[str], says: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Counts, seeds and settings that would hang (a billion seeds), fail in every run (a seed above 2**32 - 1, an
    env that is not there, a folder name too long) or not fit in memory together are refused as one line."""
    assert main(["sweep", "cartpole", *bad, "--dir", str(tmp_path / "sw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepq: error: ") and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "sw").exists()


def test_files_it_reads_and_the_dir_it_writes_are_checked_first(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A saved config whose seed is 1e400 (JSON's inf), a sweep.json whose seeds or labels no run can have, and a
    --dir that is a file or under one: one line each, naming the file or --dir, nothing run."""
    config = deepq.Config(env="CartPole-v1").to_dict()
    best = tmp_path / "best.json"
    best.write_text(json.dumps(config).replace('"seed": 0', '"seed": 1e400'))
    (tmp_path / "file").write_text("")
    seeds_inf, escape = tmp_path / "inf", tmp_path / "escape"
    for sweep, seeds, label in ((seeds_inf, "[1e400]", "default"), (escape, "[0]", "../../x")):
        sweep.mkdir()
        (sweep / "sweep.json").write_text(f'{{"target": "cartpole", "seeds": {seeds}, "settings": [{{"label": '
                                          f'"{label}", "overrides": {{}}}}], "common": {{}}, "version": 1}}')
    cases = [([str(best), "--dir", str(tmp_path / "a")], f"{best}: seed=inf is not valid"),
             (["cartpole", "--dir", str(seeds_inf)], f"{seeds_inf}/sweep.json is not a sweep.json written by deepq "
                                                     'sweep ("seeds" must be a list of integers from 0 to 4,294,967,'
                                                     "295, not [Infinity])"),
             (["cartpole", "--dir", str(escape)], "(the label '../../x' is not a folder name)"),
             (["cartpole", "--dir", str(tmp_path / "file")], f"--dir {tmp_path / 'file'}: it is a file, not a folder; "
                                                              "choose another --dir"),
             (["cartpole", "--dir", str(tmp_path / "file" / "sw")], f"{tmp_path / 'file'} is a file, not a folder")]
    for argv, says in cases:
        assert main(["sweep", *argv, "--seeds", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("deepq: error: ") and err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob("*/runs"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_the_sweep_is_checked_is_one_line_and_writes_nothing(signum: int, tmp_path: Path) -> None:
    """Checking 5,000 settings takes seconds (each one's Config, its env made once); a signal then stops the sweep
    at once with one line, exit 128 + the signal, before sweep.json or any run is made."""
    sweep = tmp_path / "sw"
    lrs = ",".join(f"{1e-3 + i * 1e-7:.7f}" for i in range(5000))
    proc = subprocess.Popen([sys.executable, "-m", "deepq.cli", "sweep", "cartpole", "--seeds", "1", "--set",
                             f"lr={lrs}", "--dir", str(sweep)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_until_handled(proc, signal.SIGTERM), proc.communicate()  # the command has started
        time.sleep(1.5)  # into the checks, which take 10 s or more
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err
    assert err == (f"deepq sweep: stopped by {signal.Signals(signum).name} while checking the sweep, before any run "
                   "or file was made; nothing to resume\n") and out == ""
    assert not sweep.exists()


def test_a_sweep_killed_outright_leaves_no_run_training(tmp_path: Path) -> None:
    """SIGKILL cannot be caught, so the sweep cannot pass it on; its runs (in sessions of their own, out of a
    terminal's reach) are sent SIGTERM by Linux when it dies, and stop as they do on SIGTERM."""
    sweep = tmp_path / "sw"
    never_done = ["--total_steps", "1000000", "--common", "stop_at_return=None", *TINY[2:]]  # not solved and ended
    argv = sweep_argv(sweep, seeds=1, sets=(), tiny=never_done)
    proc = subprocess.Popen([sys.executable, "-m", "deepq.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run = sweep / "runs" / "default" / "seed-0"
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.csv").is_file() and len(rows(run)) > 1):  # the run is training
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        proc.kill()
        proc.communicate(timeout=10)
        deadline = time.monotonic() + 30
        while processes_with(str(sweep)) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = processes_with(str(sweep))
    finally:
        for pid in processes_with(str(sweep)):
            os.kill(pid, signal.SIGKILL)
    assert left == []
    assert "stopped by SIGTERM" in (run / "train.log").read_text()  # the run's own line: it stopped, not killed
