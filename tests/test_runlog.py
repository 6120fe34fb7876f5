"""The run log's TensorBoard side: every scalar arrives, with its step and the time it was logged."""

from __future__ import annotations

import time
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deepq.core.results import EvalResult
from deepq.run.log import RunLog


def test_every_scalar_reaches_tensorboard_with_its_logging_time(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    n = RunLog.PUSH_EVERY  # 4 scalars an episode: the writer gets several bursts and a remainder
    logged_at = []
    for i in range(n):
        logged_at.append(time.time())
        log.episode(step=10 * (i + 1), episode=i + 1, ret=float(i), length=10, eps=0.5, loss=0.25 if i else None)
        if i == 0:
            time.sleep(0.2)  # the first scalars must keep their own time, not the time of their burst
    log.evaluation(step=10 * n, result=EvalResult(returns=[41.0, 43.0], lengths=[9, 11]))
    log.close()

    events = EventAccumulator(str(tmp_path))
    events.Reload()
    returns = events.Scalars("train/episode_return")
    assert [e.step for e in returns] == [10 * (i + 1) for i in range(n)]
    assert [e.value for e in returns] == [float(i) for i in range(n)]
    assert len(events.Scalars("train/loss")) == n - 1  # no loss before the first update
    assert [e.value for e in events.Scalars("eval/mean_return")] == [42.0]
    assert abs(returns[0].wall_time - logged_at[0]) < 0.1 and returns[1].wall_time - returns[0].wall_time > 0.15
