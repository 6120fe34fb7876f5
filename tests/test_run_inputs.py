"""What a user types or a file holds, checked before it is used: run names and paths that would escape runs/,
seeds no generator takes, sizes the replay cannot hold, a config.json or metrics.csv that is damaged, a run on a
read-only disk, a run another process holds. Each is one line (or, for a run that trained, a warning), never a
traceback. Real subprocesses, a real read-only filesystem."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import deepq
from tests.disk_harness import tmpfs
from tests.test_nothing_lost import cli, one_line_error, small, train_cli, wait_for


def run_cli(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), capture_output=True, text=True, cwd=cwd, timeout=300)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "a" * 300, "tab\there"])
def test_a_run_name_is_one_folder_under_runs(tmp_path: Path, name: str) -> None:
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    line = one_line_error(run_cli("train", "cartpole", "--name", name, "--total_steps", "100", cwd=work))
    assert "name=" in line and "one folder name" in line
    assert [p.name for p in tmp_path.rglob("*")] == ["work", "deep"]  # nothing written, inside runs/ or out


def test_a_config_file_cannot_name_a_run_outside_runs(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_text(json.dumps({"env": "CartPole-v1", "name": "../escaped"}))
    line = one_line_error(run_cli("train", "--config", str(tmp_path / "c.json"), cwd=tmp_path))
    assert "c.json" in line and "name='../escaped'" in line
    assert not (tmp_path.parent / "escaped-0").exists() and not list(tmp_path.glob("runs"))


@pytest.mark.parametrize("seed", ["1e30", "-1", "4294967296"])
def test_a_seed_every_generator_takes(tmp_path: Path, seed: str) -> None:
    line = one_line_error(run_cli("train", "cartpole", "--seed", seed, "--run_dir", str(tmp_path / "r")))
    assert "seed must be an integer in [0, 4294967295]" in line and not (tmp_path / "r").exists()
    deepq.Config(seed=2**32 - 1).validate()  # the largest is taken


def test_more_envs_than_the_replay_holds_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_cli("train", "cartpole", "--num_envs", "100000", "--run_dir", str(tmp_path / "r")))
    assert "buffer_size=50,000 is below num_envs=100,000" in line and not (tmp_path / "r").exists()


def test_a_run_dir_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    bad = bytes(tmp_path) + b"/r\xff"
    result = subprocess.run([*map(str.encode, cli("train", "cartpole", "--total_steps", "100", "--run_dir")), bad],
                            capture_output=True, text=True, timeout=300)
    assert "run_dir must be a path in UTF-8" in one_line_error(result)
    assert not list(tmp_path.iterdir())  # TensorBoard failed on it after the folder was made


def test_help_after_a_name_that_is_no_preset_or_env_says_so() -> None:
    line = one_line_error(run_cli("train", "nosuchpreset", "--help"))
    assert "'nosuchpreset'" in line and "deepq presets" in line


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "r"
    deepq.train(small(run, total_steps=1_000))
    return run


def copy_of(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-r", str(run), str(to)], check=True)
    return to


def test_a_config_json_whose_network_is_an_object_is_one_line(finished: Path, tmp_path: Path) -> None:
    run = copy_of(finished, tmp_path / "r")
    saved = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**saved, "network": {"layers": 3}}))
    line = one_line_error(run_cli("train", "--resume", str(run), "--total_steps", "2000"))
    assert "config.json" in line and "network=" in line and "null" in line


def test_a_damaged_metrics_line_does_not_fail_a_run_that_trained(finished: Path, tmp_path: Path) -> None:
    run = copy_of(finished, tmp_path / "r")
    lines = (run / "metrics.csv").read_bytes().split(b"\n")
    lines[3] = b"\xff\xfe garbage,\x00,zz"  # before the checkpoint's bytes: the resume keeps it
    (run / "metrics.csv").write_bytes(b"\n".join(lines))
    (run / "learning_curve.png").unlink()
    result = run_cli("train", "--resume", str(run), "--total_steps", "2000", "--progress", "false")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert (run / "learning_curve.png").stat().st_size > 0  # drawn without the damaged line


def test_a_plot_that_cannot_be_drawn_is_a_warning(finished: Path, tmp_path: Path) -> None:
    run = copy_of(finished, tmp_path / "r")
    (run / "learning_curve.png").unlink()
    (run / "learning_curve.png").mkdir()  # a folder where the picture goes
    result = run_cli("train", "--resume", str(run), "--total_steps", "2000", "--progress", "false")
    assert result.returncode == 0, result.stderr
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and "learning_curve.png was not drawn" in warning[0] and "Traceback" not in result.stderr
    assert deepq.load(run / "agent.pt") is not None


def test_resume_says_where_it_continues_with_the_progress_bar_off(finished: Path, tmp_path: Path) -> None:
    run = copy_of(finished, tmp_path / "r")
    result = run_cli("train", "--resume", str(run), "--total_steps", "1500", "--progress", "false")
    assert result.returncode == 0 and f"resuming {run} at step 1,000 of 1,500" in result.stdout, result.stderr


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs, remounted read-only by the test."""
    yield from tmpfs(tmp_path, "8m")


def test_resume_on_a_read_only_disk_is_one_line(finished: Path, read_only_disk: Path) -> None:
    run = copy_of(finished, read_only_disk / "r")
    (run / ".lock").unlink()  # as a copy made elsewhere would be
    subprocess.run(["mount", "-o", "remount,ro", str(read_only_disk)], check=True)
    line = one_line_error(run_cli("train", "--resume", str(run), "--total_steps", "2000"))
    assert "Read-only file system" in line and "writable disk" in line


def test_resume_of_a_run_held_before_its_first_checkpoint_names_the_holder(tmp_path: Path) -> None:
    run = tmp_path / "busy"  # e.g. a sweep's run, still before its first checkpoint
    first = subprocess.Popen(train_cli(run, 1_000_000, "--eval_interval", "0", "--checkpoint_interval", "0"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(run / "config.json", first)
        time.sleep(0.5)
        line = one_line_error(run_cli("train", "--resume", str(run)))
        assert f"another deepq process (pid {first.pid}) is training it" in line
        assert first.poll() is None
    finally:
        first.kill()
        first.wait()


def test_more_threads_than_cpus_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_cli("train", "cartpole", "--threads", "1e6", "--run_dir", str(tmp_path / "r")))
    assert "threads=1,000,000 is more than the" in line and not (tmp_path / "r").exists()


def test_a_search_tree_that_cannot_fit_is_one_line(tmp_path: Path) -> None:
    line = one_line_error(run_cli("train", "tictactoe", "--target", "mcts", "--mcts_simulations", "1e12",
                                  "--run_dir", str(tmp_path / "r")))
    assert "mcts_simulations=1,000,000,000,000 needs" in line and "lower mcts_simulations" in line


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    proc = subprocess.Popen(cli("presets"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone (`deepq presets | head -0`)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 141 and err == "", err


@pytest.mark.parametrize("kind", ["device", "fifo"])
def test_a_config_file_that_never_ends_is_one_line(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "c.json"  # /dev/zero was read for ever, a FIFO blocked on open; neither answered SIGTERM
    path.symlink_to("/dev/zero") if kind == "device" else os.mkfifo(path)
    line = one_line_error(run_cli("train", "--config", str(path)))
    assert "c.json cannot be read (not a regular file" in line
