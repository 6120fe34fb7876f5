"""Nothing a user does loses a run: a run directory that holds a run, a second process, a kill while a resume
cuts metrics.csv back, signals, a copied checkpoint, leftovers of a killed write, a full disk, and envs that
return NaN, wrong shapes or non-numbers. Real subprocesses, real signals, a real full filesystem."""

from __future__ import annotations

import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import deepq
from deepq.errors import EnvError, RunDirError
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path
from tests.disk_harness import tmpfs

SMALL: dict[str, Any] = dict(env="CartPole-v1", total_steps=3_000, learning_starts=200, train_freq=2, batch_size=32,
                             buffer_size=2_000, hidden_sizes=(32, 32), target_update_interval=100,
                             eps_decay_steps=1_000, eval_interval=1_000, eval_episodes=2, checkpoint_interval=1_000,
                             progress=False, lr=1e-3)


def small(run_dir: Path, **kw: Any) -> deepq.Config:
    return deepq.Config(**{**SMALL, "run_dir": str(run_dir), **kw})


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepq.cli", *args]


def train_cli(run_dir: Path, total_steps: int, *extra: str) -> list[str]:
    args = cli("train", "CartPole-v1", "--run_dir", str(run_dir), "--total_steps", str(total_steps))
    for k, v in SMALL.items():
        if k not in ("env", "total_steps"):
            args += [f"--{k}", *(map(str, v) if isinstance(v, tuple) else [str(v)])]
    return [*args, *extra]


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's answer to bad input: exit 2 and one line on stderr, no traceback."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("deepq: error: "), result.stderr
    return lines[0]


def wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "training ended before writing the file"
        assert time.monotonic() < end, f"no {path} after {timeout}s"
        time.sleep(0.01)


def files_of(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run but its lock file (which holds the pid of the last process that had the run)."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
            if p.is_file() and p.name != ".lock"}


# ---- the run directory ------------------------------------------------------------------------------------

def test_a_fresh_run_into_a_directory_holding_a_run_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    run = tmp_path / "x"
    subprocess.run(train_cli(run, 1_000), check=True, capture_output=True)
    before = files_of(run)
    line = one_line_error(subprocess.run(train_cli(run, 1_000, "--seed", "7"), capture_output=True, text=True))
    assert "already holds a run" in line and f"--resume {run}" in line and "--overwrite" in line
    assert files_of(run) == before  # agent.pt, metrics.csv, config.json, events: all as they were
    with pytest.raises(RunDirError, match="already holds a run"):
        deepq.train(small(run, total_steps=1_000))


def test_overwrite_replaces_the_run_and_its_old_events(tmp_path: Path) -> None:
    run = tmp_path / "x"
    deepq.train(small(run, total_steps=1_000))
    old_events = set(run.glob("events.out.tfevents.*"))
    deepq.train(small(run, total_steps=1_000, seed=3), overwrite=True)
    assert not old_events & set(run.glob("events.out.tfevents.*"))  # no old events mixed with the new ones
    assert '"seed": 3' in (run / "config.json").read_text()
    result = subprocess.run(train_cli(run, 1_000, "--overwrite"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_second_process_on_a_run_directory_is_refused_naming_the_pid(tmp_path: Path) -> None:
    run = tmp_path / "busy"
    first = subprocess.Popen(train_cli(run, 1_000_000, "--eval_interval", "0"), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(checkpoint_path(run), first)
        for second in (train_cli(run, 1_000), cli("train", "--resume", str(run)),
                       train_cli(run, 1_000, "--overwrite")):
            line = one_line_error(subprocess.run(second, capture_output=True, text=True))
            assert f"in use by another deepq process (pid {first.pid})" in line
        assert first.poll() is None  # the first run goes on untouched
    finally:
        first.kill()
        first.wait()
    # SIGKILL leaves no stale lock: the run resumes at once.
    resumed = subprocess.run(cli("train", "--resume", str(run), "--total_steps", "3000"), capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr


def killed_run(tmp_path: Path) -> tuple[Path, bytes]:
    """A run SIGKILLed after its checkpoint at step 2000, with rows past it in metrics.csv; and the rows up
    to that checkpoint."""
    run = tmp_path / "r"
    # Started with a long budget so that it is surely still running when killed; it is resumed with 4,000
    # (a resume may change total_steps, which does not change the steps before it).
    proc = subprocess.Popen(train_cli(run, 1_000_000, "--checkpoint_interval", "2000"), stdout=subprocess.DEVNULL)
    wait_for(checkpoint_path(run), proc)
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    assert not (run / "agent.pt").exists(), "the run finished before it was killed; the test proves nothing"
    kept = safe_load(checkpoint_path(run), CHECKPOINT_FORMAT)["metrics_bytes"]
    rows = (run / "metrics.csv").read_bytes()[:kept]
    assert rows.count(b"\n") > 20
    return run, rows


@pytest.fixture(scope="module")
def reference_metrics(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """metrics.csv of killed_run's run when nothing stops it."""
    reference = tmp_path_factory.mktemp("reference") / "r"
    subprocess.run(train_cli(reference, 4_000, "--checkpoint_interval", "2000"), check=True, capture_output=True)
    return (reference / "metrics.csv").read_bytes()


def finish_and_compare(run: Path, reference: bytes) -> None:
    subprocess.run(cli("train", "--resume", str(run), "--total_steps", "4000"), check=True, capture_output=True)
    assert (run / "metrics.csv").read_bytes() == reference


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace (apt-get install strace)")
def test_a_kill_inside_the_resumes_first_write_to_metrics_loses_no_earlier_row(tmp_path: Path,
                                                                                reference_metrics: bytes) -> None:
    # strace kills the resumed process at its first write(2) to metrics.csv. Before the fix, resume reopened
    # metrics.csv for writing (truncating it) and wrote the kept rows back: such a kill left an empty file.
    run, rows = killed_run(tmp_path)
    metrics = run / "metrics.csv"
    killed = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "-P", str(metrics), "-e", "trace=write",
                             "-e", "inject=write:signal=KILL", *cli("train", "--resume", str(run))],
                            capture_output=True)
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stderr
    assert metrics.read_bytes() == rows
    finish_and_compare(run, reference_metrics)


def test_a_write_failing_while_resume_cuts_metrics_back_loses_no_earlier_row(tmp_path: Path,
                                                                              reference_metrics: bytes) -> None:
    # A file-size limit below metrics.csv's size: every write that would extend a file past it fails (EFBIG),
    # as a full disk would. Before the fix, resume rewrote metrics.csv from the start and lost its rows.
    run, rows = killed_run(tmp_path)
    limit = len(rows) // 2
    assert limit > (run / "config.json").stat().st_size

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    failed = subprocess.run(cli("train", "--resume", str(run)), preexec_fn=cap, capture_output=True, text=True)
    assert "File too large" in one_line_error(failed)
    assert (run / "metrics.csv").read_bytes() == rows
    finish_and_compare(run, reference_metrics)


def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    deepq.train(small(a, total_steps=2_000))
    deepq.train(small(b, total_steps=2_000, lr=5e-4))  # same env, seed and shapes; another run
    metrics = (a / "metrics.csv").read_bytes()
    checkpoint_path(a).write_bytes(checkpoint_path(b).read_bytes())
    line = one_line_error(subprocess.run(cli("train", "--resume", str(a), "--total_steps", "4000"),
                                         capture_output=True, text=True))
    assert "belongs to another run" in line
    assert (a / "metrics.csv").read_bytes() == metrics  # none of its rows were dropped


def test_leftovers_of_a_killed_write_are_removed_when_the_run_starts_again(tmp_path: Path) -> None:
    run = tmp_path / "r"
    deepq.train(small(run, total_steps=1_000))
    leftover = run / "checkpoint" / ".checkpoint.pt.k3j_x9q2.tmp"  # what atomic_save leaves when SIGKILLed
    leftover.write_bytes(b"\0" * 100_000)
    deepq.train(small(run, total_steps=2_000), resume=run)
    assert not leftover.exists()


def test_a_damaged_metrics_csv_stops_a_resume_in_one_line_and_is_left_as_it_is(tmp_path: Path) -> None:
    run = tmp_path / "r"
    deepq.train(small(run, total_steps=1_000))
    (run / "metrics.csv").write_bytes(b"\x00\xff garbage\n1,2,3\n")
    line = one_line_error(subprocess.run(cli("train", "--resume", str(run), "--total_steps", "2000"),
                                         capture_output=True, text=True))
    assert "metrics.csv is damaged" in line and "left as it is" in line
    assert (run / "metrics.csv").read_bytes() == b"\x00\xff garbage\n1,2,3\n"


def test_resume_says_where_it_continues(tmp_path: Path) -> None:
    run = tmp_path / "r"
    deepq.train(small(run, total_steps=1_000))
    out = subprocess.run(cli("train", "--resume", str(run), "--total_steps", "2000", "--progress", "true"),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"resuming {run} at step 1,000 of 2,000" in out.stdout


# ---- signals ----------------------------------------------------------------------------------------------

def test_a_second_signal_stops_at_once() -> None:
    code = ("import os, signal, time\n"
            "from deepq.signals import Interrupts\n"
            "with Interrupts() as i, i.deferred() as d:\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('deferred', d.signum, flush=True)\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    time.sleep(5)\n"
            "    print('not stopped')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout == f"deferred {int(signal.SIGTERM)}\n" and result.returncode == -signal.SIGTERM


# ---- a full disk ------------------------------------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 320 KiB filesystem."""
    yield from tmpfs(tmp_path, "320k")


def test_a_disk_that_fills_at_a_checkpoint_stops_in_one_line_and_keeps_the_previous_one(small_disk: Path) -> None:
    run = small_disk / "r"
    # One checkpoint fits; a second needs room for the new file beside the old one, which the disk lacks.
    args = train_cli(run, 6_000, "--buffer_size", "6000", "--checkpoint_interval", "2000", "--eval_interval", "0")
    # checkpoints: ~130 KB at step 2000, ~260 KB at 4000 (the replay memory fills)
    result = subprocess.run(args, capture_output=True, text=True)
    line = one_line_error(result)
    assert "No space left on device" in line and "--resume" in line, line
    step = safe_load(checkpoint_path(run), CHECKPOINT_FORMAT)["loop"]["step"]
    assert step == 2_000 and f"step {step:,}) is intact" in line
    assert not [p for p in run.rglob(".*.tmp")]


# ---- what an env returns ----------------------------------------------------------------------------------

class Returns(gym.Env[np.ndarray, int]):
    """A 4-vector env that returns `obs` and `reward` at its step `at` (and ordinary values before)."""

    observation_space = gym.spaces.Box(-10, 10, (4,), np.float32)
    action_space = gym.spaces.Discrete(2)  # type: ignore[assignment]

    def __init__(self, at: int, obs: Any = None, reward: Any = 0.0) -> None:
        self.at, self.bad_obs, self.bad_reward, self.t = at, obs, reward, 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action: int) -> Any:
        self.t += 1
        if self.t == self.at:
            obs = np.zeros(4, np.float32) if self.bad_obs is None else self.bad_obs
            return obs, self.bad_reward, False, False, {}
        return np.full(4, 0.1 * (self.t % 7), np.float32), 1.0, self.t % 50 == 0, False, {}


@pytest.mark.parametrize(("obs", "reward", "expect"), [
    (None, float("nan"), "returned a reward of nan"),
    (None, float("inf"), "returned a reward of inf"),
    (np.array([0, np.nan, 0, 0], np.float32), 0.0, "returned an observation of nan (element 1)"),
    (np.zeros(1, np.float32), 0.0, "got ndarray of shape (1,)"),  # was broadcast to (4,) and trained on
    (np.float32(0.5), 0.0, "got float32 of shape ()"),
    (np.zeros(10, np.float32), 0.0, "got ndarray of shape (10,)"),
    ("four", 0.0, "got 'four'"),
    (None, "1.0x", "returned the reward '1.0x' (str)"),
    (None, None, "returned the reward None"),
], ids=["nan-reward", "inf-reward", "nan-obs", "short-obs", "scalar-obs", "long-obs", "str-obs", "str-reward",
        "none-reward"])
def test_env_output_is_checked_at_the_step_before_it_enters_replay(tmp_path: Path, obs: Any, reward: Any,
                                                                   expect: str) -> None:
    cfg = small(tmp_path / "r", env=lambda: Returns(at=120, obs=obs, reward=reward), eval_interval=0,
                checkpoint_interval=100)
    with pytest.raises(EnvError) as e:
        deepq.train(cfg)
    text = str(e.value)
    assert expect in text and "Returns (env 0)" in text and "in episode 3, at its step 20" in text
    assert "training env step 120" in text and "lr" not in text  # not blamed on the learning rate
    assert safe_load(checkpoint_path(tmp_path / "r"), CHECKPOINT_FORMAT)["loop"]["step"] == 100


def test_a_float_frame_from_a_pixel_env_is_refused(tmp_path: Path) -> None:
    class Pixels(gym.Env[np.ndarray, int]):
        observation_space = gym.spaces.Box(0, 255, (1, 8, 8), np.uint8)
        action_space = gym.spaces.Discrete(2)  # type: ignore[assignment]

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            return np.zeros((1, 8, 8), np.uint8), {}

        def step(self, action: int) -> Any:
            return np.full((1, 8, 8), 0.5), 0.0, False, False, {}  # 0.5 would be stored as 0

    with pytest.raises(EnvError, match="dtype float64"):
        deepq.train(small(tmp_path / "p", env=Pixels, arch="mlp", eval_interval=0))


# ---- what the user sees -----------------------------------------------------------------------------------

def test_an_early_stop_says_why_and_the_final_evaluation_is_logged(tmp_path: Path) -> None:
    run = tmp_path / "s"
    out = subprocess.run(train_cli(run, 3_000, "--stop_at_return", "0", "--progress", "true"), capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert "training ended at step 1,000: solved at step 1,000" in out.stdout
    assert "final evaluation of" in out.stdout and out.stdout.count("final evaluation: mean") == 1
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [r["eval_kind"] for r in rows if r["eval_kind"]] == ["periodic", "final"]


def test_a_run_that_cannot_learn_warns(tmp_path: Path) -> None:
    out = subprocess.run(train_cli(tmp_path / "w", 150), capture_output=True, text=True)  # learning_starts 200
    assert out.returncode == 0, out.stderr
    assert "warning: total_steps (150) <= learning_starts (200)" in out.stderr


def test_an_env_factory_names_its_run_after_the_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = deepq.Config(**{**SMALL, "total_steps": 300, "env": lambda: gym.make("CartPole-v1")})
    agent = deepq.train(cfg)
    assert agent.run_dir is not None
    assert agent.run_dir.name.startswith("CartPole-v1-0-"), agent.run_dir


def test_the_self_play_bar_says_whose_return_it_shows(tmp_path: Path) -> None:
    out = subprocess.run(cli("train", "tictactoe", "--run_dir", str(tmp_path / "t"), "--total_steps", "600",
                             "--learning_starts", "100", "--eval_interval", "0", "--progress", "true"),
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "1st-player return" in out.stdout and " return " not in out.stdout.replace("1st-player return ", "")


def test_files_a_run_writes_respect_the_umask(tmp_path: Path) -> None:
    run = tmp_path / "u"
    old = os.umask(0o022)
    try:
        deepq.train(small(run, total_steps=1_000))
    finally:
        os.umask(old)
    for name in ("config.json", "agent.pt", "checkpoint/checkpoint.pt", "metrics.csv"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name


def test_minatar_episodes_have_a_time_limit_so_an_evaluation_ends() -> None:
    from deepq.envs.gym import make_env

    env = make_env("MinAtar/Seaquest-v1", cfg=deepq.Config(env="MinAtar/Seaquest-v1", max_episode_frames=50))
    env.reset(seed=0)
    steps = 0
    terminated = truncated = False
    while not (terminated or truncated) and steps < 1_000:  # an agent that never loses would play on without one
        _, _, terminated, truncated, _ = env.step(0)
        steps += 1
    assert terminated or (truncated and steps == 50)


def test_a_bad_eval_opponent_is_one_line(tmp_path: Path) -> None:
    run = tmp_path / "t"
    subprocess.run(cli("train", "tictactoe", "--run_dir", str(run), "--total_steps", "300", "--learning_starts", "100",
                       "--eval_interval", "0", "--eval_episodes", "1", "--progress", "false"), check=True,
                   capture_output=True)
    for bad in ("strong", "mcts:abc"):
        line = one_line_error(subprocess.run(cli("eval", str(run), "--opponent", bad), capture_output=True, text=True))
        assert f"opponent={bad!r} is not valid: use 'random', 'perfect' (" in line and "or 'mcts:N' (" in line


def test_the_python_api_suggests_the_deepq_name_of_a_field_from_sb3() -> None:
    with pytest.raises(deepq.ConfigError, match=r"'learning_rate' \(did you mean 'lr'\?\)"):
        deepq.preset("cartpole", learning_rate=1e-3)


def test_an_id_with_a_slash_names_one_run_folder() -> None:
    assert deepq.Config(env="MinAtar/Breakout-v1", seed=2).run_name == "MinAtar-Breakout-v1"
