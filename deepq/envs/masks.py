"""Action masks of single-agent envs: the three conventions envs use, made one, and the checks a mask gets.

Envs say which actions are legal in one of three ways, each detected once when the env is made (deepq/envs/gym.py's
make_env) and turned into the first, Gymnasium's own:

    info["action_mask"]                   Gymnasium's Taxi and others: an (A,) array with reset's and step's info
    obs = {"observation": o, "action_mask": m}   a Dict observation (PettingZoo's style, many custom envs):
                                          `AsInfo` hands the network o alone and puts m into the info
    env.action_masks()                    sb3-contrib's MaskablePPO convention: `AsInfo` calls it after reset and step

The first convention shows only in the info, so deepq's vector env (GymVecEnv) reads reset's info once at set-up
(`masked`) to know whether the replay stores masks. The mask then goes where a game's legal moves go: ε-greedy
explores among legal actions, every max in a target runs over the legal actions of s', evaluation and
`Agent.act` choose among them.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from deepq.errors import ConfigError, EnvError
from deepq.observations import MASK_KEY as KEY  # the info key (and the Dict observation's entry) a mask goes by
from deepq.observations import is_mask, split_mask


class AsInfo(gym.Wrapper):  # type: ignore[type-arg]
    """A Dict-observation mask or an `action_masks()` method, as info["action_mask"] (see the module doc)."""

    def __init__(self, env: gym.Env, from_dict: bool) -> None:
        super().__init__(env)
        self.from_dict = from_dict
        if from_dict:
            self.observation_space = bare_space(env)

    def _split(self, obs: Any, info: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if self.from_dict:
            obs, mask = split_mask(obs)
        else:
            mask = self.env.get_wrapper_attr("action_masks")()
        return obs, {**info, KEY: mask}

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        return self._split(obs, info)

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._split(obs, info)
        return obs, reward, terminated, truncated, info


def with_masks(env: gym.Env) -> gym.Env:
    """`env` with a Dict-observation mask or an action_masks() method turned into info["action_mask"]; any other
    env as it is (one whose info carries "action_mask" already needs nothing)."""
    if isinstance(env.observation_space, gym.spaces.Dict) and KEY in env.observation_space.spaces:
        return AsInfo(env, from_dict=True)
    if callable(getattr(env.unwrapped, "action_masks", None)):
        return AsInfo(env, from_dict=False)
    return env


def bare_space(env: gym.Env) -> gym.Space:
    """The observation space of a Dict-observation env without its mask: the one other entry."""
    space = env.observation_space
    assert isinstance(space, gym.spaces.Dict)
    rest = [k for k in space.spaces if k != KEY]
    if len(rest) != 1:
        name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
        raise ConfigError(f"{name} has a Dict observation with an {KEY!r} entry and {len(rest)} other entries "
                          f"({', '.join(map(repr, rest)) or 'none'}); deepq takes one observation beside the mask: "
                          "wrap the env to put the others into one Box (e.g. an 'observation' entry)")
    return space.spaces[rest[0]]


def mask_array(mask: Any, n_actions: int) -> np.ndarray | None:
    """The (A,) bool mask `mask` is (bools, or 0/1 as ints or floats: a Box(0, 1) mask), or None where it is not A
    such entries."""
    try:
        m = np.asarray(mask)
    except (TypeError, ValueError):
        return None
    if m.shape != (n_actions,) or not is_mask(m):
        return None
    return m.astype(bool)


def checked_mask(info: dict[str, Any], n_actions: int, where: str, label: str,
                 may_be_empty: bool = False) -> np.ndarray:
    """info["action_mask"] as (A,) bool, or EnvError naming the env and the step (`where`): a mask that is missing,
    of another shape, or (unless `may_be_empty`: a terminal observation, where nothing is played) with no legal
    action."""
    if KEY not in info:
        raise EnvError(f"{label} gave no info['{KEY}'] {where}, though it gave one at its first reset; an env that "
                       "masks actions must give a mask with every observation")
    m = mask_array(info[KEY], n_actions)
    if m is None:
        got = np.asarray(info[KEY]) if not isinstance(info[KEY], np.ndarray) else info[KEY]
        raise EnvError(f"{label} gave an info['{KEY}'] of shape {got.shape} ({got.dtype}) {where}; it must be "
                       f"{n_actions} bools or 0/1 numbers, one per action")
    if not may_be_empty and not m.any():
        raise EnvError(f"{label} gave an {KEY} with no legal action {where}: an agent cannot act there. Fix the "
                       "env so that an observation it hands back to act on has at least one legal action (or end "
                       "the episode there)")
    return m
