"""Environments: make_env for Gymnasium ids and factories, and a small synchronous vector env.
(deepq/envs/kinds.py picks the vector env of each kind: this one, EnvPool's, or a game's.)

GymVecEnv (a deepq.envs.base.VecEnv) resets an env as soon as its episode ends and hands back the true final observation
separately, so the loop can store (s, a, r, s_final) and act from the reset observation.
Every episode is reset with its own seed, derived from (seed, env index, episode index),
and the actions since the last reset are kept: a checkpoint stores those integers and a
resumed run rebuilds each env's exact state by replaying them, without pickling anything.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from deepq.config import Config, EnvSpec
from deepq.envs.base import Step, check_spaces, env_label, episode_seed, obs_converter, obs_dtype
from deepq.envs.masks import KEY, checked_mask, with_masks
from deepq.errors import ConfigError, EnvError


def make_env(spec: EnvSpec, render_mode: str | None = None, cfg: Config | None = None) -> gym.Env:
    """A Gymnasium env from an id ('CartPole-v1', 'ALE/Pong-v5', 'MinAtar/Breakout-v1') or a factory.

    Atari ids get the standard DQN preprocessing (deepq/envs/atari.py) set by `cfg`; MinAtar grids become
    channels-first uint8; with cfg.frame_stack > 1 other envs get their last k observations stacked. An env that
    masks actions by a Dict observation or an action_masks() method gives its mask as info["action_mask"]
    (deepq/envs/masks.py).
    """
    cfg = cfg if cfg is not None else Config()
    if callable(spec):
        env = spec()
        if not isinstance(env, gym.Env):
            raise ConfigError(f"env factory {spec!r} returned {type(env).__name__}, not a gymnasium.Env")
        return _stack(with_masks(env), cfg.frame_stack)
    register_namespace(spec)
    if spec not in gym.registry:
        close = difflib.get_close_matches(spec, list(gym.registry), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown environment id {spec!r}: it is neither a deepq preset nor a "
                          f"registered Gymnasium id.{hint} Run `deepq presets` for the presets.")
    if "ale_py" in str(gym.registry[spec].entry_point):  # an Atari game: the standard DQN preprocessing
        from deepq.envs.atari import make_atari_env

        return make_atari_env(spec, cfg, render_mode=render_mode)
    try:
        with warnings.catch_warnings():  # MinAtar's -v0 (the paper's full action set) is not out of date
            warnings.filterwarnings("ignore", message=".*is out of date.*")
            env = gym.make(spec, render_mode=render_mode)
    except gym.error.DependencyNotInstalled as e:
        raise ConfigError(f"environment {spec!r} needs an extra package: {e}") from e
    if spec.startswith("MinAtar/"):
        # MinAtar ids have no time limit: an agent that never loses would make an evaluation last forever.
        env = gym.wrappers.TimeLimit(ChannelsFirst(env), max_episode_steps=cfg.max_episode_frames)
    return _stack(with_masks(env), cfg.frame_stack)


def register_namespace(spec: str) -> None:
    """Atari and MinAtar ids are registered by their packages on import: import them when an id is named
    that Gymnasium does not know yet, so that any registered id of an installed family works.

    'ALE/...', '...NoFrameskip...' and 'MinAtar/...' ids need their package (a ConfigError says what to
    install); for any other unknown id the installed families are registered quietly, so that it is found
    ('Breakout-v4' is ale-py's) or a misspelt one is told the close ids of every family.
    """
    if spec in gym.registry:
        return
    named = {"atari": spec.startswith("ALE/") or "NoFrameskip" in spec, "minatar": spec.startswith("MinAtar/")}
    for family in [f for f, n in named.items() if n] or list(named):
        try:
            if family == "atari":
                import ale_py

                ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no "A.L.E: Arcade..." banner
                gym.register_envs(ale_py)
            elif "MinAtar/Breakout-v0" not in gym.registry:
                import logging

                # MinAtar logs a warning on import (seaborn, for rendering, is missing): keep it from the terminal
                # without changing the root logger (a handler there stops logging.warning adding one of its own)
                root, quiet, level = logging.getLogger(), logging.NullHandler(), logging.getLogger().level
                root.addHandler(quiet)
                root.setLevel(logging.ERROR)
                try:
                    from minatar.gym import register_envs
                finally:
                    root.removeHandler(quiet)
                    root.setLevel(level)
                register_envs()
        except ImportError as e:
            if named[family]:
                raise ConfigError(f"environment {spec!r} needs the package {e.name!r}: "
                                  f"pip install 'deepq[{family}]'") from None


def _stack(env: gym.Env, k: int) -> gym.Env:
    # "reset" padding ([o0] * k at reset) is the convention deepq's frame replay rebuilds stacks with.
    return gym.wrappers.FrameStackObservation(env, k, padding_type="reset") if k > 1 else env


class ChannelsFirst(gym.ObservationWrapper):  # type: ignore[type-arg]
    """MinAtar's (H, W, C) bool grids as (C, H, W) uint8, the layout torch convolutions take."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        h, w, c = env.observation_space.shape  # type: ignore[misc]
        self.observation_space = gym.spaces.Box(0, 1, (c, h, w), np.uint8)

    def observation(self, obs: Any) -> np.ndarray:
        return np.ascontiguousarray(np.moveaxis(obs, -1, 0), dtype=np.uint8)  # (C, H, W)


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _dtype(obs: Any) -> str:
    return f", dtype {obs.dtype}" if hasattr(obs, "dtype") else ""


class GymVecEnv:
    """N Gymnasium envs stepped in lockstep, reset on the step an episode ends (see module doc).

    With `episodic_life` (Atari training), a lost life is reported as terminated, so its value is not
    bootstrapped, but the game goes on: no reset, `ended` stays False, the frame history continues.
    Envs that give info["action_mask"] (made so by make_env from any convention: deepq/envs/masks.py) are found by
    one reset of the first env at set-up (unless `action_masks` is False: masks ignored); `legal` then holds the
    masks of the observations to act on and each Step the masks of s' (`next_legal`), as a game's do.
    """

    def __init__(self, factories: Sequence[Callable[[], gym.Env]], seed: int, custom_network: bool = False,
                 episodic_life: bool = False, action_masks: bool = True) -> None:
        self.envs = [f() for f in factories]
        self.obs_shape, self.n_actions = check_spaces(self.envs[0], custom_network)
        self.obs_dtype = obs_dtype(self.envs[0].observation_space)
        self.seed = seed
        self.episodic_life = episodic_life
        self._convert = obs_converter(self.envs[0].observation_space)
        self._action_offset = int(self.envs[0].action_space.start)  # type: ignore[attr-defined]
        self._floats = self.obs_dtype == np.float32  # pixels (uint8) cannot be NaN; floats are checked each step
        self._zeros = np.zeros(len(self.envs) * int(np.prod(self.obs_shape)), np.float32)
        self.env_label = env_label(self.envs[0])
        self.episodes = [0] * len(self.envs)  # episodes started per env
        self.actions_since_reset: list[list[int]] = [[] for _ in self.envs]
        # MinAtar's sticky actions repeat the last action taken, across resets too: the action each episode in
        # progress started with is part of its state (None for envs without one)
        self.carried: list[int | None] = [None] * len(self.envs)
        self.lives = [0] * len(self.envs)  # info["lives"] where the env reports it (Atari)
        self._obs: np.ndarray | None = None
        # (N, A) bool: the legal actions in the observations to act on, for an env that masks them; else None. One
        # reset of env 0, with the seed its first episode will have, says (reset() starts that episode afresh).
        masked = action_masks and KEY in self.envs[0].reset(seed=episode_seed(seed, 0, 0))[1]
        self.legal = np.ones((len(self.envs), self.n_actions), bool) if masked else None

    exact_resume = True  # load_state_dict rebuilds every env's exact state

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def _reset_one(self, i: int) -> np.ndarray:
        game = _sticky_game(self.envs[i])
        self.carried[i] = None if game is None else int(game.last_action)
        obs, info = self.envs[i].reset(seed=episode_seed(self.seed, i, self.episodes[i]))
        self.episodes[i] += 1
        self.actions_since_reset[i] = []
        self.lives[i] = int(info.get("lives", 0))
        if self.legal is not None:
            self.legal[i] = self._mask(i, info, "at the reset")
        x = self._checked(i, obs, "reset observation")
        if self._floats and not np.isfinite(x).all():
            self._refuse(i, "reset observation", x)
        return x

    def _checked(self, i: int, obs: Any, what: str) -> np.ndarray:
        """The env's observation as the network takes it, or EnvError: what arrived must fit the space
        (a (1,) array where the space says (4,) would otherwise be broadcast and trained on)."""
        try:
            x = self._convert(obs)
        except (TypeError, ValueError, IndexError):
            x = None
        if x is None or x.shape != self.obs_shape or (not self._floats and getattr(obs, "dtype", None) is not None
                                                                and obs.dtype.kind == "f"):
            space = self.envs[i].observation_space  # (a property through every wrapper: too slow for each step)
            got = f"{type(obs).__name__} of shape {np.shape(obs)}" if hasattr(obs, "shape") else repr(obs)[:80]
            raise EnvError(f"{self.env_label} (env {i}) returned {_a(what)} that does not fit its observation space "
                           f"{space}: got {got}{_dtype(obs)} in episode {self.episodes[i]}, at its step "
                           f"{len(self.actions_since_reset[i])}; fix the env so it returns what its space says")
        return x

    def _mask(self, i: int, info: dict[str, Any], at: str, terminal: bool = False) -> np.ndarray:
        """Env i's info["action_mask"] as (A,) bool; EnvError naming the env and the step where it is missing, of
        another shape, or has no legal action in an observation that is not terminal."""
        return checked_mask(info, self.n_actions, f"{at} of episode {self.episodes[i]}, at its step "
                            f"{len(self.actions_since_reset[i])}", f"{self.env_label} (env {i})", may_be_empty=terminal)

    def _refuse(self, i: int, what: str, value: Any) -> None:
        bad = np.asarray(value).ravel()
        where = "" if bad.size == 1 else f" (element {int(np.flatnonzero(~np.isfinite(bad))[0])})"
        first = bad[~np.isfinite(bad)][0] if bad.size > 1 else bad[0]
        raise EnvError(f"{self.env_label} (env {i}) returned {_a(what)} of {first}{where} in episode "
                       f"{self.episodes[i]}, at its step {len(self.actions_since_reset[i])}; deepq stopped before "
                       "storing it, as a NaN or inf would poison the replay memory and every later update. Fix the "
                       "env, or wrap it to clean its output")

    def reset(self) -> np.ndarray:
        self._obs = np.stack([self._reset_one(i) for i in range(self.num_envs)])
        return self._obs

    def step(self, actions: np.ndarray) -> Step:
        n = self.num_envs
        obs, final_obs = np.empty((n, *self.obs_shape), self.obs_dtype), np.empty((n, *self.obs_shape), self.obs_dtype)
        rewards = np.empty(n, np.float32)
        terminated, truncated, ended = np.empty(n, bool), np.empty(n, bool), np.empty(n, bool)
        legal, next_legal = self.legal, (None if self.legal is None else np.empty((n, self.n_actions), bool))
        for i, env in enumerate(self.envs):
            a = int(actions[i])
            o, r, term, trunc, info = env.step(a + self._action_offset)
            self.actions_since_reset[i].append(a)
            final_obs[i] = self._checked(i, o, "observation")
            try:
                rewards[i] = r
                if not math.isfinite(r):
                    self._refuse(i, "reward", r)
            except (TypeError, ValueError):
                raise EnvError(f"{self.env_label} (env {i}) returned the reward {r!r} ({type(r).__name__}) in "
                               f"episode {self.episodes[i]}, at its step {len(self.actions_since_reset[i])}; a "
                               "reward must be a number") from None
            truncated[i], ended[i] = trunc, term or trunc
            lives = int(info.get("lives", 0))
            terminated[i] = term or (self.episodic_life and lives < self.lives[i])
            self.lives[i] = lives
            if legal is not None and next_legal is not None:  # the legal actions in s' (a reset then sets legal[i])
                next_legal[i] = legal[i] = self._mask(i, info, "in the step", terminal=bool(term))
            if ended[i]:
                self._check_finite(i, final_obs[i : i + 1])  # while env i's counters are still this episode's
                obs[i] = self._reset_one(i)
            else:
                obs[i] = final_obs[i]
        self._check_finite(0, final_obs)
        self._obs = obs
        return Step(obs, rewards, terminated, truncated, final_obs, ended, next_legal)

    def _check_finite(self, first: int, obs: np.ndarray) -> None:
        """EnvError if a (float) observation of envs first, first + 1, ... holds a NaN or inf: it must not reach
        the replay memory."""
        if not self._floats:
            return
        flat = obs.ravel()
        # A few values: math.isfinite over a list beats any NumPy call (each costs ~1 µs); more: one product
        # with zeros (0·x is NaN only where x is NaN or inf).
        if not (all(map(math.isfinite, flat.tolist())) if flat.size <= 64
                else math.isfinite(np.dot(flat, self._zeros[: flat.size]))):
            for j in range(len(obs)):
                if not np.isfinite(obs[j]).all():
                    self._refuse(first + j, "observation", obs[j])

    def state_dict(self) -> dict[str, Any]:
        """Integers only: episode counters and the actions of each episode in progress."""
        assert self._obs is not None, "reset() first"
        return {"seed": self.seed, "episodes": list(self.episodes),
                "actions": [list(a) for a in self.actions_since_reset], "obs_sum": float(self._obs.sum()),
                "carried": list(self.carried)}

    def load_state_dict(self, state: dict[str, Any]) -> np.ndarray:
        """Rebuild each env's state by reseeding its current episode and replaying its actions."""
        obs = np.empty((self.num_envs, *self.obs_shape), self.obs_dtype)
        for i, env in enumerate(self.envs):
            self.episodes[i] = state["episodes"][i] - 1
            obs[i] = self._reset_one(i)
            carried = (state.get("carried") or self.carried)[i]  # (checkpoints before 2026-12-07 have none)
            if carried is not None and (game := _sticky_game(env)) is not None:
                game.last_action = self.carried[i] = int(carried)
            for a in state["actions"][i]:
                o, _, _, _, info = env.step(int(a) + self._action_offset)
                self.actions_since_reset[i].append(int(a))
                self.lives[i] = int(info.get("lives", 0))
                obs[i] = self._convert(o)
                if self.legal is not None:
                    self.legal[i] = self._mask(i, info, "in the step")
        if not np.isclose(float(obs.sum()), state["obs_sum"], rtol=1e-6, atol=1e-6):
            raise ValueError("replaying the recorded actions did not reproduce the checkpointed observation: "
                             "the environment is not deterministic under a fixed reset seed")
        self._obs = obs
        return obs

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _sticky_game(env: gym.Env) -> Any:
    """MinAtar's Environment behind a Gymnasium env (its `last_action` is what a sticky action repeats), or None."""
    game = getattr(env.unwrapped, "game", None)
    return game if hasattr(game, "last_action") and hasattr(game, "sticky_action_prob") else None
