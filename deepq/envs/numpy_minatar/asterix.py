"""MinAtar Asterix (minatar/environments/asterix.py, MinAtar 1.4.0) over N envs as arrays.

The player moves in 4 directions on rows 1..8; each of those rows holds at most one entity, an enemy or gold,
spawned at a side every few frames (into a random free row) and moving across every few frames. Gold on the
player's cell is +1 and gone, an enemy there ends the game; both are checked before and after the entities move.
Every 100 frames or so spawning and moving speed up (the difficulty ramp). A spawn draws rand() (side), rand()
(gold with probability 1/3) and, when more than one row is free, randint(free rows), from the env's stream, even
when no row is free (then it spawns nothing). Each rule below follows MinAtar's `act` in its order.
"""

from __future__ import annotations

import numpy as np

from deepq.envs.numpy_minatar.core import Streams

RAMP_INTERVAL, INIT_SPAWN_SPEED, INIT_MOVE_INTERVAL = 100, 10, 5
_SLOT_ROWS = np.arange(1, 9)  # slot i is row i + 1


class Asterix:
    channels = 4  # player, enemy, trail, gold
    minimal_actions: tuple[int, ...] = (0, 1, 2, 3, 4)  # n, l, u, r, d
    state_fields: tuple[str, ...] = ("player_x", "player_y", "alive", "ent_x", "ent_right", "ent_gold",
                                     "spawn_speed", "spawn_timer", "move_speed", "move_timer", "ramp_timer",
                                     "ramp_index")

    def __init__(self, n: int, ramping: bool) -> None:
        self.ramping = ramping
        self.player_x, self.player_y = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each
        self.alive = np.zeros((n, 8), bool)  # (N, 8): slot i holds an entity
        self.ent_x = np.zeros((n, 8), np.int64)  # (N, 8) its column
        self.ent_right, self.ent_gold = np.zeros((n, 8), bool), np.zeros((n, 8), bool)  # (N, 8): moving right, gold
        self.spawn_speed, self.spawn_timer = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each
        self.move_speed, self.move_timer = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each
        self.ramp_timer, self.ramp_index = np.zeros(n, np.int64), np.zeros(n, np.int64)  # (N,) each

    def reset(self, rows: np.ndarray, streams: Streams) -> None:
        self.player_x[rows] = self.player_y[rows] = 5
        self.alive[rows] = False
        self.spawn_speed[rows] = self.spawn_timer[rows] = INIT_SPAWN_SPEED
        self.move_speed[rows] = self.move_timer[rows] = INIT_MOVE_INTERVAL
        self.ramp_timer[rows], self.ramp_index[rows] = RAMP_INTERVAL, 0

    def _spawn(self, rows: np.ndarray, streams: Streams) -> None:
        right = streams.uniform(rows) < 1 / 2  # (R,) from the left side, moving right
        gold = streams.uniform(rows) < 1 / 3
        free = ~self.alive[rows]  # (R, 8)
        n_free = free.sum(axis=1)
        some = n_free > 0
        rows, free, right, gold = rows[some], free[some], right[some], gold[some]
        pick = streams.below(rows, n_free[some])  # (R',) which free slot, counted from the top
        slot = ((np.cumsum(free, axis=1) == pick[:, None] + 1) & free).argmax(axis=1)
        self.alive[rows, slot], self.ent_right[rows, slot], self.ent_gold[rows, slot] = True, right, gold
        self.ent_x[rows, slot] = np.where(right, 0, 9)

    def _meet(self, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entities of `alive` on the player's cell: gold is taken (+1 each), an enemy ends the game."""
        at = alive & (self.ent_x == self.player_x[:, None]) & (_SLOT_ROWS == self.player_y[:, None])  # (N, 8)
        taken = at & self.ent_gold
        self.alive &= ~taken
        return taken.sum(axis=1), (at & ~self.ent_gold).any(axis=1)

    def step(self, actions: np.ndarray, streams: Streams) -> tuple[np.ndarray, np.ndarray]:
        spawn = self.spawn_timer == 0
        if spawn.any():
            self._spawn(np.flatnonzero(spawn), streams)
            self.spawn_timer = np.where(spawn, self.spawn_speed, self.spawn_timer)
        self.player_x = np.where(actions == 1, np.maximum(self.player_x - 1, 0),
                                 np.where(actions == 3, np.minimum(self.player_x + 1, 9), self.player_x))
        self.player_y = np.where(actions == 2, np.maximum(self.player_y - 1, 1),
                                 np.where(actions == 4, np.minimum(self.player_y + 1, 8), self.player_y))
        rewards, terminal = self._meet(self.alive)
        move = self.move_timer == 0
        if move.any():
            self.move_timer = np.where(move, self.move_speed, self.move_timer)
            moving = self.alive & move[:, None]  # (N, 8)
            self.ent_x = np.where(moving, self.ent_x + np.where(self.ent_right, 1, -1), self.ent_x)
            self.alive &= ~(moving & ((self.ent_x < 0) | (self.ent_x > 9)))  # off the screen: gone
            more, lost = self._meet(moving & self.alive)
            rewards, terminal = rewards + more, terminal | lost
        self.spawn_timer -= 1
        self.move_timer -= 1
        if self.ramping:
            ramping = (self.spawn_speed > 1) | (self.move_speed > 1)
            ramp = ramping & (self.ramp_timer < 0)  # the interval is over: one step of difficulty
            self.ramp_timer -= ramping & ~ramp
            self.move_speed -= ramp & (self.move_speed > 1) & (self.ramp_index % 2 == 1)
            self.spawn_speed -= ramp & (self.spawn_speed > 1)
            self.ramp_index += ramp
            self.ramp_timer = np.where(ramp, RAMP_INTERVAL, self.ramp_timer)
        return rewards.astype(np.float32), terminal

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        pick = slice(None) if rows is None else rows
        alive, x, right = self.alive[pick], self.ent_x[pick], self.ent_right[pick]  # (R, 8) each
        k = len(alive)
        obs = np.zeros((k, 4, 10, 10), np.uint8)
        r = np.arange(k)
        obs[r, 0, self.player_y[pick], self.player_x[pick]] = 1
        e, s = np.nonzero(alive)  # the entities: env, slot
        obs[e, np.where(self.ent_gold[pick][e, s], 3, 1), s + 1, x[e, s]] = 1
        back = x[e, s] - np.where(right[e, s], 1, -1)  # the trail: the cell it came from, if on the screen
        seen = (back >= 0) & (back <= 9)
        obs[e[seen], 2, s[seen] + 1, back[seen]] = 1
        return obs
