"""The run log: every TensorBoard scalar arrives, with its step and the time it was logged; metrics.csv's episode
rows, one per collection (by hand), the episodes a collection finished, and an older file rewritten on resume."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from deepq.core.results import EvalResult
from deepq.run.log import RunLog
from deepq.training.control import NO_EPISODES, Episodes, LoopState, finished, log_episodes


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


# ---- episode rows: one per collection (RunLog.episodes, control.finished / log_episodes) ----------------------

OLD_HEADER = ("step,episode,episode_return,episode_length,epsilon,loss,eval_return,eval_std,eval_min,eval_max,"
              "eval_first,eval_second,eval_kind")  # deepq's before a row held one collection's episodes


def lines(run_dir: Path) -> list[str]:
    return (run_dir / "metrics.csv").read_text().splitlines()


def test_an_episode_row_holds_the_mean_count_and_range_of_one_collection(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.episode(step=10, episode=1, ret=5.0, length=10, eps=0.5, loss=None)  # one episode: today's row
    log.episodes(40, 4, np.array([1.0, 2.0, 6.0]), np.array([3, 4, 4]), eps=0.25, loss=0.125)
    log.episodes(48, 6, np.array([-1.0, 0.5]), np.array([2, 4]), eps=0.2, loss=None)
    log.evaluation(step=48, result=EvalResult(returns=[41.0, 43.0], lengths=[9, 11]))
    log.close()
    assert lines(tmp_path) == [
        OLD_HEADER + ",episodes_in_row,return_min,return_max",
        "10,1,5.0,10,0.5,,,,,,,,,1,5.0,5.0",  # 0.1.0's row, then count 1 and its return as min and max
        "40,4,3.0,3.6666666666666665,0.25,0.125,,,,,,,,3,1.0,6.0",  # (1 + 2 + 6) / 3; (3 + 4 + 4) / 3
        "48,6,-0.25,3,0.2,,,,,,,,,2,-1.0,0.5",  # a whole mean length stays an integer
        "48,,,,,,42.0,1.0,41.0,43.0,,,periodic,,,"]
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/episode_return")] == [(10, 5.0), (40, 3.0), (48, -0.25)]
    assert [e.value for e in events.Scalars("train/episode_length")] == pytest.approx([10, 11 / 3, 3])
    assert [e.step for e in events.Scalars("train/loss")] == [40]


def test_a_distributed_row_keeps_its_actor(tmp_path: Path) -> None:
    log = RunLog(tmp_path, actor_column=True)
    log.episodes(100, 2, np.array([3.0, 4.0]), np.array([3, 4]), eps=0.4, loss=None, actor=1)
    log.close()
    assert lines(tmp_path)[1:] == ["100,2,3.5,3.5,0.4,,,,,,,,,2,3.0,4.0,1"]
    with pytest.raises(ValueError, match="K >= 1"):
        RunLog(tmp_path).episodes(1, 1, np.zeros(0), np.zeros(0, np.int64), 0.1, None)


def test_finished_returns_the_episodes_each_step_ended_and_resets_their_tallies() -> None:
    state = LoopState(ep_return=[0.0] * 3, ep_length=[0] * 3)
    first = finished(state, np.array([1.0, 0.5, -1.0], np.float32), np.array([False, True, False]))
    assert first.returns.tolist() == [0.5] and first.lengths.tolist() == [1]
    assert first.returns.dtype == np.float64 and first.lengths.dtype == np.int64
    second = finished(state, np.array([2.0, 1.0, 0.0]), np.array([True, False, True]))
    assert second.returns.tolist() == [3.0, -1.0] and second.lengths.tolist() == [2, 2]  # env order
    third = finished(state, np.array([1.0, 1.0, 1.0]), np.array([False, False, False]))
    assert third.size == 0
    assert torch.equal(torch.as_tensor(state.ep_return), torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64))
    assert torch.equal(torch.as_tensor(state.ep_length), torch.tensor([1, 2, 1]))
    assert state.episodes == 0  # finished() only tallies: log_episodes counts
    both = Episodes.concat([first, second, third])
    assert both.returns.tolist() == [0.5, 3.0, -1.0] and both.lengths.tolist() == [1, 2, 2]
    made = Episodes.of([0.5, 3.0], [1, 2])
    assert made.returns.dtype == np.float64 and made.lengths.dtype == np.int64 and made.size == 2
    assert Episodes.concat([third, third]).size == 0
    with pytest.raises(ValueError, match="shape"):
        finished(state, np.zeros(2), np.zeros(2, bool))


def test_finished_sums_as_a_python_float_tally_and_survives_a_checkpoint(tmp_path: Path) -> None:
    """float64 sums of the logged rewards, as 0.1.0's per-env Python floats; the tallies are saved with
    state.saved(), read back with weights_only=True, and one from an older checkpoint (lists) goes on the same."""
    rewards = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    state = LoopState(ep_return=[0.0] * 4, ep_length=[0] * 4)
    for r in rewards[:30]:
        finished(state, r, np.zeros(4, bool))
    torch.save(state.saved(), tmp_path / "loop.pt")
    restored, older = LoopState(ep_return=[0.0] * 4, ep_length=[0] * 4), LoopState()
    for k, v in torch.load(tmp_path / "loop.pt", weights_only=True).items():
        setattr(restored, k, v)
        setattr(older, k, v.tolist() if isinstance(v, torch.Tensor) else v)
    want = [0.0] * 4
    for r in rewards:
        for i in range(4):
            want[i] += float(r[i])
    for s in (state, restored, older):
        got = Episodes.concat(finished(s, r, np.ones(4, bool) if t == 19 else np.zeros(4, bool))
                              for t, r in enumerate(rewards[30:]))
        assert got.returns.tolist() == want and got.lengths.tolist() == [50] * 4  # bit for bit


def test_log_episodes_writes_one_row_and_resets_the_loss_mean() -> None:
    calls: list[tuple[Any, ...]] = []

    class Log:
        def episodes(self, *args: Any) -> None:
            calls.append(args)

    state = LoopState(step=9, episodes=2, recent=[float(i) for i in range(19)])
    state.add_loss(0.5)
    log_episodes(state, NO_EPISODES, 0.2, Log())  # type: ignore[arg-type]
    assert calls == [] and state.loss_count == 1  # nothing ended: no row, the loss keeps averaging
    state.add_loss(1.5)
    log_episodes(state, Episodes.of([0.5, 3.0, -1.0], [1, 2, 2]), 0.2, Log(), actor=3)  # type: ignore[arg-type]
    ((step, episode, returns, lengths, eps, loss, actor),) = calls
    assert (step, episode, returns.tolist(), lengths.tolist(), eps, loss, actor) == (
        9, 5, [0.5, 3.0, -1.0], [1, 2, 2], 0.2, 1.0, 3)
    assert state.episodes == 5 and (state.loss_sum, state.loss_count, state.updates) == (0.0, 0, 2)
    assert state.recent == [float(i) for i in range(2, 19)] + [0.5, 3.0, -1.0]  # the last 20 returns


@pytest.mark.parametrize("recorded", [True, False], ids=["bytes", "no-bytes"])
def test_a_resume_rewrites_an_older_header_with_the_new_columns_filled(tmp_path: Path, recorded: bool) -> None:
    """An older deepq's metrics.csv (one episode a row, without episodes_in_row ...) is cut back to the checkpoint
    and rewritten in today's columns, its episode rows with count 1 and their return as min and max. The cut is at
    the bytes the checkpoint recorded (a final evaluation at the checkpoint's step, written after it, goes), or in
    an older checkpoint without them, after the rows up to its step."""
    kept = [OLD_HEADER, "10,1,5.0,10,0.9,,,,,,,,", "25,2,15.0,15,0.8,0.25,,,,,,,",
            "25,,,,,,42.0,1.0,41.0,43.0,,,periodic"]
    after = ["25,,,,,,44.0,0.0,44.0,44.0,,,final"] if recorded else ["30,3,4.0,5,0.7,0.5,,,,,,,"]
    (tmp_path / "metrics.csv").write_text("\r\n".join(kept + after) + "\r\n")
    size = len("\r\n".join(kept) + "\r\n") if recorded else None
    log = RunLog(tmp_path, resume_step=25, resume_bytes=size)
    log.episodes(40, 5, np.array([2.0, 4.0]), np.array([5, 5]), eps=0.6, loss=None)
    log.close()
    assert lines(tmp_path) == [
        OLD_HEADER + ",episodes_in_row,return_min,return_max",
        "10,1,5.0,10,0.9,,,,,,,,,1,5.0,5.0", "25,2,15.0,15,0.8,0.25,,,,,,,,1,15.0,15.0",
        "25,,,,,,42.0,1.0,41.0,43.0,,,periodic,,,", "40,5,3.0,5,0.6,,,,,,,,,2,2.0,4.0"]


def test_a_resume_cuts_todays_file_back_to_the_checkpoints_bytes(tmp_path: Path) -> None:
    log = RunLog(tmp_path)
    log.episodes(8, 2, np.array([1.0, 2.0]), np.array([4, 4]), eps=0.5, loss=None)
    size = log.flush()
    kept = (tmp_path / "metrics.csv").read_bytes()
    log.episodes(16, 3, np.array([7.0]), np.array([6]), eps=0.5, loss=None)  # after the checkpoint
    log.close()
    RunLog(tmp_path, resume_step=8, resume_bytes=size).close()
    assert (tmp_path / "metrics.csv").read_bytes() == kept
