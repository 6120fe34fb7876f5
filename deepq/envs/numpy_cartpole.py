"""CartPoleVec: N CartPole-v1 envs stepped together with NumPy array operations, a faster VecEnv for PQN's 32 envs.

It produces exactly what deepq.envs.gym.GymVecEnv over `gym.make('CartPole-v1')` produces for the same seed and
actions: each env's episode starts from Gymnasium's own draw for its reset seed `episode_seed(seed, i, episode)`,
the physics are Gymnasium's CartPoleEnv (Euler, float64 state, float32 observations) written over arrays in the
same order of operations, and episodes are truncated at 500 steps as gym.make's TimeLimit does. Gymnasium calls
np.cos and np.sin on float64 scalars, which run the same ufunc loop as an array does, element by element: the same
bits (on the AVX-512 machine this was written on, 200,000 angles gave no difference between arrays of any length,
strided views, scalars and math.cos/math.sin). tests/test_numpy_envs.py checks every observation, reward and flag
against GymVecEnv over thousands of steps and many episode ends and truncations.

A checkpoint keeps the float64 state itself (Python floats keep every bit), so a resume is exact without a replay.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from deepq.envs.base import Step, episode_seed

ENV_ID = "CartPole-v1"
MAX_STEPS = 500  # CartPole-v1's max_episode_steps

# Gymnasium's CartPoleEnv constants, computed as it computes them
GRAVITY, MASSCART, MASSPOLE, LENGTH, FORCE_MAG, TAU = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
TOTAL_MASS = MASSPOLE + MASSCART
POLEMASS_LENGTH = MASSPOLE * LENGTH
THETA_THRESHOLD = 12 * 2 * math.pi / 360
X_THRESHOLD = 2.4
_FORCES = np.array([-FORCE_MAG, FORCE_MAG])  # action 0 pushes left, 1 right
_THRESHOLDS = np.array([X_THRESHOLD, THETA_THRESHOLD])  # |x|, |theta| beyond these end the episode


class CartPoleVec:
    """N CartPole-v1 envs as arrays, reset on the step their episode ends (a deepq.envs.base.VecEnv; module doc)."""

    obs_shape: tuple[int, ...] = (4,)
    n_actions = 2
    obs_dtype: Any = np.float32
    exact_resume = True
    legal = None  # every action is always legal
    env_label = ENV_ID

    def __init__(self, num_envs: int, seed: int) -> None:
        self.seed = seed
        self.state = np.zeros((num_envs, 4))  # (N, 4) float64: x, x_dot, theta, theta_dot
        self.steps = np.zeros(num_envs, np.int64)  # (N,) steps of the episode in progress (the TimeLimit's count)
        self.episodes = [0] * num_envs  # episodes started per env

    @property
    def num_envs(self) -> int:
        return len(self.episodes)

    def _reset_rows(self, rows: list[int]) -> None:
        for i in rows:
            # gym's reset(seed=s): a fresh Generator(PCG64(SeedSequence(s))), then uniform(-0.05, 0.05, size=(4,))
            rng = np.random.Generator(np.random.PCG64(episode_seed(self.seed, i, self.episodes[i])))
            self.state[i] = rng.uniform(low=-0.05, high=0.05, size=(4,))
            self.episodes[i] += 1
        self.steps[rows] = 0

    def reset(self) -> np.ndarray:
        self._reset_rows(list(range(self.num_envs)))
        return self.state.astype(np.float32)  # (N, 4)

    def step(self, actions: np.ndarray) -> Step:
        a = np.asarray(actions, np.int64)
        if a.shape != (self.num_envs,) or (a >> 1).any():  # (a >> 1 is 0 for 0 and 1 only)
            raise ValueError(f"{ENV_ID} takes one action in {{0, 1}} per env ({self.num_envs}); got {actions!r}")
        x_dot, theta, theta_dot = self.state[:, 1], self.state[:, 2], self.state[:, 3]  # (N,) each, float64
        force = _FORCES[a]
        costheta, sintheta = np.cos(theta), np.sin(theta)
        # Gymnasium's expressions term by term: the same roundings, so the same bits
        temp = (force + POLEMASS_LENGTH * np.square(theta_dot) * sintheta) / TOTAL_MASS
        thetaacc = (GRAVITY * sintheta - costheta * temp) / (
            LENGTH * (4.0 / 3.0 - MASSPOLE * np.square(costheta) / TOTAL_MASS))
        xacc = temp - POLEMASS_LENGTH * thetaacc * costheta / TOTAL_MASS
        # Euler: x += tau * x_dot, x_dot += tau * xacc, theta += tau * theta_dot, theta_dot += tau * thetaacc
        self.state = self.state + TAU * np.stack([x_dot, xacc, theta_dot, thetaacc], axis=1)  # (N, 4)
        # |x| > 2.4 is Gymnasium's x < -2.4 or x > 2.4 (and the same for theta)
        beyond = np.abs(self.state[:, ::2]) > _THRESHOLDS  # (N, 2)
        terminated = beyond[:, 0] | beyond[:, 1]
        self.steps += 1
        truncated = self.steps >= MAX_STEPS
        ended = terminated | truncated
        final_obs = self.state.astype(np.float32)  # (N, 4): the true s'
        obs = final_obs.copy()
        if ended.any():
            rows = np.flatnonzero(ended)
            self._reset_rows(rows.tolist())
            obs[rows] = self.state[rows]
        return Step(obs, np.ones(self.num_envs, np.float32), terminated, truncated, final_obs, ended)

    def state_dict(self) -> dict[str, Any]:
        """Plain numbers: the float64 state (Python floats are exact), step and episode counters."""
        return {"backend": "numpy", "env": ENV_ID, "seed": self.seed, "episodes": list(self.episodes),
                "steps": self.steps.tolist(), "state": self.state.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        check_numpy_state(state, ENV_ID)
        self.episodes = [int(e) for e in state["episodes"]]
        self.steps = np.array(state["steps"], np.int64)
        self.state = np.array(state["state"], np.float64).reshape(self.num_envs, 4)
        return self.state.astype(np.float32)

    def close(self) -> None:
        pass


def check_numpy_state(state: dict[str, Any], env_id: str) -> None:
    """ValueError (a resume names it) unless `state` is a NumPy env's state of `env_id`: a checkpoint of the
    reference env (GymVecEnv keeps the actions to replay) cannot restore a NumPy env."""
    if state.get("backend") != "numpy":
        raise ValueError(f"the checkpoint's {env_id} envs were saved by the reference env (backend 'gymnasium'), not "
                         "deepq's NumPy env: resume with backend='gymnasium' (--backend gymnasium)")
    if state.get("env") != env_id:
        raise ValueError(f"the checkpoint's envs are {state.get('env')!r}, not {env_id!r}")
