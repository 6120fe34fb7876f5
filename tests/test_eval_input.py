"""What `deepq eval`, `deepq play` and OpenSpiel game names do with hostile input: every mistake is one
`deepq: error:` line and exit code 2 before anything runs, a game ends politely however its input ends, and
pyspiel's own list of games never reaches the terminal.

Real components throughout: tiny real training runs, real OpenSpiel games, `python -m deepq.cli` subprocesses with
real standard input (a closed one, a write-only one, a pseudo-terminal for Ctrl-C).
"""

from __future__ import annotations

import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import deepq
from deepq.cli import main

TINY = dict(total_steps=300, learning_starts=100, eval_interval=0, checkpoint_interval=0, eval_episodes=1,
            progress=False, hidden_sizes=(16,), device="cpu")


def deepq_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "deepq.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused command (no usage dump, no traceback, nothing on stdout)."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert lines[0].startswith("deepq: error: ")
    return lines[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two real runs: tic-tac-toe (a two-player OpenSpiel game) and CartPole (a single-agent env)."""
    root = tmp_path_factory.mktemp("eval_input")
    deepq.train(deepq.Config(env="openspiel:tic_tac_toe", arch="mlp", run_dir=str(root / "ttt"), **TINY))
    deepq.train(deepq.Config(env="CartPole-v1", run_dir=str(root / "cp"), **TINY))
    return {"ttt": root / "ttt", "cp": root / "cp"}


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`deepq ARGV` run in this process: exit code 2 and one stderr line, which is returned."""
    assert main(list(argv)) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("deepq: error: "), err
    return err.strip()


# 1, 2: eval's numbers and opponents --------------------------------------------------------------------------------

@pytest.mark.parametrize(("run", "flags", "says"), [
    ("cp", ["--seed", "-1"], "seed=-1 is not valid: seed must be an integer in [0, 4294967295]"),  # was numpy's
    ("ttt", ["--seed", "-1"], "seed=-1 is not valid"),                                 # ValueError traceback
    ("cp", ["--seed", "4294967296"], "seed=4294967296 is not valid"),
    ("cp", ["--eps", "-0.5"], "eps=-0.5 is not valid: eps must be a number in [0, 1]"),  # were accepted and
    ("cp", ["--eps", "2"], "eps=2.0 is not valid"),                                     # reported as "eps=2"
    ("cp", ["--eps", "nan"], "eps=nan is not valid"),
    ("cp", ["--eps", "inf"], "eps=inf is not valid"),
    ("ttt", ["--eps", "0.5"], "eps=0.5 does not apply to the two-player game"),  # was silently greedy
    ("ttt", ["--opponent", "mcts:99999999999"], "opponent='mcts:99999999999' is not valid: use 'random', "
                                                "'perfect'"),  # was pybind11's TypeError traceback
    ("ttt", ["--opponent", "mcts:²"], "opponent='mcts:²' is not valid"),  # was int()'s ValueError traceback
])
def test_eval_refuses_bad_numbers_in_one_line(run: str, flags: list[str], says: str, runs: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert says in refused(capsys, "eval", str(runs[run]), "--episodes", "1", *flags)


def test_the_mcts_opponent_bound_says_the_time_per_move(runs: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(capsys, "eval", str(runs["ttt"]), "--opponent", "mcts:5000001")  # was accepted
    assert "2 to 5,000,000: about 50 s a move on connect_four" in line


@pytest.mark.parametrize(("env", "says"), [
    ("openspiel:connect_four", "'openspiel:connect_four' has observations (3, 6, 7) and 7 actions; the agent was "
                               "trained on (3, 3, 3) and 9"),  # was evaluated on tic-tac-toe, silently
    ("pettingzoo:tictactoe_v3", "has observations (2, 3, 3) and 9 actions"),  # was numpy's shape traceback
    ("openspiel:nosuchgame", "OpenSpiel has no game 'nosuchgame'"),  # was ignored: tic-tac-toe was evaluated
])
def test_eval_env_of_a_game_is_used_or_refused(env: str, says: str, runs: dict[str, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert says in refused(capsys, "eval", str(runs["ttt"]), "--episodes", "1", "--env", env)


def test_eval_env_takes_a_preset_name(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    # Was "unknown environment id 'cartpole': it is neither a deepq preset nor ...", of a preset.
    assert main(["eval", str(runs["cp"]), "--episodes", "1", "--env", "cartpole"]) == 0
    assert "over 1 episodes" in capsys.readouterr().out


def test_eval_env_parameters_of_a_game_are_checked(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    # The game named is the game loaded (it used to be the agent's own, whatever --env said).
    line = refused(capsys, "eval", str(runs["ttt"]), "--episodes", "1", "--env", "openspiel:tic_tac_toe(nosuch=1)")
    assert "OpenSpiel cannot load game 'tic_tac_toe(nosuch=1)': Unknown parameter 'nosuch'" in line


def test_eval_api_checks_types(runs: dict[str, Path]) -> None:
    agent = deepq.load(runs["cp"])
    with pytest.raises(deepq.ConfigError, match=r"episodes=2\.5 is not valid"):  # was range()'s TypeError
        deepq.evaluate(agent, episodes=2.5)  # type: ignore[arg-type]
    with pytest.raises(deepq.ConfigError, match="seed=True is not valid"):
        deepq.evaluate(agent, episodes=1, seed=True)


# --video into a folder that cannot be written, and a second video beside the first ----------------------------------

def test_eval_video_into_a_folder_that_cannot_be_made_is_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    shutil.copy(runs["cp"] / "agent.pt", tmp_path / "agent.pt")
    (tmp_path / "videos").write_text("a file where the folder would go")
    line = one_error_line(deepq_cli("eval", str(tmp_path), "--episodes", "1", "--video", cwd=tmp_path))
    assert f"cannot record the video into {tmp_path / 'videos'}: File exists" in line  # was FileExistsError's


def test_a_second_video_keeps_the_first(runs: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("moviepy")
    shutil.copy(runs["cp"] / "agent.pt", tmp_path / "agent.pt")
    for _ in range(2):
        proc = deepq_cli("eval", str(tmp_path), "--episodes", "1", "--video", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""  # was Gymnasium's two-line "Overwriting existing videos" warning
    assert sorted(p.name for p in (tmp_path / "videos").glob("*.mp4")) == ["eval-0-episode-0.mp4",
                                                                            "eval-1-episode-0.mp4"]


# 5: OpenSpiel game names and parameters -----------------------------------------------------------------------------

@pytest.mark.parametrize(("game", "says"), [
    ("tictactoe", "OpenSpiel has no game 'tictactoe' (did you mean 'tic_tac_toe'?)"),  # was ~250 lines first
    ("connect4", "(did you mean 'connect_four'?)"),
    ("connect_four(rows=abc)", "OpenSpiel cannot load game 'connect_four(rows=abc)': Wrong type for parameter rows"),
    ("connect_four(rows=0)", "has observations of shape (3, 0, 7)"),  # was a segmentation fault
    ("connect_four(rows=-1)", "has observations of shape (3, -1, 7)"),  # was "cannot create std::vector" traceback
    ("connect_four(columns=0)", "has 0 distinct actions"),  # was an IndexError on the first move
    ("breakthrough(rows=1)", "OpenSpiel cannot load game 'breakthrough(rows=1)'"),  # was a SpielError traceback
])
def test_a_bad_openspiel_game_is_one_line(game: str, says: str, tmp_path: Path) -> None:
    line = one_error_line(deepq_cli("train", f"openspiel:{game}", "--total_steps", "10", cwd=tmp_path))
    assert says in line
    assert not (tmp_path / "runs").exists()


def test_a_bad_game_in_a_config_file_or_eval_env_is_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "game.json").write_text(json.dumps({"env": "openspiel:tic_tac_toee"}))
    line = one_error_line(deepq_cli("train", "--config", str(tmp_path / "game.json"), cwd=tmp_path))
    assert "OpenSpiel has no game 'tic_tac_toee' (did you mean 'tic_tac_toe'?)" in line
    line = one_error_line(deepq_cli("eval", str(runs["ttt"]), "--env", "openspiel:nosuchgame", cwd=tmp_path))
    assert "OpenSpiel has no game 'nosuchgame'; list them with" in line


def test_pyspiel_writes_nothing_to_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    from deepq.games.arena import random_opponent

    with pytest.raises(deepq.ConfigError, match="did you mean 'tic_tac_toe'"):  # was pyspiel.SpielError
        random_opponent("tictactoe", 0)
    with pytest.raises(deepq.ConfigError, match="Wrong type for parameter rows"):
        random_opponent("connect_four(rows=abc)", 0)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # file descriptors 1 and 2: "OpenSpiel exception: ..." went to 2


def test_a_game_too_big_for_memory_is_refused_before_a_state_is_made() -> None:
    from deepq.games.adapters import make_game

    with pytest.raises(deepq.ConfigError, match=r"has observations of shape \(3, 2000, 2000\); deepq plays games "
                                                r"whose observation has 1 to 1,000,000 numbers"):
        make_game("openspiel:connect_four(rows=2000,columns=2000)")


def test_eval_opponents_are_checked_when_a_run_is_set_up() -> None:
    from deepq.training.setup import check

    with pytest.raises(deepq.ConfigError, match="eval_opponent='mcts:99999999999' is not valid"):
        check(deepq.Config(env="openspiel:tic_tac_toe", eval_opponent="mcts:99999999999"))  # was at the first eval
    with pytest.raises(deepq.ConfigError, match="cannot be solved by minimax: it has chance"):
        check(deepq.Config(env="openspiel:pig", eval_opponent="perfect"))  # was at the first evaluation


# 3: play's search size and temperature, checked before the first question -------------------------------------------

@pytest.mark.parametrize(("flags", "says"), [
    (["--mcts", "-1"], "mcts_simulations=-1 is not valid: mcts_simulations must be an integer from 0 (no search) "
                       "to 1,000,000"),  # was accepted: played without search
    (["--mcts", "1e12"], "1,000,000 simulations take about 80 s a move on connect_four"),  # hung the first move
    (["--temperature", "-1"], "temperature=-1.0 is not valid"),  # was refused only after the seat was asked
    (["--temperature", "nan"], "temperature=nan is not valid: temperature must be 0 (greedy) or a finite positive "
                               "number"),  # was "ValueError: Probabilities contain NaN" at the agent's move
    (["--temperature", "inf"], "temperature=inf is not valid"),
])
def test_play_refuses_bad_settings_before_asking_anything(flags: list[str], says: str, runs: dict[str, Path],
                                                          tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "deepq.cli", "play", str(runs["ttt"]), *flags], input="1\n4\nq\n",
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert says in one_error_line(proc)


def test_as_bot_checks_its_arguments(runs: dict[str, Path]) -> None:
    from deepq.games.bot import as_bot

    agent = deepq.load(runs["ttt"])
    for kw, says in ((dict(mcts_simulations=10**12), "mcts_simulations=1000000000000 is not valid"),
                     (dict(temperature=float("nan")), "temperature=nan is not valid"),
                     (dict(seed=-1), "seed=-1 is not valid")):
        with pytest.raises(deepq.ConfigError, match=says):
            as_bot(agent, **kw)  # type: ignore[arg-type]


def test_as_bot_search_tree_must_fit_in_memory() -> None:
    from deepq.core.networks import resolve_arch
    from deepq.games.adapters import OpenSpielGame
    from deepq.games.bot import as_bot

    chess = OpenSpielGame("chess")  # 4,674 actions: ~300 kB of tree a simulation, ~300 GB for a million
    cfg = deepq.Config(env="openspiel:chess", arch="mlp", hidden_sizes=(8,))
    agent = deepq.Agent(chess.obs_shape, chess.n_actions, cfg, arch=resolve_arch(chess.obs_shape, cfg.arch, board=True))
    with pytest.raises(deepq.ConfigError, match=r"mcts_simulations=1,000,000 needs ~\d+ GB for the search tree"):
        as_bot(agent, mcts_simulations=1_000_000)


# 4: however input ends, the game ends politely ----------------------------------------------------------------------

@pytest.mark.parametrize("redirect", ["<&-", "0>/dev/null"])  # closed; open but write-only
def test_play_with_no_readable_input_says_bye(redirect: str, runs: dict[str, Path], tmp_path: Path) -> None:
    # Were "RuntimeError: input(): lost sys.stdin" and "OSError: [Errno 9] Bad file descriptor" tracebacks.
    proc = subprocess.run(["bash", "-c", f'exec "$0" -m deepq.cli play "$1" {redirect}', sys.executable,
                           str(runs["ttt"])], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout.endswith("[1/2] \nBye. Tally: 0 wins, 0 draws, 0 losses.\n")


def test_play_reads_bytes_that_are_not_text_as_a_bad_move(runs: dict[str, Path], tmp_path: Path) -> None:
    # A strict UTF-8 stdin raised UnicodeDecodeError (a traceback) at the first byte that is not UTF-8.
    proc = subprocess.run([sys.executable, "-m", "deepq.cli", "play", str(runs["ttt"])], input=b"\xff\xfe\n1\n\xff\n",
                          capture_output=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"})
    assert proc.returncode == 0 and proc.stderr == b"", proc.stderr.decode()[-2000:]
    out = proc.stdout.decode()
    assert "Please type 1 to play first" in out  # the first line was read as text, and refused
    assert "Not a legal move: '\ufffd'." in out  # the seat line after it was not lost with it
    assert out.endswith("Bye. Tally: 0 wins, 0 draws, 0 losses.\n")


def _in_a_terminal(argv: list[str], keys: bytes, after: bytes) -> tuple[int, str]:
    """Runs `deepq ARGV` on a pseudo-terminal, types `keys` once `after` has been printed; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: deepq on the terminal
        os.execv(sys.executable, [sys.executable, "-m", "deepq.cli", *argv])
    out, typed, end = b"", False, time.monotonic() + 120
    while time.monotonic() < end:
        if not typed and after in out:
            time.sleep(0.5)  # input() must be blocked in read(): a signal just before it is only seen after it
            os.write(fd, keys)
            typed = True
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal: it has exited
                break
            if not chunk:
                break
            out += chunk
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out.decode().replace("\r\n", "\n")


def test_ctrl_c_at_the_prompt_prints_the_tally_in_one_line(runs: dict[str, Path]) -> None:
    code, out = _in_a_terminal(["play", str(runs["ttt"]), "--seat", "1"], b"\x03", b"Your move: ")
    assert code == 128 + signal.SIGINT  # as a shell reports a Ctrl-C; was 0
    assert out.endswith("Your move: ^C\nBye. Tally: 0 wins, 0 draws, 0 losses.\n"), out[-300:]  # was 2 lines
    assert "Traceback" not in out and "stopped by" not in out
