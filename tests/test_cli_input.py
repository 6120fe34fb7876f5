"""What a user sees for what they type: each mistake is one `deepq: error:` line and exit code 2, numbers are
read the way people write them, --help is short and shows the named preset's values, any registered id of an
installed env family trains (alone or with a preset's settings), and third-party chatter stays off the terminal.

Terminal output is checked on real `python -m deepq.cli` subprocesses; tiny real training runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepq.cli import build_parser, config_from_args, main
from deepq.config import Config, groups
from deepq.errors import ConfigError
from deepq.presets import PRESETS

TINY = ["--eval_interval", "0", "--checkpoint_interval", "0", "--eval_episodes", "1", "--progress", "false",
        "--device", "cpu"]
ATARI_TINY = ["--total_steps", "100", "--learning_starts", "50", "--buffer_size", "500",
              "--max_episode_frames", "400", *TINY]


def deepq(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepq.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300, env=env)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (no usage dump, no traceback)."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("deepq: error: ")
    return lines[0]


def resolve(*argv: str) -> tuple[Config, str]:
    """The Config and the note `deepq train ARGV` would train with, without training."""
    cfg, resume, note = config_from_args(build_parser().parse_args(["train", *argv]))
    assert resume is None
    return cfg, note


# 1, 2: values argparse refuses, and integers as people write them ------------------------------------------------

@pytest.mark.parametrize(("argv", "expected"), [
    (["train", "cartpole", "--lr", "abc"], "deepq: error: --lr: expected a number (such as 0.001 or 1e-3), got 'abc'"),
    (["train", "cartpole", "--seed", "1.5"],
     "deepq: error: --seed: expected an integer (such as 3, 100_000 or 1e5), got '1.5'"),
    (["eval", "some/run", "--episodes", "ten"], "deepq: error: --episodes: expected an integer"),
    (["play", "some/run", "--temperature", "hot"], "deepq: error: --temperature: expected a number"),
    (["play", "some/run", "--seat", "3"], "deepq: error: --seat: invalid choice: 3 (choose from 1, 2)"),
])
def test_bad_values_are_one_line(argv: list[str], expected: str, tmp_path: Path) -> None:
    assert one_error_line(deepq(*argv, cwd=tmp_path)).startswith(expected)


@pytest.mark.parametrize(("text", "value"), [("1e5", 100_000), ("2.5e4", 25_000), ("100_000", 100_000),
                                             ("1E3", 1_000), ("300", 300)])
def test_integer_fields_take_scientific_notation_and_underscores(text: str, value: int) -> None:
    args = build_parser().parse_args(["train", "cartpole", "--total_steps", text, "--hidden_sizes", text, "32"])
    assert args.total_steps == value and type(args.total_steps) is int
    assert args.hidden_sizes == [value, 32]


@pytest.mark.parametrize("text", ["1.5", "2.5e-1", "1e-3", "nan", "inf", "1e5x", "ten"])
def test_integer_fields_refuse_what_is_not_a_whole_number(text: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "cartpole", "--seed", text])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (f"deepq: error: --seed: expected an integer (such as 3, 100_000 or 1e5), "
                                       f"got {text!r}\n")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CartPole run whose lengths are written in scientific notation and with underscores."""
    run_dir = tmp_path_factory.mktemp("input") / "run"
    proc = deepq("train", "CartPole-v1", "--total_steps", "4e2", "--learning_starts", "1_00", *TINY,
                 "--run_dir", str(run_dir), cwd=run_dir.parent)
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_a_run_trains_with_scientific_notation(tiny_run: Path) -> None:
    saved = json.loads((tiny_run / "config.json").read_text())
    assert (saved["total_steps"], saved["learning_starts"]) == (400, 100)


# 3: unknown options, and no prefix matching ------------------------------------------------------------------------

def test_an_sb3_name_is_told_the_deepq_flag(tmp_path: Path) -> None:
    line = one_error_line(deepq("train", "cartpole", "--learning_rate", "1e-3", cwd=tmp_path))
    assert line.startswith("deepq: error: unknown option --learning_rate; did you mean --lr?")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("flag", "suggestion"), [
    ("--total_timesteps", "--total_steps"), ("--exploration_final_eps", "--eps_end"),
    ("--exploration_initial_eps", "--eps_start"), ("--exploration_fraction", "--eps_decay_steps"),
    ("--buffer", "--buffer_size"), ("--target_network_frequency", "--target_update_interval"),
    ("--learning-rate", "--lr"), ("--gama", "--gamma"), ("--learning_rate=3e-4", "--lr"),
])
def test_unknown_options_name_the_deepq_field(flag: str, suggestion: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "cartpole", flag, "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deepq: error: unknown option {flag.split('=')[0]}")
    assert f"did you mean {suggestion}?" in err
    if flag == "--exploration_fraction":
        assert "env steps" in err  # deepq's is a count of env steps, not a fraction


@pytest.mark.parametrize("prefix", ["--total_s", "--target_update", "--max_grad", "--eps_dec"])
def test_a_prefix_never_sets_a_field(prefix: str) -> None:
    with pytest.raises(SystemExit) as exit_:  # --total_s 10 once set total_steps, meant or not
        build_parser().parse_args(["train", "cartpole", prefix, "10"])
    assert exit_.value.code == 2


# 4: --help ---------------------------------------------------------------------------------------------------------

def _help(tmp_path: Path, *argv: str) -> str:
    proc = deepq("train", *argv, "--help", cwd=tmp_path, env={**os.environ, "COLUMNS": "80"})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    return proc.stdout


def _default(help_text: str, flag: str) -> str:
    flat = " ".join(help_text.split())  # undo argparse's line wrapping
    m = re.search(rf"{flag} \S+ .*?\(default ([^)]*)\)", flat)
    assert m, flag
    return m.group(1)


def test_train_help_lists_each_flag_once_in_config_sections(tmp_path: Path) -> None:
    out = _help(tmp_path)
    listed = re.findall(r"^  (--[\w-]+)", out, re.MULTILINE)
    fields = [f"--{f.name}" for f in dataclasses.fields(Config) if f.name != "network"]
    # 3.1 lines a flag (230 for 74, 253 for 80); 3.9 (259 for 67) when every flag was printed twice
    assert len(out.splitlines()) < 3.5 * len(listed)
    assert sorted(listed) == sorted(["--resume", "--config", "--overwrite", *fields])  # once each, never dashed
    # The groups are those Config's fields are tagged with, in their fields' order, each holding its fields
    # (tests/test_config.py checks every field's place)
    headings = list(groups())
    starts = [out.index(f"\n{h}:\n") for h in headings]
    assert len(headings) >= 8 and starts == sorted(starts)
    for flag, heading in [("--hidden_sizes", "Q-network"), ("--frame_stack", "pixels and Atari"),
                          ("--lr", "TD learning"), ("--eps_end", "exploration"), ("--seed", "run")]:
        at = out.index(f"\n  {flag} ")
        before = [h for h, s in zip(headings, starts, strict=True) if s < at]
        assert before[-1].startswith(heading), flag


def test_train_help_shows_the_named_presets_values(tmp_path: Path) -> None:
    assert _default(_help(tmp_path), "--lr") == "0.00025"  # Config's
    cartpole = _help(tmp_path, "cartpole")
    assert "Defaults shown are the cartpole preset's" in cartpole
    assert (_default(cartpole, "--lr"), _default(cartpole, "--batch_size")) == ("0.001", "64")
    assert (_default(cartpole, "--hidden_sizes"), _default(cartpole, "--double")) == ("64 64", "true")
    atari = _help(tmp_path, "ALE/Breakout-v5")  # a bare Atari id: the atari preset's settings
    assert (_default(atari, "--lr"), _default(atari, "--frame_stack"), _default(atari, "--env")) == \
        ("0.0001", "4", "ALE/Breakout-v5")


def test_the_dash_spelling_is_still_accepted() -> None:
    args = build_parser().parse_args(["train", "cartpole", "--total-steps", "500", "--eps-end", "0.1"])
    assert (args.total_steps, args.eps_end) == (500, 0.1)


# 5: --env, and bare ids of every installed family ------------------------------------------------------------------

def test_a_bare_ale_id_trains_with_the_atari_preset_and_no_banner(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    proc = deepq("train", "ALE/Breakout-v5", *ATARI_TINY, "--run_dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "A.L.E" not in proc.stderr + proc.stdout and "Stella" not in proc.stderr  # item 7: ale-py's banner
    assert proc.stderr.splitlines() == [proc.stderr.strip()]  # one line: which settings, and how to change them
    assert proc.stderr.startswith("deepq: ALE/Breakout-v5 trains with the atari preset's settings")
    assert "--env ALE/Breakout-v5" in proc.stderr
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    atari = PRESETS["atari"].to_dict()
    given = {"total_steps", "learning_starts", "buffer_size", "max_episode_frames", "eval_interval",
             "checkpoint_interval", "eval_episodes", "progress", "device", "run_dir"}
    assert (saved["env"], saved["name"]) == ("ALE/Breakout-v5", "breakout")
    assert {k: v for k, v in saved.items() if k in atari and k not in given | {"env", "name"}} == \
        {k: v for k, v in atari.items() if k not in given | {"env", "name"}}


def test_a_preset_with_env_trains_there_with_envpool(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    pytest.importorskip("envpool")
    proc = deepq("train", "atari", "--env", "ALE/SpaceInvaders-v5", "--backend", "envpool", "--num_envs", "2",
                 *ATARI_TINY, "--run_dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no banner, and no note: the preset was named
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["env"], saved["backend"], saved["name"]) == ("ALE/SpaceInvaders-v5", "envpool", "atari-spaceinvaders")
    assert (saved["lr"], saved["frame_stack"]) == (PRESETS["atari"].lr, 4)


def test_a_bare_minatar_id_takes_the_minatar_preset() -> None:
    pytest.importorskip("minatar")
    cfg, note = resolve("MinAtar/Breakout-v1")
    assert cfg == PRESETS["minatar-breakout"].replace(env="MinAtar/Breakout-v1")
    assert "minatar-breakout preset" in note
    cfg, note = resolve("minatar-breakout", "--env", "MinAtar/Asterix-v1", "--seed", "2")
    assert (cfg.env, cfg.name, cfg.seed, cfg.arch, note) == ("MinAtar/Asterix-v1", "minatar-breakout-asterix", 2,
                                                            "small_cnn", "")


def test_any_registered_id_of_an_installed_family() -> None:
    pytest.importorskip("ale_py")
    cfg, note = resolve("Breakout-v4")  # ale-py's, without the ALE/ namespace
    assert (cfg.env, cfg.frame_stack, cfg.lr, cfg.name) == ("Breakout-v4", 4, PRESETS["atari"].lr, "breakout")
    assert "atari preset" in note
    cfg, note = resolve("cartpole", "--env", "Acrobot-v1")
    assert (cfg.env, cfg.hidden_sizes, cfg.lr, cfg.name, note) == ("Acrobot-v1", (64, 64), 1e-3, "cartpole-acrobot", "")
    cfg, _ = resolve("--env", "Acrobot-v1")  # --env alone is the id
    assert cfg == Config(env="Acrobot-v1")
    with pytest.raises(ConfigError, match="Did you mean CartPole-v1"):
        resolve("cartpole", "--env", "CartPol-v1")
    with pytest.raises(ConfigError, match=r"that is a preset.*ALE/Pong-v5"):
        resolve("cartpole", "--env", "pong")


# 6, 7: the Atari env passes Gymnasium's checker; no third-party lines on the terminal ------------------------------

@pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version")
def test_atari_env_passes_gymnasium_check_env(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ale_py")
    from gymnasium.utils.env_checker import check_env

    from deepq.envs.atari import make_atari_env

    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")  # check_env renders in every mode, 'human' too
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    env = make_atari_env("ALE/Breakout-v5", Config(frame_stack=4, noop_max=5))
    check_env(env)  # it rebuilds the env from env.spec: every wrapper must record its arguments
    again = env.spec.make()  # type: ignore[union-attr]
    assert np.array_equal(env.reset(seed=3)[0], again.reset(seed=3)[0])
    assert again.observation_space == env.observation_space
    env.close()
    again.close()


def test_making_atari_envs_prints_no_ale_banner(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    code = ("from deepq.config import Config; from deepq.envs.gym import make_env; "
            "from deepq.envs.atari import EnvPoolVecEnv; "
            "make_env('ALE/Pong-v5', cfg=Config(frame_stack=4)).reset(seed=0); make_env('PongNoFrameskip-v4'); "
            "EnvPoolVecEnv('ALE/Pong-v5', 1, 0, Config(frame_stack=4)).reset()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # was "A.L.E: Arcade Learning Environment (version ...)\n[Powered by Stella]"


def test_eval_video_prints_nothing_from_sdl(tiny_run: Path) -> None:
    pytest.importorskip("moviepy")
    # Without a display: where libwayland-client is installed, SDL's Wayland probe printed
    # "error: XDG_RUNTIME_DIR is invalid or not set in the environment."
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "SDL_VIDEODRIVER")}
    proc = deepq("eval", str(tiny_run), "--episodes", "1", "--video", cwd=tiny_run, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert list((tiny_run / "videos").glob("*.mp4"))


# 8: a damaged config.json on --resume ------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "says"), [
    ('{"seed": 0,', "is not valid JSON (line 1 column 12"), ("", "is empty"),
    ("[1, 2]", "holds an array, not a JSON object"), ('{"sed": 3}', "unknown field(s) 'sed' (did you mean 'seed'?)"),
    ('{"seed": "abc"}', "seed='abc' is not valid"), ('{"hidden_sizes": 5}', "wrong type"),
])
def test_a_damaged_config_json_is_one_line(text: str, says: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(text)
    assert main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deepq: error: {run_dir / 'config.json'}")
    assert says in err and ("repair it" in err or "fix the file" in err)


def test_a_damaged_config_json_in_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"env": "CartPole-v1", "seed": 0')  # cut short
    line = one_error_line(deepq("train", "--resume", str(tmp_path), cwd=tmp_path))
    assert line.startswith(f"deepq: error: {tmp_path / 'config.json'} is not valid JSON")


# 9: --config FILE (a run's config.json, deepq tune's best.json) ----------------------------------------------------

@pytest.mark.parametrize(("text", "says"), [
    ('{"seed": 0,', "is not valid JSON (line 1 column 12"), ("[1, 2]", "holds an array, not a JSON object"),
    ('{"sed": 3}', "unknown field(s) 'sed' (did you mean 'seed'?)"), ('{"hidden_sizes": 5}', "wrong type"),
])
def test_a_damaged_config_file_is_one_line(text: str, says: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "best.json"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"deepq: error: {path}") and says in err


def test_a_config_file_gives_its_fields_flags_override_them_and_the_run_dir_is_new(tmp_path: Path) -> None:
    fields = Config(env="Acrobot-v1", lr=3e-4, hidden_sizes=(32, 16), seed=4, run_dir="/some/old/run").to_dict()
    path = tmp_path / "best.json"
    path.write_text(json.dumps({**fields, "run_id": "abc123"}))  # a run's config.json also holds its id
    cfg, _ = resolve("--config", str(path), "--seed", "7")
    assert (cfg.env, cfg.lr, cfg.hidden_sizes, cfg.seed, cfg.run_dir) == ("Acrobot-v1", 3e-4, (32, 16), 7, "")


def test_a_config_file_with_a_preset_or_resume_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"env": "CartPole-v1"}))
    assert "drop 'cartpole', or pass --env ID" in one_error_line(deepq("train", "cartpole", "--config", str(path),
                                                                       cwd=tmp_path))
    assert "give one of them" in one_error_line(deepq("train", "--resume", str(tmp_path), "--config", str(path),
                                                      cwd=tmp_path))


def test_a_run_trains_from_another_runs_config_json(tiny_run: Path, tmp_path: Path) -> None:
    proc = deepq("train", "--config", str(tiny_run / "config.json"), "--run_dir", str(tmp_path / "again"),
                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    old, new = (json.loads((d / "config.json").read_text()) for d in (tiny_run, tmp_path / "again"))
    assert old.pop("run_id") != new.pop("run_id")
    assert {k: v for k, v in old.items() if k != "run_dir"} == {k: v for k, v in new.items() if k != "run_dir"}
