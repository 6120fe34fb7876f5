"""FrameStreams: a distributed learner's replay, one frame-once stream per actor, fed frames only.

Each stream is checked against a FrameReplay of its own fed the full stacks (the fake envs of frame_harness.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from frame_harness import FRAME, StackingEnvs, assert_same_batch

from deepq.core.frame_replay import FrameReplay
from deepq.core.frame_streams import FrameStreams
from deepq.core.replay import Batch


class FramesOnly:
    """An actor's side of one stream: passes each step to `streams` as add_frames takes it (each frame once), and
    the full stacks to `reference`, a FrameReplay of the stream's size that checks them."""

    def __init__(self, streams: FrameStreams, stream: int, reference: FrameReplay) -> None:
        self.streams, self.stream, self.reference = streams, stream, reference

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, ended: np.ndarray) -> None:
        first = obs[self.streams.streams[self.stream].new_episode, -1]  # the reset frames of new episodes
        self.streams.add_frames(self.stream, first, next_obs[:, -1], actions, rewards, terminated, ended)
        self.reference.add(obs, actions, rewards, next_obs, terminated, ended)


class OffsetEnvs(StackingEnvs):
    """StackingEnvs whose frame numbers start at `offset` (which stream a rebuilt frame came from)."""

    def __init__(self, memory: Any, k: int, n: int, base: int, offset: int) -> None:
        super().__init__(memory, k, n, base)
        self.offset = offset

    def _frame(self, i: int) -> int:
        return self.offset + super()._frame(i)


@pytest.mark.parametrize("n_step", [1, 3])
def test_frame_streams_hold_what_one_frame_replay_per_actor_holds(n_step: int) -> None:
    """Three streams fed at different rates, frames only: every slot's transition (stacks, n-step returns,
    discounts) is its stream's reference FrameReplay's; minibatches mixing streams keep the order asked; uniform
    sampling covers every stream by its size; a state_dict round trip keeps it all."""
    rng = np.random.default_rng(n_step)
    streams = FrameStreams(3, 3 * 40, (4, *FRAME), num_envs=2, obs_dtype=np.int64, n_step=n_step, gamma=0.9)
    refs = [FrameReplay(40, (4, *FRAME), 2, obs_dtype=np.int64, n_step=n_step, gamma=0.9) for _ in range(3)]
    envs = [OffsetEnvs(FramesOnly(streams, i, refs[i]), 4, 2, base=1_000, offset=10_000 * (i + 1)) for i in range(3)]
    for t in range(90):
        for i, env in enumerate(envs):
            if t % (i + 1) == 0:  # stream i steps every (i+1)-th round: streams fill at different rates
                env.step(terminated=(rng.random(2) < 0.1).tolist(), ended=(rng.random(2) < 0.2).tolist())
    assert len(streams) == sum(len(r) for r in refs)
    slots = np.flatnonzero(streams.valid_slots(np.arange(streams.num_slots)))
    rng.shuffle(slots)  # rows of all three streams, interleaved
    got = streams.batch_slots(slots)
    stream, local = np.divmod(slots, streams.per_stream)
    for i, ref in enumerate(refs):
        want = ref.batch_slots(local[stream == i])
        part = Batch._make(None if f is None else f[torch.from_numpy(stream == i)] for f in got)
        assert_same_batch(part, want)
    drawn = streams.sample(30_000, np.random.default_rng(0))
    owner = drawn.obs[:, -1, 0].numpy() // 10_000 - 1  # frame numbers say which stream a row came from
    share = np.bincount(owner, minlength=3) / 30_000
    np.testing.assert_allclose(share, [len(r) / len(streams) for r in refs], atol=0.02)
    copy = FrameStreams(3, 3 * 40, (4, *FRAME), num_envs=2, obs_dtype=np.int64, n_step=n_step, gamma=0.9)
    copy.load_state_dict(streams.state_dict())
    assert_same_batch(copy.batch_slots(slots), got)
    with pytest.raises(ValueError, match="3 of them; resume it with --num_actors 3 \\(now 2\\)"):
        FrameStreams(2, 80, (4, *FRAME), num_envs=2, obs_dtype=np.int64).load_state_dict(streams.state_dict())


def test_add_frames_refuses_a_wrong_count_of_reset_frames() -> None:
    mem = FrameReplay(20, (4, *FRAME), num_envs=2, obs_dtype=np.int64)
    with pytest.raises(ValueError, match="1 reset frames for 2 new episodes"):
        mem.add_frames(np.zeros((1, *FRAME)), np.zeros((2, *FRAME)), np.zeros(2), np.zeros(2), np.zeros(2, bool),
                       np.zeros(2, bool))
