"""N two-player games stepped in lockstep for the one training loop (self-play).

Every ply is one transition, from the mover's point of view: (s, a, r, s', terminated), where s is
the position seen by the player to move, r the mover's reward for a, and s' the next position seen
by the *opponent*, who moves next. The loop stores all plies, whoever played them (Q-learning is
off-policy), and the TD target negates the value of s' (deepq/core/losses.py, td_target). The legal
actions of s' are returned with each step, so every max in a target runs over legal moves only.

The deepq.envs.base.VecEnv protocol, plus `legal` (the masks of the positions to act on) and
`movers` (who played the last step's moves).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepq.envs.base import Step, episode_seed
from deepq.games.adapters import Game, PettingZooGame, make_game


class GameVecEnv:
    """Resets a game as soon as it ends; checkpoints hold integers only (seeds and moves played)."""

    exact_resume = True

    def __init__(self, spec: str, num_envs: int, seed: int) -> None:
        self.games: list[Game] = [make_game(spec) for _ in range(num_envs)]
        first = self.games[0]
        self.spec, self.seed = spec, seed
        self.env_label = spec
        self.obs_shape: tuple[int, ...] = tuple(first.obs_shape)
        self.obs_dtype: Any = np.float32
        self.n_actions = first.n_actions
        self.episodes = [0] * num_envs
        self.moves: list[list[int]] = [[] for _ in range(num_envs)]  # the moves of each game in progress
        self.legal = np.zeros((num_envs, self.n_actions), dtype=bool)  # (N, A) at the positions to act on
        self.movers = np.zeros(num_envs, dtype=np.int64)  # (N,) the player who made each env's last move
        self._obs: np.ndarray | None = None

    @property
    def num_envs(self) -> int:
        return len(self.games)

    @property
    def to_move(self) -> np.ndarray:
        """(N,) the player to move in each game."""
        return np.array([g.to_move for g in self.games])

    def _reset_one(self, i: int) -> np.ndarray:
        self.games[i].reset(episode_seed(self.seed, i, self.episodes[i]))
        self.episodes[i] += 1
        self.moves[i] = []
        self.legal[i] = self.games[i].legal_mask()
        return self.games[i].observation()

    def reset(self) -> np.ndarray:
        self._obs = np.stack([self._reset_one(i) for i in range(self.num_envs)])
        return self._obs

    def step(self, actions: np.ndarray) -> Step:
        n = self.num_envs
        obs = np.empty((n, *self.obs_shape), np.float32)
        final_obs = np.empty((n, *self.obs_shape), np.float32)
        next_legal = np.zeros((n, self.n_actions), dtype=bool)
        rewards = np.empty(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        for i, game in enumerate(self.games):
            a = int(actions[i])
            if not self.legal[i, a]:
                raise ValueError(f"env {i}: action {a} is illegal in this position; act with the legal mask")
            self.movers[i] = game.to_move
            rewards[i] = game.step(a)
            self.moves[i].append(a)
            final_obs[i] = game.observation()  # s' as the opponent (the next mover) sees it
            next_legal[i] = game.legal_mask()  # all False once the game is over
            if game.is_terminal:
                cut = isinstance(game, PettingZooGame) and game.truncated
                terminated[i], truncated[i] = not cut, cut
                obs[i] = self._reset_one(i)
            else:
                obs[i] = final_obs[i]
                self.legal[i] = next_legal[i]
        self._obs = obs
        return Step(obs, rewards, terminated, truncated, final_obs, terminated | truncated, next_legal)

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "episodes": list(self.episodes), "moves": [list(m) for m in self.moves]}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild each game in progress by resetting it with its seed and replaying its moves."""
        obs = np.empty((self.num_envs, *self.obs_shape), np.float32)
        for i, game in enumerate(self.games):
            self.episodes[i] = state["episodes"][i] - 1
            obs[i] = self._reset_one(i)
            for a in state["moves"][i]:
                game.step(int(a))
                self.moves[i].append(int(a))
            self.legal[i] = game.legal_mask()
            obs[i] = game.observation()
        self._obs = obs
        return obs

    def close(self) -> None:
        for game in self.games:
            if isinstance(game, PettingZooGame):
                game.env.close()
