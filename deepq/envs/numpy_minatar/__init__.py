"""MinAtarVec: N MinAtar envs of one game stepped together with NumPy array operations, a faster VecEnv for the
MinAtar presets (PQN: 128 envs).

It produces exactly what deepq.envs.gym.GymVecEnv over deepq's MinAtar envs (deepq/envs/gym.py's make_env:
MinAtar's gym env, channels-first uint8 grids, TimeLimit at cfg.max_episode_frames) produces for the same seed and
actions: the id's action set (-v0 all six, -v1 the game's minimal set), sticky actions (p = 0.1, repeating the last
action taken, across resets too), the difficulty ramp, and every random draw from the env's own MinAtar stream in
MinAtar's order (each reset seeds it with `episode_seed(seed, i, episode)`, as the gym env's reset(seed=...) does).
The games are array code over all envs, one file each; the random streams are per env (core.Streams).
tests/test_numpy_envs.py checks every observation, reward and flag against GymVecEnv over thousands of steps.

Breakout, SpaceInvaders, Freeway and Asterix are here; Seaquest is not (its lists of bullets and enemies are
removed from while iterated, by value: not worth an inexact copy), so it trains on the reference env.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from deepq.envs.base import Step, episode_seed
from deepq.envs.numpy_cartpole import check_numpy_state
from deepq.envs.numpy_minatar.asterix import Asterix
from deepq.envs.numpy_minatar.breakout import Breakout
from deepq.envs.numpy_minatar.core import Game, Streams, game_state, load_game_state
from deepq.envs.numpy_minatar.freeway import Freeway
from deepq.envs.numpy_minatar.space_invaders import SpaceInvaders

GAMES: dict[str, Callable[[int, bool], Game]] = {  # name -> Game(num_envs, ramping)
    "Breakout": Breakout, "SpaceInvaders": SpaceInvaders, "Freeway": Freeway, "Asterix": Asterix}
ENV_IDS = tuple(f"MinAtar/{game}-v{v}" for game in GAMES for v in (0, 1))
STICKY_ACTION_PROB = 0.1  # MinAtar's default, which its gym envs keep


class MinAtarVec:
    """N envs of one MinAtar game as arrays, reset on the step their episode ends (a deepq.envs.base.VecEnv)."""

    obs_dtype: Any = np.uint8
    exact_resume = True
    legal = None  # every action is always legal

    def __init__(self, env_id: str, num_envs: int, seed: int, max_episode_frames: int) -> None:
        name, _, version = env_id.removeprefix("MinAtar/").rpartition("-")
        if env_id not in ENV_IDS:
            raise ValueError(f"no NumPy MinAtar env for {env_id!r}; there are {', '.join(ENV_IDS)}")
        self.game = GAMES[name](num_envs, True)  # (gym's MinAtar envs ramp the difficulty)
        self.action_set = np.array(self.game.minimal_actions if version == "v1" else range(6))  # agent's -> MinAtar's
        self.obs_shape: tuple[int, ...] = (self.game.channels, 10, 10)
        self.n_actions = len(self.action_set)
        self.env_label = env_id
        self.seed = seed
        self.max_steps = max_episode_frames
        self.streams = Streams(num_envs)
        self.episodes = [0] * num_envs  # episodes started per env
        self.steps = np.zeros(num_envs, np.int64)  # (N,) steps of the episode in progress (the TimeLimit's count)
        self.last_action = np.zeros(num_envs, np.int64)  # (N,) what a sticky action repeats (kept across resets)

    @property
    def num_envs(self) -> int:
        return len(self.episodes)

    def _reset_rows(self, rows: np.ndarray) -> None:
        for i in rows.tolist():
            self.streams.seed(i, episode_seed(self.seed, i, self.episodes[i]))
            self.episodes[i] += 1
        self.steps[rows] = 0
        self.game.reset(rows, self.streams)

    def reset(self) -> np.ndarray:
        self._reset_rows(np.arange(self.num_envs))
        return self.game.observe()

    def step(self, actions: np.ndarray) -> Step:
        a = np.asarray(actions)
        if a.shape != (self.num_envs,) or a.min() < 0 or a.max() >= self.n_actions:
            raise ValueError(f"{self.env_label} takes one action in [0, {self.n_actions}) per env ({self.num_envs}); "
                             f"got {a!r}")
        # MinAtar's Environment.act: draw first, then repeat the last action taken with probability 0.1
        sticky = self.streams.uniform() < STICKY_ACTION_PROB  # (N,)
        self.last_action = np.where(sticky, self.last_action, self.action_set[a])
        rewards, terminated = self.game.step(self.last_action, self.streams)
        self.steps += 1
        truncated = self.steps >= self.max_steps
        ended = terminated | truncated
        final_obs = self.game.observe()  # (N, C, 10, 10): the true s'
        obs = final_obs.copy()
        if ended.any():
            rows = np.flatnonzero(ended)
            self._reset_rows(rows)
            obs[rows] = self.game.observe(rows)
        return Step(obs, rewards, terminated, truncated, final_obs, ended)

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers: counters, the last actions, the words each stream used since its reset seed, the game."""
        return {"backend": "numpy", "env": self.env_label, "seed": self.seed, "episodes": list(self.episodes),
                "steps": self.steps.tolist(), "last_action": self.last_action.tolist(),
                "words_used": self.streams.used(), "game": game_state(self.game)}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        check_numpy_state(state, self.env_label)
        self.episodes = [int(e) for e in state["episodes"]]
        self.steps = np.array(state["steps"], np.int64)
        self.last_action = np.array(state["last_action"], np.int64)
        for i, used in enumerate(state["words_used"]):
            self.streams.seed(i, episode_seed(self.seed, i, self.episodes[i] - 1), skip=int(used))
        load_game_state(self.game, state["game"])
        return self.game.observe()

    def close(self) -> None:
        pass
