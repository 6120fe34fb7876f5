"""The plain (non-terminal) progress lines: the final one once, no negative ETA when a run overshoots."""

from __future__ import annotations

import pytest

from deepq.run.progress import Progress


def test_plain_progress_prints_the_final_line_once_and_no_negative_eta(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Progress(total=1_000, enabled=True, title="t", plain_every_s=3600)  # stdout is not a terminal here
    bar.update(500, 0.5, None, None)  # not due yet: nothing printed
    bar.update(1_070, 0.1, 1.0, None)  # target='mcts' ends with whole episodes, past total_steps
    bar.update(1_070, 0.1, 1.0, None)  # the loop's closing update, same step
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1, lines
    assert "step 1,070/1,000" in lines[0] and "ETA 0s" in lines[0] and "-" not in lines[0].split("ETA")[1]
