"""MinAtar Freeway (minatar/environments/freeway.py, MinAtar 1.4.0) over N envs as arrays.

The chicken crosses 8 lanes upward, moving at most every 3 frames; reaching the top is +1, sends it back to the
bottom and draws new car speeds and directions. A car on its cell (before or after the car's move) sends it back
to the bottom. The game ends after 2,500 frames. MinAtar moves the cars one by one, checking each against the
chicken; as a hit puts the chicken on the bottom row, where no car drives, checking all cars against the chicken's
cell before any hit is the same. The car draws are randint(1, 6, 8) then rand(8), from the env's stream.

One case is not copied: a direction draw of exactly 0.5 (2^-53 per draw) gives a car of speed 0, whose trail
MinAtar draws in the channel of the car before it (or fails on the first car); here it is drawn in channel 1.
"""

from __future__ import annotations

import numpy as np

from deepq.envs.numpy_minatar.core import Streams

PLAYER_SPEED, TIME_LIMIT = 3, 2500
_LANES = np.arange(1, 9)  # car i drives on row i + 1


class Freeway:
    channels = 7  # chicken, car, speed1..speed5 (the trail: where the car was, in its speed's channel)
    minimal_actions: tuple[int, ...] = (0, 2, 4)  # n, u, d
    state_fields: tuple[str, ...] = ("car_x", "car_timer", "car_speed", "pos", "move_timer", "terminate_timer")

    def __init__(self, n: int, ramping: bool) -> None:  # (Freeway has no difficulty ramp)
        self.car_x, self.car_timer, self.car_speed = (np.zeros((n, 8), np.int64) for _ in range(3))  # (N, 8) each
        self.pos = np.zeros(n, np.int64)  # (N,) the chicken's row (its column is 4)
        self.move_timer, self.terminate_timer = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each

    def _randomize_cars(self, rows: np.ndarray, streams: Streams) -> None:
        speeds = 1 + np.stack([streams.below(rows, 5) for _ in range(8)], axis=1)  # (R, 8) randint(1, 6, 8)
        speeds *= np.sign(streams.uniforms(rows, 8) - 0.5).astype(np.int64)  # directions from rand(8)
        self.car_timer[rows], self.car_speed[rows] = np.abs(speeds), speeds

    def reset(self, rows: np.ndarray, streams: Streams) -> None:
        self._randomize_cars(rows, streams)
        self.car_x[rows] = 0
        self.pos[rows], self.move_timer[rows], self.terminate_timer[rows] = 9, PLAYER_SPEED, TIME_LIMIT

    def step(self, actions: np.ndarray, streams: Streams) -> tuple[np.ndarray, np.ndarray]:
        ready = self.move_timer == 0
        up, down = ready & (actions == 2), ready & (actions == 4)
        self.pos = np.where(up, np.maximum(self.pos - 1, 0), np.where(down, np.minimum(self.pos + 1, 9), self.pos))
        self.move_timer = np.where(up | down, PLAYER_SPEED, self.move_timer)
        won = self.pos == 0
        if won.any():
            self._randomize_cars(np.flatnonzero(won), streams)
            self.pos[won] = 9
        on_lane = _LANES == self.pos[:, None]  # (N, 8): the chicken's row is car i's
        hit = on_lane & (self.car_x == 4)  # before the car moves
        moving = self.car_timer == 0
        self.car_x = np.where(moving, (self.car_x + np.where(self.car_speed > 0, 1, -1)) % 10, self.car_x)
        self.car_timer = np.where(moving, np.abs(self.car_speed), self.car_timer - 1)
        hit |= moving & on_lane & (self.car_x == 4)  # and after
        self.pos = np.where(hit.any(axis=1), 9, self.pos)
        self.move_timer -= self.move_timer > 0
        self.terminate_timer -= 1
        return won.astype(np.float32), self.terminate_timer < 0

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        pick = slice(None) if rows is None else rows
        x, speed = self.car_x[pick], self.car_speed[pick]  # (R, 8) each
        k = len(x)
        obs = np.zeros((k, 7, 10, 10), np.uint8)
        r = np.arange(k)
        obs[r, 0, self.pos[pick], 4] = 1
        back = (x - np.where(speed > 0, 1, -1)) % 10  # (R, 8): the cell the car came from, wrapping
        obs[r[:, None], 1, _LANES, x] = 1
        obs[r[:, None], 1 + np.abs(speed), _LANES, back] = 1
        return obs
