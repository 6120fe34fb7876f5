"""Environments: make_env for Gymnasium ids and factories, and a small synchronous vector env.

VecEnv resets an env as soon as its episode ends and hands back the true final observation
separately, so the loop can store (s, a, r, s_final) and act from the reset observation.
Every episode is reset with its own seed, derived from (seed, env index, episode index),
and the actions since the last reset are kept: a checkpoint stores those integers and a
resumed run rebuilds each env's exact state by replaying them, without pickling anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from deepq.config import EnvSpec
from deepq.errors import ConfigError


def make_env(spec: EnvSpec, render_mode: str | None = None) -> gym.Env:
    """A Gymnasium env from an id ('CartPole-v1') or a zero-argument factory."""
    if callable(spec):
        env = spec()
        if not isinstance(env, gym.Env):
            raise ConfigError(f"env factory {spec!r} returned {type(env).__name__}, not a gymnasium.Env")
        return env
    if spec not in gym.registry:
        close = difflib.get_close_matches(spec, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown environment id {spec!r}: it is neither a deepq preset nor a "
                          f"registered Gymnasium id.{hint} Run `deepq presets` for the presets.")
    try:
        return gym.make(spec, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError(f"environment {spec!r} needs an extra package: {e}") from e


def check_spaces(env: gym.Env, custom_network: bool = False) -> tuple[tuple[int, ...], int]:
    """(obs_shape as the network sees it, number of actions); a clear error for what deepq can't take.

    Observations must be arrays (Box) or integers (Discrete, one-hot encoded); pixel arrays need
    a custom network, since the default MLP does not take them.
    """
    act, obs = env.action_space, env.observation_space
    name = env.spec.id if env.spec else type(env.unwrapped).__name__
    if not isinstance(act, gym.spaces.Discrete):
        raise ConfigError(f"{name} has action space {act}; DQN needs a Discrete action space (one Q value "
                          "per action). Discretize it with a wrapper, or use an algorithm for continuous actions.")
    if isinstance(obs, gym.spaces.Discrete):
        return (int(obs.n),), int(act.n)  # one-hot encoded
    if not isinstance(obs, gym.spaces.Box):
        raise ConfigError(f"{name} has observation space {obs}; deepq takes Box or Discrete observations. "
                          "Wrap the env with gymnasium.wrappers.FlattenObservation to make it a Box.")
    if obs.dtype == np.uint8 and len(obs.shape) >= 2 and not custom_network:
        raise ConfigError(f"{name} has image observations {obs.shape} (uint8); the default MLP does not take "
                          "pixels. Pass Config(network=...) with a convolutional module.")
    return tuple(int(d) for d in obs.shape), int(act.n)


class Step(NamedTuple):
    obs: np.ndarray  # (N, *obs_shape): what to act on next (reset obs where an episode ended)
    rewards: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    final_obs: np.ndarray  # (N, *obs_shape): the true s' of this step (the final obs where one ended)


def obs_converter(space: gym.Space) -> Callable[[Any], np.ndarray]:
    """Observation -> float32 array the network takes (Discrete observations become one-hot)."""
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)

        def one_hot(obs: Any) -> np.ndarray:
            out = np.zeros(n, dtype=np.float32)
            out[int(obs) - start] = 1.0
            return out

        return one_hot
    return lambda obs: np.asarray(obs, dtype=np.float32)


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """The reset seed of one episode of one env: independent streams from one run seed."""
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


class VecEnv:
    """N Gymnasium envs stepped in lockstep, reset on the step an episode ends (see module doc)."""

    def __init__(self, factories: Sequence[Callable[[], gym.Env]], seed: int, custom_network: bool = False) -> None:
        self.envs = [f() for f in factories]
        self.obs_shape, self.n_actions = check_spaces(self.envs[0], custom_network)
        self.seed = seed
        self._convert = obs_converter(self.envs[0].observation_space)
        self._action_offset = int(self.envs[0].action_space.start)  # type: ignore[attr-defined]
        self.episodes = [0] * len(self.envs)  # episodes started per env
        self.actions_since_reset: list[list[int]] = [[] for _ in self.envs]
        self._obs: np.ndarray | None = None

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def _reset_one(self, i: int) -> np.ndarray:
        obs, _ = self.envs[i].reset(seed=episode_seed(self.seed, i, self.episodes[i]))
        self.episodes[i] += 1
        self.actions_since_reset[i] = []
        return self._convert(obs)

    def reset(self) -> np.ndarray:
        self._obs = np.stack([self._reset_one(i) for i in range(self.num_envs)])
        return self._obs

    def step(self, actions: np.ndarray) -> Step:
        n = self.num_envs
        obs, final_obs = np.empty((n, *self.obs_shape), np.float32), np.empty((n, *self.obs_shape), np.float32)
        rewards = np.empty(n, np.float32)
        terminated, truncated = np.empty(n, bool), np.empty(n, bool)
        for i, env in enumerate(self.envs):
            a = int(actions[i])
            o, r, term, trunc, _ = env.step(a + self._action_offset)
            self.actions_since_reset[i].append(a)
            final_obs[i] = self._convert(o)
            rewards[i], terminated[i], truncated[i] = r, term, trunc
            obs[i] = self._reset_one(i) if (term or trunc) else final_obs[i]
        self._obs = obs
        return Step(obs, rewards, terminated, truncated, final_obs)

    def state_dict(self) -> dict[str, Any]:
        """Integers only: episode counters and the actions of each episode in progress."""
        assert self._obs is not None, "reset() first"
        return {"seed": self.seed, "episodes": list(self.episodes),
                "actions": [list(a) for a in self.actions_since_reset], "obs_sum": float(self._obs.sum())}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild each env's state by reseeding its current episode and replaying its actions."""
        obs = np.empty((self.num_envs, *self.obs_shape), np.float32)
        for i, env in enumerate(self.envs):
            self.episodes[i] = state["episodes"][i] - 1
            obs[i] = self._reset_one(i)
            for a in state["actions"][i]:
                o, *_ = env.step(int(a) + self._action_offset)
                self.actions_since_reset[i].append(int(a))
                obs[i] = self._convert(o)
        if not np.isclose(float(obs.sum()), state["obs_sum"], rtol=1e-6, atol=1e-6):
            raise ValueError("replaying the recorded actions did not reproduce the checkpointed observation: "
                             "the environment is not deterministic under a fixed reset seed")
        self._obs = obs
        return obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def make_vec_env(spec: EnvSpec, num_envs: int, seed: int, custom_network: bool = False) -> VecEnv:
    return VecEnv([lambda: make_env(spec) for _ in range(num_envs)], seed, custom_network)
