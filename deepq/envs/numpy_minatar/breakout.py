"""MinAtar Breakout (minatar/environments/breakout.py, MinAtar 1.4.0) over N envs as arrays.

The ball moves along diagonals: it is reflected by the side walls, the top, a brick (which it breaks, +1, unless it
broke one on the step before: then it passes into the brick's cell) and the paddle (back the way it came when it
lands over the paddle's previous cell, sideways when it lands on the paddle's new one); it is lost at the bottom
(terminal). The bricks come back when the ball reaches the bottom row with none left. Each rule below follows
MinAtar's `act` in its order; directions 0..3 are up-left, up-right, down-right, down-left.
"""

from __future__ import annotations

import numpy as np

from deepq.envs.numpy_minatar.core import Streams

_DX = np.array([-1, 1, 1, -1])  # x step of each direction
_DY = np.array([-1, -1, 1, 1])  # y step (rows count down the screen)
_OFF_SIDE = np.array([1, 0, 3, 2])  # a side wall flips x
_OFF_TOP = np.array([3, 2, 1, 0])  # the top, a brick or the paddle under the ball flip y
_OFF_EDGE = np.array([2, 3, 0, 1])  # the paddle's edge sends it back the way it came


class Breakout:
    channels = 4  # paddle, ball, trail, brick
    minimal_actions: tuple[int, ...] = (0, 1, 3)  # n, l, r
    state_fields: tuple[str, ...] = ("ball_x", "ball_y", "ball_dir", "pos", "last_x", "last_y", "strike", "bricks",
                                     "brick_count")

    def __init__(self, n: int, ramping: bool) -> None:  # (Breakout has no difficulty ramp)
        self._n = np.arange(n)
        self.ball_x, self.ball_y, self.ball_dir = (np.zeros(n, np.int64) for _ in range(3))  # (N,) each
        self.pos = np.zeros(n, np.int64)  # (N,) the paddle's column
        self.last_x, self.last_y = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) the ball's cell a step ago
        self.strike = np.zeros(n, bool)  # (N,) the ball was in a brick's cell last step
        self.bricks = np.zeros((n, 10, 10), bool)  # (N, 10, 10)
        self.brick_count = np.zeros(n, np.int64)  # (N,) bricks left (MinAtar counts them when the ball is low)

    def reset(self, rows: np.ndarray, streams: Streams) -> None:
        right = streams.below(rows, 2) == 1  # randint(2): start at the left going down-right, or the right
        self.ball_x[rows], self.ball_dir[rows] = np.where(right, 9, 0), np.where(right, 3, 2)
        self.ball_y[rows], self.pos[rows], self.strike[rows] = 3, 4, False
        self.last_x[rows], self.last_y[rows] = self.ball_x[rows], 3
        self.bricks[rows] = False
        self.bricks[rows, 1:4] = True
        self.brick_count[rows] = 30

    def step(self, actions: np.ndarray, streams: Streams) -> tuple[np.ndarray, np.ndarray]:
        n = self._n
        self.pos = np.where(actions == 1, np.maximum(self.pos - 1, 0),
                            np.where(actions == 3, np.minimum(self.pos + 1, 9), self.pos))
        last_x, last_y, d = self.ball_x, self.ball_y, self.ball_dir  # (N,) each
        new_x, new_y = last_x + _DX[d], last_y + _DY[d]
        wall = (new_x < 0) | (new_x > 9)
        new_x = np.clip(new_x, 0, 9)
        d = np.where(wall, _OFF_SIDE[d], d)
        top = new_y < 0  # the top is checked first: the ball bounced there meets no brick on this step
        new_y = np.maximum(new_y, 0)
        d = np.where(top, _OFF_TOP[d], d)
        brick = ~top & self.bricks[n, new_y, new_x]
        hit = brick & ~self.strike  # a brick broken (+1); right after another one the ball passes into the cell
        if hit.any():
            self.bricks[n[hit], new_y[hit], new_x[hit]] = False
            self.brick_count -= hit
            new_y = np.where(hit, last_y, new_y)
            d = np.where(hit, _OFF_TOP[d], d)
        self.strike = brick
        bottom = ~top & ~brick & (new_y == 9)
        terminal = np.zeros(len(n), bool)
        if bottom.any():
            refill = bottom & (self.brick_count == 0)  # a new wall once the ball is low with no brick left
            self.bricks[refill, 1:4] = True
            self.brick_count[refill] = 30
            under = bottom & (last_x == self.pos)  # the ball came from over the paddle: straight back up
            edge = bottom & ~under & (new_x == self.pos)  # it lands on the paddle: back the way it came
            d = np.where(under, _OFF_TOP[d], np.where(edge, _OFF_EDGE[d], d))
            new_y = np.where(under | edge, last_y, new_y)
            terminal = bottom & ~under & ~edge
        self.last_x, self.last_y = last_x, last_y
        self.ball_x, self.ball_y, self.ball_dir = new_x, new_y, d
        return hit.astype(np.float32), terminal

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        pick = slice(None) if rows is None else rows
        k = len(self._n) if rows is None else len(rows)
        obs = np.zeros((k, 4, 10, 10), np.uint8)
        flat = obs.reshape(k, 400)  # channel c, row y, column x at c * 100 + y * 10 + x
        r = np.arange(k)
        flat[r, 90 + self.pos[pick]] = 1  # the paddle, on the bottom row
        flat[r, 100 + 10 * self.ball_y[pick] + self.ball_x[pick]] = 1
        flat[r, 200 + 10 * self.last_y[pick] + self.last_x[pick]] = 1  # the trail: the ball's previous cell
        obs[:, 3] = self.bricks[pick]
        return obs
