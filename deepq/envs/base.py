"""What every vector env shares: the `Step` it returns, the `VecEnv` protocol the loop, evaluation, replay and
checkpoints rely on, per-episode reset seeds, and how observations reach the network.

The reference implementations of VecEnv: deepq.envs.gym.GymVecEnv (Gymnasium envs stepped one by one, in
lockstep), deepq.envs.atari.EnvPoolVecEnv (EnvPool's C++ Atari) and deepq.games.vec.GameVecEnv (two-player games,
one ply per step, which adds the legal moves and who moved). deepq's NumPy vector envs step all N envs with array
operations and return what the reference returns for the same seeds and actions (Config.backend 'auto' picks
them): deepq.envs.numpy_cartpole.CartPoleVec, deepq.envs.numpy_minatar.MinAtarVec (Breakout, SpaceInvaders,
Freeway, Asterix) and deepq.games.numpy_connect4.Connect4Vec. This module imports no other deepq env module, so
Atari, EnvPool, the NumPy envs and the games build on it without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from deepq.errors import ConfigError
from deepq.observations import one_hot

# backend 'auto' takes a NumPy vector env from this many envs up: below, one env's Python step is the cheaper one
# (µs per vector step of 1 / 4 envs, reference against NumPy: CartPole 11.6 / 38.1 against 22.5 / 24.7, MinAtar
# Breakout 23.1 / 87.1 against 52.8 / 73.5, Connect Four 23.2 / 61.7 against 47.4 / 47.5). Both give the same steps.
AUTO_NUMPY_MIN_ENVS = 4


class Step(NamedTuple):
    obs: np.ndarray  # (N, *obs_shape): what to act on next (reset obs where an episode ended)
    rewards: np.ndarray  # (N,) float32
    terminated: np.ndarray  # (N,) bool
    truncated: np.ndarray  # (N,) bool
    final_obs: np.ndarray  # (N, *obs_shape): the true s' of this step (the final obs where one ended)
    ended: np.ndarray  # (N,) bool: the env was reset after this step (game over or time limit)
    next_legal: np.ndarray | None = None  # (N, A) bool, games and envs that mask actions: the legal actions in s'


@runtime_checkable
class VecEnv(Protocol):
    """N envs stepped in lockstep, each reset on the step its episode ends (Step.final_obs keeps the true s').

    A checkpoint holds `state_dict()` (plain numbers: seeds, counters, actions); `load_state_dict` rebuilds the
    envs from it and returns the observations to act on. `exact_resume` says whether that rebuild is exact
    (False for EnvPool, which restarts the episodes in progress)."""

    obs_shape: tuple[int, ...]  # one observation as the network takes it
    n_actions: int
    obs_dtype: Any  # np.uint8 (pixels) or np.float32
    exact_resume: bool
    env_label: str  # how messages and run names call the env

    @property
    def legal(self) -> np.ndarray | None:
        """(N, A) bool: the legal actions in the observations to act on (games; single-agent envs that mask actions,
        deepq/envs/masks.py), with each Step's next_legal; None: every action is always legal."""

    @property
    def num_envs(self) -> int: ...

    def reset(self) -> np.ndarray:
        """Start an episode in every env; (N, *obs_shape)."""

    def step(self, actions: np.ndarray) -> Step:
        """One action (N,) per env."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray: ...

    def close(self) -> None: ...


def episode_seed(seed: int, env_index: int, episode: int) -> int:
    """The reset seed of one episode of one env: independent streams from one run seed."""
    return int(np.random.SeedSequence([seed, env_index, episode]).generate_state(1)[0])


def obs_converter(space: gym.Space) -> Callable[[Any], np.ndarray]:
    """Observation -> the array the network takes: uint8 stays uint8 (pixels, stored compactly), bool
    becomes uint8, other Boxes float32, and Discrete observations become one-hot float32."""
    if isinstance(space, gym.spaces.Discrete):
        n, start = int(space.n), int(space.start)
        return lambda obs: one_hot(obs, n, start)  # the Agent encodes what it is given with the same function
    dtype = obs_dtype(space)
    return lambda obs: np.asarray(obs, dtype=dtype)


def obs_dtype(space: gym.Space) -> Any:
    """The dtype observations are stored and fed in: uint8 for uint8/bool Boxes, float32 otherwise."""
    return np.uint8 if isinstance(space, gym.spaces.Box) and space.dtype in (np.uint8, np.bool_) else np.float32


def env_label(env: gym.Env) -> str:
    """How messages and run names call an env: its registered id, else its class."""
    return env.spec.id if env.spec is not None else type(env.unwrapped).__name__


def check_spaces(env: gym.Env, custom_network: bool = False) -> tuple[tuple[int, ...], int]:
    """(obs_shape as the network sees it, number of actions); a clear error for what deepq can't take.

    Observations must be arrays (Box) or integers (Discrete, one-hot encoded). Images (>= 3 dims,
    e.g. (C, H, W) or a stack of frames) get a CNN by default (see networks.resolve_arch).
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
    shape = tuple(int(d) for d in obs.shape)
    if len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] > 4 and not custom_network:
        raise ConfigError(f"{name} has channels-last image observations {shape} (H, W, C); deepq's CNNs take "
                          "channels-first (C, H, W) images. Wrap the env to move the channel axis first, "
                          "or pass Config(network=...) with a module that takes (H, W, C).")
    return shape, int(act.n)
