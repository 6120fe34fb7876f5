"""The README's examples run as written: its Python blocks, and every `deepq` command it shows is one the
command line accepts (placeholders such as `runs/cartpole-3-...` are parsed, not run)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from deepq.cli import build_parser, config_from_args

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def deepq_commands() -> list[list[str]]:
    """Each `deepq ...` line of the README's bash blocks, as argv without the program name."""
    out = []
    for block in blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] == ["deepq"]:
                out.append(words[1:])
    return out


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=900)


def test_the_first_python_example_runs_as_written(tmp_path: Path) -> None:
    result = run_python(blocks("python")[0], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "mean " in result.stdout and (tmp_path / "cartpole.pt").is_file()
    assert list((tmp_path / "runs").glob("cartpole-0-*/agent.pt"))


@pytest.mark.slow
def test_every_python_example_runs_in_order(tmp_path: Path) -> None:
    """All the README's Python blocks, one script (later blocks use what earlier ones made)."""
    result = run_python("\n".join(["import deepq", *blocks("python")]), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("argv", deepq_commands(), ids=lambda argv: " ".join(argv)[:60])
def test_every_deepq_command_is_accepted(argv: list[str]) -> None:
    """A train command builds a valid Config (nothing is trained); the others parse. `...` is a placeholder."""
    if "--help" in argv:
        with pytest.raises(SystemExit) as e:
            build_parser().parse_args(argv)
        assert e.value.code == 0
        return
    args = build_parser().parse_args(argv)
    if args.command == "train" and not any("..." in a for a in argv):
        cfg, _, _ = config_from_args(args)
        cfg.validate()


def test_the_readme_shows_commands() -> None:
    assert len(deepq_commands()) >= 10 and len(blocks("python")) >= 2
