"""Fake frame-stacking envs for the frame replays' tests (test_frame_replay.py, test_frame_streams.py).

Every frame an env produces is filled with its own number, so a rebuilt stack can be read
back as a list of numbers and compared with the stack the env really showed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepq.core.frame_replay import FrameReplay
from deepq.core.replay import Batch

FRAME = (2,)  # a tiny frame: frame number v is stored as [v, v] (int64, so numbers never wrap)


class StackingEnvs:
    """N fake envs with FrameStackObservation(padding_type="reset") stacks of numbered frames.

    Env i's frames are numbered base*i + 0, 1, 2, ... in the order they appear (reset frames
    included; a reset happens when the next step needs it), so a frame's number minus base*i
    is the count of frames the env showed before it. Every add goes to `memory` and, in
    full, to the reference list `seen[i]`.
    """

    def __init__(self, memory: Any, k: int, n: int, base: int = 100_000, dtype: Any = np.int64) -> None:
        self.memory, self.k, self.n, self.base, self.dtype = memory, k, n, base, dtype
        self.produced = [0] * n  # frames shown per env
        self.stacks: list[list[int] | None] = [None] * n  # None: the env must be reset
        self.seen: list[list[tuple[list[int], int, float, list[int], bool]]] = [[] for _ in range(n)]

    def _frame(self, i: int) -> int:
        self.produced[i] += 1
        return self.base * i + self.produced[i] - 1

    def step(self, terminated: list[bool] | None = None, ended: list[bool] | None = None) -> None:
        terminated = terminated or [False] * self.n
        ended = ended or [False] * self.n
        stacks = [s if s is not None else [self._frame(i)] * self.k for i, s in enumerate(self.stacks)]  # [f0]*k
        nexts = [[*s[1:], self._frame(i)] for i, s in enumerate(stacks)]
        actions = np.array([len(self.seen[i]) % 5 for i in range(self.n)])
        rewards = np.array([0.5 * len(self.seen[i]) for i in range(self.n)], dtype=np.float32)
        self.memory.add(self.array(stacks), actions, rewards, self.array(nexts), np.array(terminated),
                        np.array(ended))
        for i in range(self.n):
            self.seen[i].append((stacks[i], int(actions[i]), float(rewards[i]), nexts[i], terminated[i]))
            self.stacks[i] = None if ended[i] else nexts[i]

    def array(self, stacks: list[list[int]]) -> np.ndarray:
        return np.array(stacks, dtype=self.dtype)[:, :, None].repeat(FRAME[0], axis=2)  # (N, k, 2)


def envs_for(mem: FrameReplay, base: int = 100_000, dtype: Any = np.int64) -> StackingEnvs:
    return StackingEnvs(mem, mem.k, mem.num_envs, base, dtype)


def frames(x: torch.Tensor) -> list[list[int]]:
    """(B, k, 2) stacks as lists of frame numbers (checking each frame is one number throughout)."""
    assert (x[..., 0] == x[..., 1]).all()
    return x[..., 0].tolist()


def everything(mem: FrameReplay) -> Batch:
    return mem.batch(np.arange(len(mem)))


def assert_same_batch(a: Batch, b: Batch) -> None:
    assert a.next_legal is None and b.next_legal is None  # legal-action masks are for games only
    for x, y in zip(a[:-1], b[:-1], strict=True):
        assert torch.equal(x, y)
