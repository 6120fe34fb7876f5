"""Connect Four for self-play, N games at once in NumPy: what GameVecEnv('openspiel:connect_four', N, seed) returns,
array for array, without a Python call per game.

The reference is OpenSpiel's connect_four through deepq's adapter (deepq/games/adapters.py): a 6x7 board, row 0 at
the bottom, the first player's stones 'x', four in a row (vertical, horizontal or either diagonal) wins, a full board
is a draw. An observation is OpenSpiel's tensor (3, 6, 7) with the planes ordered from the point of view of the
player to move: that player's stones, the opponent's, the empty cells. A ply's reward is the mover's (+1 for the
winning move, 0 otherwise); `final_obs` is s' as the opponent sees it, `next_legal` its legal columns (none once the
game is over), and a game that ends is reset on the same step (its `obs` is the empty board, the first player to
move). tests/test_numpy_connect4.py checks all of it, ply by ply, against GameVecEnv on the same moves.

Each game's board is kept twice: `cells` (N, 6, 7) int8 (0 empty, 1 the first player, 2 the second), from which the
observations are three comparisons, and one bitboard per player (uint64, bit 7*column + row, the seventh bit of each
column always empty), on which four-in-a-row through any cell is a few shifts (the classic bitboard test). Only the
mover's bitboard changes in a ply, so only it is tested.

Checkpoints are GameVecEnv's, integers only: {"seed", "episodes" (resets per env), "moves" (the moves of each game in
progress)}, so a run's checkpoint resumes on either env. Connect Four has no chance moves, so the episode seeds
(deepq.envs.base.episode_seed) that GameVecEnv passes its adapters change nothing; the reset counts are kept for the
checkpoint only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepq.envs.base import Step

ROWS, COLUMNS = 6, 7
GAME_ID = "openspiel:connect_four"  # the game id this env replaces (cfg.backend 'auto' or 'numpy')
COLUMN_BITS = ROWS + 1  # bits per column of a bitboard: the rows, and one always empty (no wrap-around in shifts)
DIRECTIONS = (1, COLUMN_BITS, COLUMN_BITS - 1, COLUMN_BITS + 1)  # bit shifts: vertical, horizontal, both diagonals


def four_in_a_row(stones: np.ndarray) -> np.ndarray:
    """(N,) bool: whether each bitboard (N,) uint64 holds four stones in a line."""
    won = np.zeros(stones.shape, dtype=bool)
    for shift in DIRECTIONS:
        pairs = stones & (stones >> np.uint64(shift))  # (N,) a stone with another one step along the line
        won |= (pairs & (pairs >> np.uint64(2 * shift))) != 0  # two such pairs two steps apart: four in a line
    return won


class Connect4Vec:
    """N games of Connect Four stepped in lockstep; GameVecEnv's interface (a deepq.envs.base.VecEnv, plus `legal`,
    `movers` and `to_move`) and outputs for 'openspiel:connect_four'."""

    exact_resume = True

    def __init__(self, num_envs: int, seed: int, spec: str = GAME_ID) -> None:
        n = num_envs
        self.spec, self.seed = spec, seed
        self.env_label = spec
        self.obs_shape: tuple[int, ...] = (3, ROWS, COLUMNS)
        self.obs_dtype: Any = np.float32
        self.n_actions = COLUMNS
        self.cells = np.zeros((n, ROWS, COLUMNS), dtype=np.int8)  # (N, 6, 7) 0 empty, 1 first player, 2 second
        self.stones = np.zeros((n, 2), dtype=np.uint64)  # (N, 2) each player's bitboard
        self.heights = np.zeros((n, COLUMNS), dtype=np.int64)  # (N, 7) stones in each column
        self.plies = np.zeros(n, dtype=np.int64)  # (N,) moves played in each game in progress
        self.history = np.zeros((n, ROWS * COLUMNS), dtype=np.int64)  # (N, 42) those moves, in order
        self.episodes = np.zeros(n, dtype=np.int64)  # (N,) resets of each env (its games started)
        self.legal = np.zeros((n, COLUMNS), dtype=bool)  # (N, A) at the positions to act on
        self.movers = np.zeros(n, dtype=np.int64)  # (N,) the player who made each env's last move
        self._rows = np.arange(n)  # (N,)
        self._empty_obs = self._encode(np.zeros((1, ROWS, COLUMNS), np.int8), np.zeros(1, np.int64))[0]

    @property
    def num_envs(self) -> int:
        return len(self.plies)

    @property
    def to_move(self) -> np.ndarray:
        """(N,) the player to move in each game (turns alternate, the first player starts)."""
        return self.plies & 1

    @property
    def moves(self) -> list[list[int]]:
        """The moves of each game in progress (GameVecEnv's attribute)."""
        return [row[:p].tolist() for row, p in zip(self.history, self.plies, strict=True)]

    def _encode(self, cells: np.ndarray, player: np.ndarray) -> np.ndarray:
        """(n, 3, 6, 7) float32: boards (n, 6, 7) as `player` (n,) sees them (the adapter's plane order)."""
        mine = (player + 1).astype(np.int8)[:, None, None]  # (n, 1, 1) the cell value of player's stones
        obs = np.empty((len(cells), 3, ROWS, COLUMNS), dtype=np.float32)
        np.equal(cells, mine, out=obs[:, 0])
        np.equal(cells, 3 - mine, out=obs[:, 1])
        np.equal(cells, 0, out=obs[:, 2])
        return obs

    def _clear(self, rows: np.ndarray | slice) -> None:
        """Empty the boards of `rows` for their next game (the first player to move)."""
        self.cells[rows] = 0
        self.stones[rows] = 0
        self.heights[rows] = 0
        self.plies[rows] = 0
        self.episodes[rows] += 1

    def _play(self, rows: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop the mover's stone in `columns` (n,) of the games `rows` (n,); (movers (n,), whether they won (n,))."""
        mover = self.plies[rows] & 1  # (n,)
        height = self.heights[rows, columns]  # (n,) the row the stone lands on
        self.cells[rows, height, columns] = (mover + 1).astype(np.int8)
        bit = np.left_shift(np.uint64(1), (columns * COLUMN_BITS + height).astype(np.uint64))  # (n,)
        self.stones[rows, mover] |= bit
        self.heights[rows, columns] = height + 1
        self.history[rows, self.plies[rows]] = columns
        self.plies[rows] += 1
        return mover, four_in_a_row(self.stones[rows, mover])

    def _check(self, actions: np.ndarray) -> np.ndarray:
        a = np.asarray(actions)
        if a.shape != (self.num_envs,):
            raise ValueError(f"expected one action per env, shape ({self.num_envs},); got shape {a.shape}")
        a = a.astype(np.int64)
        ok = (a >= 0) & (a < COLUMNS)
        ok[ok] = self.legal[self._rows[ok], a[ok]]
        if not ok.all():
            i = int(np.argmin(ok))
            raise ValueError(f"env {i}: action {a[i]} is illegal in this position; act with the legal mask")
        return a

    def reset(self) -> np.ndarray:
        self._clear(slice(None))
        self.legal[:] = True
        return np.repeat(self._empty_obs[None], self.num_envs, axis=0)  # (N, 3, 6, 7)

    def step(self, actions: np.ndarray) -> Step:
        a = self._check(actions)  # (N,)
        mover, won = self._play(self._rows, a)
        self.movers[:] = mover
        ended = won | (self.plies == ROWS * COLUMNS)  # (N,) a win, or a draw on a full board
        final_obs = self._encode(self.cells, 1 - mover)  # s' as the opponent (the next mover) sees it
        next_legal = self.heights < ROWS  # (N, A)
        next_legal[ended] = False  # no move once the game is over
        obs = final_obs.copy()
        if ended.any():
            self._clear(ended)
            obs[ended] = self._empty_obs
        np.less(self.heights, ROWS, out=self.legal)
        rewards = won.astype(np.float32)  # (N,) the mover's: +1 for a win, 0 for a draw or a move
        return Step(obs, rewards, ended.copy(), np.zeros_like(ended), final_obs, ended, next_legal)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "episodes": self.episodes.tolist(), "moves": self.moves}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild each game in progress from its moves (a GameVecEnv checkpoint's too), all games at once."""
        moves = [np.asarray(m, dtype=np.int64) for m in state["moves"]]
        if len(moves) != self.num_envs or len(state["episodes"]) != self.num_envs:
            raise ValueError(f"the state holds {len(moves)} games; this env has {self.num_envs}")
        self._clear(slice(None))
        self.episodes[:] = state["episodes"]
        counts = np.array([len(m) for m in moves], dtype=np.int64)  # (N,)
        for k in range(int(counts.max(initial=0))):  # the k-th move of every game that has one
            rows = np.flatnonzero(counts > k)
            columns = np.array([moves[i][k] for i in rows], dtype=np.int64)
            legal = (columns >= 0) & (columns < COLUMNS)
            legal[legal] = self.heights[rows[legal], columns[legal]] < ROWS
            if not legal.all():
                raise ValueError(f"env {rows[~legal][0]}: move {k} of the saved game is illegal")
            _, won = self._play(rows, columns)
            over = won | (self.plies[rows] == ROWS * COLUMNS)  # (n,)
            if over.any():
                raise ValueError(f"env {rows[over][0]}: the saved game is over; a checkpoint holds games in progress")
        np.less(self.heights, ROWS, out=self.legal)
        return self._encode(self.cells, self.to_move)

    def close(self) -> None:
        pass
