"""The exact Connect Four solver that checks agents move by move (benchmarks/c4solver, issue #33) agrees with an
independent brute force and with exhaustive minimax over OpenSpiel's states on late positions, and refuses what is
not a position. Skipped where there is no C compiler (the solver is a C library built on first use)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the solver is built with gcc")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from c4solver import selftest, solve, solve_all, value  # noqa: E402


def test_the_solver_agrees_with_brute_force_and_openspiel_on_late_positions() -> None:
    assert selftest(positions=60, deep_positions=0, spiel_positions=10, seed=1, timing_budget_s=0.0)


def test_known_positions() -> None:
    # a vertical three for the player to move: it wins with its 4th stone (score 22 - 4 = 18)
    assert solve("121212") == 18 and value(solve("121212")) == 1
    assert solve_all("121212")[0] == 18  # the winning column, for the player who plays it
    assert solve_all("111111")[0] is None  # a full column


@pytest.mark.parametrize("bad", ["0", "8", "x", "1111111", "1212121"])
def test_what_is_not_a_position_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        solve(bad)
