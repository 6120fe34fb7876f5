"""MinAtar SpaceInvaders (minatar/environments/space_invaders.py, MinAtar 1.4.0) over N envs as arrays.

The cannon moves along the bottom row and fires upward (a cool-down of 5 frames); the aliens step sideways every
few frames (fewer as they thin out) and, at an edge, down a row and back; the alien nearest the cannon (by column,
the leftmost of two as near) fires every 10 frames. A shot alien is +1; a cleared wave comes back faster (the
difficulty ramp); an alien or an enemy bullet on the cannon ends the game. Each rule below follows MinAtar's `act`
in its order, np.roll's wrap-around included. The game draws nothing at random: only the sticky actions do.
"""

from __future__ import annotations

import numpy as np

from deepq.envs.numpy_minatar.core import Streams

SHOT_COOL_DOWN, ENEMY_MOVE_INTERVAL, ENEMY_SHOT_INTERVAL = 5, 12, 10
_COLUMNS = np.arange(10)


class SpaceInvaders:
    channels = 6  # cannon, alien, alien_left, alien_right, friendly_bullet, enemy_bullet
    minimal_actions: tuple[int, ...] = (0, 1, 3, 5)  # n, l, r, f
    state_fields: tuple[str, ...] = ("pos", "f_bullets", "e_bullets", "aliens", "alien_dir", "move_interval",
                                     "move_timer", "alien_shot_timer", "ramp_index", "shot_timer")

    def __init__(self, n: int, ramping: bool) -> None:
        self._n = np.arange(n)
        self.ramping = ramping
        self.pos = np.zeros(n, np.int64)  # (N,) the cannon's column
        self.f_bullets, self.e_bullets, self.aliens = (np.zeros((n, 10, 10), bool) for _ in range(3))  # (N, 10, 10)
        self.alien_dir = np.zeros(n, np.int64)  # (N,) -1 left, +1 right
        self.move_interval = np.zeros(n, np.int64)  # (N,) frames between alien moves (ramps down to 6)
        self.move_timer, self.alien_shot_timer = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each
        self.ramp_index, self.shot_timer = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each

    def reset(self, rows: np.ndarray, streams: Streams) -> None:
        self.pos[rows], self.alien_dir[rows] = 5, -1
        self.f_bullets[rows] = self.e_bullets[rows] = self.aliens[rows] = False
        self.aliens[rows, 0:4, 2:8] = True
        self.move_interval[rows] = self.move_timer[rows] = ENEMY_MOVE_INTERVAL
        self.alien_shot_timer[rows] = ENEMY_SHOT_INTERVAL
        self.ramp_index[rows] = self.shot_timer[rows] = 0

    def step(self, actions: np.ndarray, streams: Streams) -> tuple[np.ndarray, np.ndarray]:
        n, aliens = self._n, self.aliens
        fire = (actions == 5) & (self.shot_timer == 0)
        if fire.any():
            self.f_bullets[n[fire], 9, self.pos[fire]] = True
            self.shot_timer[fire] = SHOT_COOL_DOWN
        self.pos = np.where(actions == 1, np.maximum(self.pos - 1, 0),
                            np.where(actions == 3, np.minimum(self.pos + 1, 9), self.pos))
        self.f_bullets = np.roll(self.f_bullets, -1, axis=1)  # friendly bullets up a row, enemy ones down
        self.f_bullets[:, 9] = False
        self.e_bullets = np.roll(self.e_bullets, 1, axis=1)
        self.e_bullets[:, 0] = False
        terminal = self.e_bullets[n, 9, self.pos] | aliens[n, 9, self.pos]
        move = self.move_timer == 0
        if move.any():
            self.move_timer = np.where(move, np.minimum(aliens.sum(axis=(1, 2)), self.move_interval), self.move_timer)
            edge = move & ((aliens[:, :, 0].any(axis=1) & (self.alien_dir < 0))
                           | (aliens[:, :, 9].any(axis=1) & (self.alien_dir > 0)))
            self.alien_dir = np.where(edge, -self.alien_dir, self.alien_dir)
            terminal |= edge & aliens[:, 9].any(axis=1)
            aliens[edge] = np.roll(aliens[edge], 1, axis=1)  # down a row (the bottom row wraps to the top)
            for way in (-1, 1):  # the others sideways, wrapping
                side = move & ~edge & (self.alien_dir == way)
                aliens[side] = np.roll(aliens[side], way, axis=2)
            terminal |= move & aliens[n, 9, self.pos]
        shoot = self.alien_shot_timer == 0
        if shoot.any():  # from the lowest alien of the nearest column holding one (the left one of two as near)
            rows = np.flatnonzero(shoot)
            grid = aliens[rows]  # (R, 10, 10)
            nearness = np.abs(_COLUMNS - self.pos[rows, None]) * 10 + _COLUMNS  # (R, 10)
            col = np.where(grid.any(axis=1), nearness, 1000).argmin(axis=1)  # (R,)
            row = 9 - grid[np.arange(len(rows)), ::-1, col].argmax(axis=1)  # (R,)
            self.e_bullets[rows, row, col] = True
            self.alien_shot_timer[rows] = ENEMY_SHOT_INTERVAL
        kills = aliens & self.f_bullets  # (N, 10, 10)
        rewards = kills.sum(axis=(1, 2)).astype(np.float32)
        aliens &= ~kills
        self.f_bullets &= ~kills
        self.shot_timer -= self.shot_timer > 0
        self.move_timer -= 1
        self.alien_shot_timer -= 1
        cleared = ~aliens.any(axis=(1, 2))
        if cleared.any():  # a new wave, faster while the interval is above 6
            ramp = cleared & (self.move_interval > 6) & self.ramping
            self.move_interval -= ramp
            self.ramp_index += ramp
            aliens[cleared, 0:4, 2:8] = True
        return rewards, terminal

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        pick = slice(None) if rows is None else rows
        aliens, left = self.aliens[pick], self.alien_dir[pick] < 0  # (R, 10, 10), (R,)
        k = len(aliens)
        obs = np.zeros((k, 6, 10, 10), np.uint8)
        obs[np.arange(k), 0, 9, self.pos[pick]] = 1
        obs[:, 1] = aliens
        obs[:, 2] = aliens & left[:, None, None]
        obs[:, 3] = aliens & ~left[:, None, None]
        obs[:, 4] = self.f_bullets[pick]
        obs[:, 5] = self.e_bullets[pick]
        return obs
