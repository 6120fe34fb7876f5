"""Frame-once replay fed by several senders: one FrameReplay per stream (a distributed run's actor), one slot space.

A distributed actor steps its own envs and ships each new frame once (deepq/training/actor.py); its steps must
be stored in order, so each actor gets a FrameReplay of its own (capacity / streams, its envs' rings), and
stacks, n-step windows and episode starts are rebuilt there exactly as in one process. Slots are global:
stream * slots_per_stream + the stream's own slot, so one prioritized sampler covers every stream, and a
minibatch can hold transitions of several streams (gathered per stream, returned in the order asked).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepq.core.frame_replay import FrameReplay
from deepq.core.replay import Batch


class FrameStreams:
    """`streams` FrameReplays of `capacity // streams` transitions each, with `num_envs` envs each."""

    def __init__(self, streams: int, capacity: int, obs_shape: tuple[int, ...], num_envs: int = 1,
                 obs_dtype: Any = np.uint8, device: torch.device | str = "cpu", n_step: int = 1,
                 gamma: float = 0.99) -> None:
        if capacity < streams * num_envs:
            raise ValueError(f"capacity {capacity} must be at least streams × num_envs = {streams * num_envs}")
        self.streams = [FrameReplay(capacity // streams, obs_shape, num_envs, obs_dtype=obs_dtype, device=device,
                                    n_step=n_step, gamma=gamma) for _ in range(streams)]
        self.per_stream = self.streams[0].num_slots

    def __len__(self) -> int:
        return sum(len(s) for s in self.streams)

    @property
    def num_slots(self) -> int:
        return len(self.streams) * self.per_stream

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self.streams)

    def add_frames(self, stream: int, first: np.ndarray, new: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                   terminated: np.ndarray, ended: np.ndarray) -> np.ndarray:
        """One vector step of stream `stream` (see FrameReplay.add_frames); returns its global slots (N,)."""
        local = self.streams[stream].add_frames(first, new, actions, rewards, terminated, ended)
        return stream * self.per_stream + local

    def mark_reset(self, stream: int | None = None) -> None:
        """The stream's envs (default: every stream's) restarted: their next steps begin new episodes."""
        for s in self.streams if stream is None else [self.streams[stream]]:
            s.mark_reset()

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform over every sampleable transition of every stream (with replacement)."""
        lengths = np.array([len(s) for s in self.streams])
        n = int(lengths.sum())
        if n == 0:
            raise ValueError("FrameStreams.sample: no sampleable transitions yet")
        idx = rng.integers(0, n, size=batch_size)
        ends = np.cumsum(lengths)
        stream = np.searchsorted(ends, idx, side="right")  # (B,)
        local = idx - (ends - lengths)[stream]
        return self._by_stream(stream, local, lambda s, i: self.streams[s].batch(i))

    def valid_slots(self, slots: np.ndarray) -> np.ndarray:
        stream, local = np.divmod(np.asarray(slots, dtype=np.int64), self.per_stream)
        ok = np.zeros(len(stream), dtype=bool)
        for s in np.unique(stream):
            ok[stream == s] = self.streams[s].valid_slots(local[stream == s])
        return ok

    def batch_slots(self, slots: np.ndarray) -> Batch:
        stream, local = np.divmod(np.asarray(slots, dtype=np.int64), self.per_stream)
        return self._by_stream(stream, local, lambda s, i: self.streams[s].batch_slots(i))

    @staticmethod
    def _by_stream(stream: np.ndarray, local: np.ndarray, gather: Any) -> Batch:
        """Gather each stream's part, then put the rows back in the order asked."""
        order = np.argsort(stream, kind="stable")  # (B,) rows grouped by stream
        parts = [gather(int(s), local[order][stream[order] == s]) for s in np.unique(stream)]
        if len(parts) == 1:
            return parts[0]
        inverse = torch.from_numpy(np.argsort(order, kind="stable")).to(parts[0].obs.device)
        return Batch._make(None if f[0] is None else torch.cat(f)[inverse] for f in zip(*parts, strict=True))

    def state_dict(self) -> dict[str, Any]:
        return {"streams": [s.state_dict() for s in self.streams]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["streams"]) != len(self.streams):
            raise ValueError(f"its replay has one frame stream per actor, {len(state['streams'])} of them; resume it "
                             f"with --num_actors {len(state['streams'])} (now {len(self.streams)})")
        for s, d in zip(self.streams, state["streams"], strict=True):
            s.load_state_dict(d)
