"""A signal stops deepq at every stage the same way: one line saying what was kept, exit 128 + the signal's number,
nothing left running (Ray's processes included), no folder left by a start that wrote nothing. Real subprocesses,
real signals, a real local Ray (on loopback), timed from outside."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray_lock import one_ray_at_a_time

from tests.test_nothing_lost import one_line_error

ray = pytest.importorskip("ray")

SMALL = ["--total_steps", "1000000", "--stop_at_return", "none", "--progress", "false", "--eval_interval", "0",
         "--hidden_sizes", "32", "32"]


def deepq_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepq.cli", *args]


@pytest.fixture(scope="module", autouse=True)
def _one_ray() -> Iterator[None]:
    """This module's tests start Rays: none of another test's may run meanwhile (tests/ray_lock.py says why)."""
    with one_ray_at_a_time():
        yield


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's folder for one test's processes (its sockets need a short path): a test's Ray, and what 'auto' finds,
    are its own, whatever other tests run beside it."""
    path = Path(tempfile.mkdtemp(prefix="dq", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def start(args: list[str], cwd: Path, ray_tmp: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp)}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)


def children(pid: int) -> set[int]:
    """Every live process descended from pid (read from /proc: Ray's gcs_server, raylet and its agents)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pids: set[int]) -> set[int]:
    left = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            left.add(pid)
    return left


def stop_when(proc: subprocess.Popen[str], ready: object, signum: int, timeout: float = 120) -> tuple[float, set[int]]:
    """Send `signum` once `ready()` holds; returns (seconds from the signal to the exit, every descendant seen)."""
    seen: set[int] = set()
    end = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < end, "never got ready"
        seen |= children(proc.pid)
        time.sleep(0.05)
    seen |= children(proc.pid)
    sent = time.monotonic()
    proc.send_signal(signum)
    while proc.poll() is None and time.monotonic() - sent < 60:
        seen |= children(proc.pid)
        time.sleep(0.05)
    return time.monotonic() - sent, seen


def assert_stopped(proc: subprocess.Popen[str], signum: int, says: str) -> str:
    _, err = proc.communicate(timeout=60)
    lines = [line for line in err.splitlines() if line.strip()]
    assert proc.returncode == 128 + signum, err
    assert len(lines) == 1 and says in lines[0] and signal.Signals(signum).name in lines[0], err
    return lines[0]


def ray_runs_here() -> bool:
    """A raylet runs on this machine (another test's Ray, say)."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"raylet" in (entry / "cmdline").read_bytes():
                return True
        except OSError:  # it ended meanwhile
            continue
    return False


def assert_nothing_running(seen: set[int]) -> None:
    end = time.monotonic() + 15  # Ray's processes end a moment after the shutdown that asked them to
    while alive(seen) and time.monotonic() < end:
        time.sleep(0.2)
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in alive(seen)}
    assert not left, f"still running: {left}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_ray_starts_is_one_line_and_leaves_nothing(tmp_path: Path, ray_tmp: Path, signum: int) -> None:
    run = tmp_path / "r"
    proc = start(deepq_cli("train", "cartpole", "--num_actors", "1", "--run_dir", str(run), *SMALL), tmp_path, ray_tmp)
    # Ray is starting once its GCS server runs (the node's other processes come after it)
    took, seen = stop_when(proc, lambda: any(b"gcs_server" in Path(f"/proc/{p}/cmdline").read_bytes()
                                             for p in alive(children(proc.pid))), signum)
    assert_stopped(proc, signum, "during set-up, before training began: nothing was written")
    assert took < 20, took  # ray.init finishes (2-5 s here), then Ray is shut down
    assert_nothing_running(seen)
    assert not run.exists()  # the folder this start made, its lock file included, is gone


def test_a_signal_while_waiting_for_an_actors_batch_stops_in_seconds(tmp_path: Path, ray_tmp: Path) -> None:
    run = tmp_path / "r"
    # one batch is 300,000 env steps: minutes of acting; the learner waits for it with the signal deferred
    proc = start(deepq_cli("train", "cartpole", "--num_actors", "1", "--actor_batch", "300000", "--run_dir",
                           str(run), *SMALL), tmp_path, ray_tmp)
    took, seen = stop_when(proc, lambda: (run / "config.json").exists() and len(alive(children(proc.pid))) > 3,
                           signal.SIGTERM)
    assert_stopped(proc, signal.SIGTERM, "at step 0: checkpoint saved")
    assert took < 15, took
    assert_nothing_running(seen)


def test_a_signal_during_the_final_evaluation_keeps_the_agent(tmp_path: Path, ray_tmp: Path) -> None:
    run = tmp_path / "r"
    args = deepq_cli("train", "CartPole-v1", "--total_steps", "300", "--learning_starts", "100", "--eval_episodes",
                     "1000000", "--progress", "false", "--run_dir", str(run))
    proc = start(args, tmp_path, ray_tmp)
    took, _ = stop_when(proc, lambda: (run / "agent.pt").exists() and (run / "checkpoint").exists(), signal.SIGTERM)
    line = assert_stopped(proc, signal.SIGTERM, "during the final evaluation")
    assert took < 10 and str(run / "agent.pt") in line and f"deepq eval {run}" in line
    import deepq

    assert deepq.load(run / "agent.pt").q_values([0.0, 0.0, 0.0, 0.0]).shape == (2,)


def test_eval_stops_on_sigterm_in_one_line(tmp_path: Path, ray_tmp: Path) -> None:
    import deepq

    cfg = deepq.Config(total_steps=300, learning_starts=100, eval_episodes=1, progress=False,
                       run_dir=str(tmp_path / "r"))
    deepq.train(cfg)
    proc = start(deepq_cli("eval", str(tmp_path / "r"), "--episodes", "1000000"), tmp_path, ray_tmp)
    t0 = time.monotonic()
    took, _ = stop_when(proc, lambda: time.monotonic() - t0 > 4, signal.SIGTERM)
    assert_stopped(proc, signal.SIGTERM, "deepq: stopped by SIGTERM")
    assert took < 5


def test_a_start_that_fails_after_the_folder_was_made_leaves_no_folder(tmp_path: Path) -> None:
    run = tmp_path / "r"  # made and locked first; the replay memory is refused after it (it held .lock)
    result = subprocess.run(deepq_cli("train", "cartpole", "--buffer_size", "1e12", "--run_dir", str(run)),
                            capture_output=True, text=True, timeout=120)
    assert "buffer_size=1,000,000,000,000 needs" in one_line_error(result)
    assert not run.exists()
    kept = tmp_path / "mine"  # a folder the user made is kept, only the lock file goes
    kept.mkdir()
    one_line_error(subprocess.run(deepq_cli("train", "cartpole", "--buffer_size", "1e12", "--run_dir", str(kept)),
                                  capture_output=True, text=True, timeout=120))
    assert kept.is_dir() and not list(kept.iterdir())


def test_joining_no_cluster_leaves_no_run_folder(tmp_path: Path, ray_tmp: Path) -> None:
    end = time.monotonic() + 15  # the last test's Ray ends a moment after its shutdown
    while ray_runs_here() and time.monotonic() < end:
        time.sleep(0.2)
    if ray_runs_here():
        pytest.skip("a Ray runs on this machine (not this suite's): 'auto' would join it")  # Ray scans the processes
    run = tmp_path / "r"
    proc = start(deepq_cli("train", "cartpole", "--num_actors", "1", "--ray_address", "auto", "--run_dir", str(run),
                           *SMALL), tmp_path, ray_tmp)
    out, err = proc.communicate(timeout=120)
    line = one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    assert "Ray cluster at 'auto'" in line
    assert not run.exists()  # it had been left holding .lock


def test_more_actors_than_cpus_is_refused_at_once(tmp_path: Path) -> None:
    t0 = time.monotonic()
    result = subprocess.run(deepq_cli("train", "cartpole", "--num_actors", "1000", "--run_dir", str(tmp_path / "r")),
                            capture_output=True, text=True, timeout=120)
    line = one_line_error(result)
    assert f"this machine has {len(os.sched_getaffinity(0))}" in line and "--num_actors" in line
    assert time.monotonic() - t0 < 30 and not (tmp_path / "r").exists()


def test_actor_batches_that_cannot_fit_are_refused_before_ray_starts(tmp_path: Path, ray_tmp: Path) -> None:
    result = subprocess.run(deepq_cli("train", "cartpole", "--num_actors", "1", "--actor_batch", "1e9", "--run_dir",
                                      str(tmp_path / "r")), capture_output=True, text=True, timeout=120,
                            env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    line = one_line_error(result)
    assert "actor_batch" in line and "lower actor_batch or max_in_flight" in line
    assert not list(ray_tmp.iterdir())  # Ray never started


def test_a_step_made_long_by_a_setting_does_not_hold_a_signal_up(tmp_path: Path, ray_tmp: Path) -> None:
    run = tmp_path / "r"
    # a billion gradient steps per env step: the loop's check between steps never comes
    proc = start(deepq_cli("train", "CartPole-v1", "--gradient_steps", "1e9", "--learning_starts", "50",
                           "--checkpoint_interval", "20", "--progress", "false", "--run_dir", str(run)),
                 tmp_path, ray_tmp)
    took, _ = stop_when(proc, lambda: (run / "checkpoint" / "checkpoint.pt").exists() and time.sleep(1) is None,
                        signal.SIGTERM)
    line = assert_stopped(proc, signal.SIGTERM, "did not end within 5 s of the signal, so no new checkpoint")
    assert took < 10 and f"deepq train --resume {run}" in line
    found = re.search(r"at step ([\d,]+) .*, step ([\d,]+)\) is intact", line)
    assert found, line
    stopped, kept = (int(g.replace(",", "")) for g in found.groups())
    assert kept % 20 == 0 and kept <= stopped


def test_the_command_line_answers_signals_before_torch_loads() -> None:
    """`deepq` installs its handlers in main(); importing deepq.cli must not wait a second for torch (a signal in
    that second would end the process with Python's default: no line, a traceback for Ctrl-C)."""
    code = "import sys, deepq.cli; print(sorted(m for m in ('torch', 'numpy', 'gymnasium', 'ray') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
