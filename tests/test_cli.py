"""The `deepq` command, in-process through deepq.cli.main and as `python -m deepq.cli`."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import deepq
from deepq.cli import main

PRESET_NAMES = ["cartpole", "acrobot", "mountaincar", "lunarlander"]


def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepq.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_presets_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    for name, env in zip(PRESET_NAMES, ["CartPole-v1", "Acrobot-v1", "MountainCar-v0", "LunarLander-v3"],
                         strict=True):
        assert name in rows and env in rows[name]


def test_presets_subprocess(tmp_path: Path) -> None:
    proc = run_module("presets", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in PRESET_NAMES:
        assert re.search(rf"^{name}\s", proc.stdout, re.MULTILINE), proc.stdout


def test_unknown_name_subprocess(tmp_path: Path) -> None:
    proc = run_module("train", "CartPol-v1", "--progress", "false", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.startswith("deepq: error: ")
    assert "Did you mean CartPole-v1" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_unknown_name_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "CartPol-v1", "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepq: error: ") and "'CartPol-v1'" in err and "CartPole-v1?" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert not (tmp_path / "run").exists()


def test_misspelled_preset_suggests_the_preset(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "cartpol", "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepq: error: ")
    assert "cartpole" in err


def test_bad_value_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["train", "cartpole", "--lr", "-1", "--run_dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepq: error: lr=-1.0 is not valid")
    assert not (tmp_path / "run").exists()


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "cartpole", "--gama", "0.9"])
    assert exit_.value.code == 2
    assert "--gama" in capsys.readouterr().err


def test_train_needs_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train"]) == 2
    assert "needs a preset or env id" in capsys.readouterr().err


def test_train_help_lists_field_docs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert "Discount factor per env step, in [0, 1]. (default 0.99)" in out
    assert "--total_steps" in out and "Training length in env steps" in out
    assert "--resume" in out
    assert "--network" not in out  # Python-only field


def test_eval_missing_path(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["eval", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("deepq: error: ")


# ---- a tiny real training run ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 env steps of CartPole (a few seconds), shared by the tests below."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    code = main(["train", "CartPole-v1", "--total_steps", "600", "--learning_starts", "100",
                 "--eval_interval", "300", "--eval_episodes", "2", "--checkpoint_interval", "300",
                 "--run_dir", str(run_dir), "--progress", "false", "--device", "cpu"])
    assert code == 0
    return run_dir


def test_train_writes_the_run_directory(trained_run: Path) -> None:
    run_dir = trained_run
    for name in ("config.json", "metrics.csv", "agent.pt", "checkpoint/checkpoint.pt", "learning_curve.png"):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("events.out.tfevents.*")), "no TensorBoard events file"
    assert (run_dir / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    cfg = json.loads((run_dir / "config.json").read_text())
    assert (cfg["env"], cfg["total_steps"], cfg["learning_starts"], cfg["eval_episodes"]) == ("CartPole-v1", 600,
                                                                                              100, 2)
    ckpt = torch.load(run_dir / "checkpoint" / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ckpt["format"] == "deepq-checkpoint" and ckpt["loop"]["step"] == 600
    agent = deepq.load(run_dir)
    assert agent.q_values([0.0, 0.0, 0.0, 0.0]).shape == (2,)


def test_train_metrics_csv(trained_run: Path) -> None:
    run_dir = trained_run
    with (run_dir / "metrics.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert {"step", "episode_return", "eval_return"} <= set(reader.fieldnames or [])
        rows = list(reader)
    episodes = [r for r in rows if r["episode_return"]]
    evals = [r for r in rows if r["eval_return"]]
    assert len(episodes) >= 3  # 600 random-ish CartPole steps finish several episodes
    assert [(int(r["step"]), r["eval_kind"]) for r in evals] == [(300, "periodic"), (600, "periodic"), (600, "final")]
    steps = [int(r["step"]) for r in rows]
    assert steps == sorted(steps) and steps[-1] <= 600
    assert all(float(r["episode_return"]) >= 1 for r in episodes)  # CartPole pays 1 per step


def test_eval_prints_a_mean(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = trained_run
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--episodes", "2"]) == 0
    out = capsys.readouterr().out
    m = re.search(r"mean (\S+) ± (\S+) over 2 episodes", out)
    assert m, out
    returns = [float(x) for x in re.search(r"returns: (.*)", out).group(1).split()]  # type: ignore[union-attr]
    assert len(returns) == 2
    assert float(m.group(1)) == pytest.approx(sum(returns) / 2, abs=0.01)


def test_eval_video_records_an_mp4(trained_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("moviepy")
    assert main(["eval", str(trained_run / "agent.pt"), "--episodes", "1", "--video"]) == 0
    videos = list((trained_run / "videos").glob("*.mp4"))
    assert videos and videos[0].stat().st_size > 1_000
    assert "video:" in capsys.readouterr().out
