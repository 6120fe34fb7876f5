"""What the NumPy MinAtar games share: `Streams`, each env's MinAtar random stream read ahead as raw words and
decoded as arrays, the `Game` protocol each game file implements, and a checkpoint of a game's arrays.

MinAtar draws from one np.random.RandomState per env (seeded `RandomState(seed)` at each reset): the sticky
action's `rand()` at every step, and the games' own draws (spawns, speeds) between them. RandomState is MT19937
with the legacy seeding; its `rand()` is two 32-bit words combined into a double, its `randint(n)` masked rejection
on words (`randint(1)` draws nothing). Streams keeps each env's MT19937 and a block of its next words, and decodes
those draws for many envs at once, word for word as RandomState would (tests/test_numpy_envs.py checks the
decoding against RandomState's own calls). A checkpoint keeps, per env, how many words it used since its reset
seed: the stream is rebuilt by seeding and skipping them.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

_BLOCK = 512  # words read ahead per env (an env uses 2 per step, more when its game draws)
_SKIP_CHUNK = 1 << 20  # words skipped at a time when a checkpoint's stream is rebuilt


class Streams:
    """N MinAtar RandomStates as raw MT19937 words read ahead: `uniform` is `rand()`, `below` is `randint(n)`."""

    def __init__(self, n: int) -> None:
        self._bits = [np.random.MT19937(0) for _ in range(n)]
        self._legacy = [np.random.RandomState(b) for b in self._bits]  # .seed(s) is RandomState(s)'s seeding
        self.words = np.zeros((n, _BLOCK), np.uint64)  # (N, K) each env's next words (in the low 32 bits)
        self.pos = np.full(n, _BLOCK, np.int64)  # (N,) the next unread word of each row
        self._base = np.zeros(n, np.int64)  # (N,) words used before the current row was read
        self._row_start = np.arange(n) * _BLOCK  # (N,) where each row starts in words.ravel()

    def seed(self, i: int, seed: int, skip: int = 0) -> None:
        """Env i's stream restarts as `RandomState(seed)`'s, less its first `skip` words (a checkpoint's)."""
        self._legacy[i].seed(seed)
        for start in range(0, skip, _SKIP_CHUNK):
            self._bits[i].random_raw(min(_SKIP_CHUNK, skip - start))
        self.words[i] = self._bits[i].random_raw(_BLOCK)
        self.pos[i], self._base[i] = 0, skip

    def used(self) -> list[int]:
        """Words each env used since its last seeding: what rebuilds its stream."""
        return (self._base + self.pos).tolist()

    def _take(self, rows: np.ndarray | None, k: int) -> np.ndarray:
        """The next k words of each env in `rows` (None: every env); (R, k) uint64."""
        pos = self.pos if rows is None else self.pos[rows]
        short = pos > _BLOCK - k
        if short.any():
            for i in (np.flatnonzero(short) if rows is None else rows[short]).tolist():
                p = int(self.pos[i])  # keep the unread words, read on after them
                self.words[i, : _BLOCK - p] = self.words[i, p:].copy()
                self.words[i, _BLOCK - p :] = self._bits[i].random_raw(p)
                self.pos[i], self._base[i] = 0, self._base[i] + p
            pos = self.pos if rows is None else self.pos[rows]
        start = pos + (self._row_start if rows is None else self._row_start[rows])
        out = self.words.ravel().take(start[:, None] + np.arange(k))  # (R, k)
        if rows is None:
            self.pos += k
        else:
            self.pos[rows] += k
        return out

    def uniform(self, rows: np.ndarray | None = None) -> np.ndarray:
        """RandomState.rand() of each env in `rows` (None: every env); (R,) float64."""
        return self.uniforms(rows, 1)[:, 0]

    def uniforms(self, rows: np.ndarray | None, k: int) -> np.ndarray:
        """RandomState.rand(k) of each env in `rows`; (R, k) float64 (a double from two words, as MT19937's)."""
        w = self._take(rows, 2 * k)  # (R, 2k)
        return ((w[:, 0::2] >> 5) * 67108864.0 + (w[:, 1::2] >> 6)) / 9007199254740992.0

    def below(self, rows: np.ndarray, n: np.ndarray | int) -> np.ndarray:
        """RandomState.randint(n) of each env in `rows` (n >= 1 each); (R,) int64. Masked rejection: a word's low
        bits under the smallest all-ones mask covering n - 1, again while they exceed n - 1; n = 1 draws nothing."""
        top = np.broadcast_to(np.asarray(n, np.int64) - 1, rows.shape).astype(np.uint64)  # (R,)
        mask = top.copy()
        for shift in (1, 2, 4, 8, 16):
            mask |= mask >> shift
        out = np.zeros(len(rows), np.int64)
        todo = np.flatnonzero(top > 0)  # positions in rows still drawing
        while len(todo):
            v = self._take(rows[todo], 1)[:, 0] & mask[todo]
            ok = v <= top[todo]
            out[todo[ok]] = v[ok]
            todo = todo[~ok]
        return out


class Game(Protocol):
    """One MinAtar game over N envs as arrays (its file says how each rule maps onto MinAtar's code).

    Built as `Game(num_envs, ramping)`; actions are MinAtar's six (n, l, u, r, d, f), after the sticky repeat."""

    channels: int
    minimal_actions: tuple[int, ...]  # the -v1 ids' action set (MinAtar's minimal_action_set)
    state_fields: tuple[str, ...]  # the arrays that hold its state (what a checkpoint keeps)

    def reset(self, rows: np.ndarray, streams: Streams) -> None:
        """Start a new episode in the envs `rows`, drawing from their just-seeded streams as MinAtar's reset does."""

    def step(self, actions: np.ndarray, streams: Streams) -> tuple[np.ndarray, np.ndarray]:
        """One frame of every env: ((N,) float32 rewards, (N,) bool terminal)."""

    def observe(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The observation of the envs `rows` (None: all), as deepq sees MinAtar's: (R, C, 10, 10) uint8."""


def game_state(game: Game) -> dict[str, Any]:
    """A game's arrays as nested lists of plain numbers."""
    return {name: getattr(game, name).tolist() for name in game.state_fields}


def load_game_state(game: Game, state: dict[str, Any]) -> None:
    for name in game.state_fields:
        now = getattr(game, name)
        setattr(game, name, np.array(state[name], now.dtype).reshape(now.shape))
