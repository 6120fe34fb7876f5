"""Single-agent Gymnasium envs a tree search can clone: classic control and ALE Atari, built as deepq trains on them.

They have the duck-typed interface of the two-player game adapters (deepq/games/adapters.py): `clone()`,
`legal_mask()`, `step(a) -> reward`, `is_terminal`, `to_move` (always 0), `observation()`, `n_actions`,
`two_player` (False) and `reset(seed)`. The env is made by `make_env`, so observations are exactly what
the network sees in training (Atari: deepq's AtariFrames preprocessing and frame stack). Rewards are raw.

A state and all its clones share one live env: at any time one of them (the owner) is held by the env,
every other one keeps a snapshot of its own state. Stepping a state that is not the owner first saves
the owner's state into the owner and restores its own. So a rollout that steps one state pays nothing
extra per step, a clone costs one snapshot, and switching between states one save plus one restore.
Snapshots are never changed once taken, so clones can share them. Not thread-safe (one env underneath).
"""

from __future__ import annotations

import copy
import weakref
from collections import deque
from typing import Any, Protocol, TypeVar

import gymnasium as gym
import numpy as np

from deepq.config import Config, EnvSpec
from deepq.core.mcts import Searchable
from deepq.envs.atari import AtariFrames, is_atari
from deepq.envs.base import check_spaces, obs_converter
from deepq.envs.gym import make_env
from deepq.errors import ConfigError

# The wrappers make_env puts around these envs, and the attributes of each that a step changes.
# OrderEnforcing and PassiveEnvChecker only check API use after the first reset and step: they
# never change what a step does, so they have nothing to restore.
WRAPPER_STATE: dict[type, tuple[str, ...]] = {
    gym.wrappers.TimeLimit: ("_elapsed_steps",),
    gym.wrappers.FrameStackObservation: ("obs_queue",),
    gym.wrappers.OrderEnforcing: (),
    gym.wrappers.PassiveEnvChecker: (),
    AtariFrames: ("_last", "_lives"),  # the latest raw frame (max-pooled with the next) and the lives count
}

# Classic-control envs (by entry point) and the attributes of the env that a step changes. None of
# their steps draws random numbers (Acrobot's torque noise is off), so the RNG is not part of the state.
CLASSIC_CONTROL: dict[str, tuple[str, ...]] = {
    "gymnasium.envs.classic_control.cartpole:CartPoleEnv": ("state", "steps_beyond_terminated"),
    "gymnasium.envs.classic_control.acrobot:AcrobotEnv": ("state",),
    "gymnasium.envs.classic_control.mountain_car:MountainCarEnv": ("state",),
}

Snapshot = tuple[Any, tuple[Any, ...]]  # (the base env's state, the wrappers' attributes)
S = TypeVar("S", bound="_SearchEnv")


def _classic_ids() -> list[str]:
    return [k for k, spec in gym.registry.items() if spec.entry_point in CLASSIC_CONTROL]


def not_searchable(spec: EnvSpec, why: str) -> ConfigError:
    """The error for an env deepq cannot clone: what is wrong and which envs can be searched."""
    name = spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
    return ConfigError(
        f"env {name!r} cannot be cloned for tree search: {why}. Searchable envs: two-player games "
        f"('openspiel:<game>', 'pettingzoo:<game>'), Gymnasium classic control ({', '.join(_classic_ids())}) "
        "and Atari through ale-py ('ALE/<Game>-v5')")


class _SearchEnv:
    """One state of a shared env (see the module doc); subclasses save and restore the base env."""

    two_player = False
    to_move = 0  # one agent: always the mover

    def __init__(self, spec: str, cfg: Config | None = None) -> None:
        env = make_env(spec, cfg=cfg)
        self.obs_shape, self.n_actions = check_spaces(env)  # Discrete actions and array observations, or a ConfigError
        self.name = spec
        self.env = env
        self._offset = int(env.action_space.start)  # type: ignore[attr-defined]
        self._convert = obs_converter(env.observation_space)
        self._fields = self._wrapper_fields(env)
        # The owner is referenced weakly: a state the search dropped is never saved on a switch
        self._owner: list[weakref.ref[_SearchEnv] | None] = [None]  # a cell shared by all clones
        self._snap: Snapshot | None = None  # None while this state is the one the env holds
        self._obs = np.zeros(0)
        self._done = False
        self.reset(0)

    def _wrapper_fields(self, env: gym.Env) -> list[tuple[Any, str]]:
        fields: list[tuple[Any, str]] = []
        while isinstance(env, gym.Wrapper):
            names = WRAPPER_STATE.get(type(env))
            if names is None:  # an unknown wrapper may hold state we would not restore
                raise not_searchable(self.name, f"deepq does not know the state of its wrapper {type(env).__name__}")
            fields += [(env, n) for n in names]
            env = env.env
        return fields

    def _save_base(self) -> Any:
        raise NotImplementedError

    def _restore_base(self, state: Any) -> None:
        raise NotImplementedError

    def _save(self) -> Snapshot:
        # The frame-stack deque is appended to in place: keep its items (frames are never changed in place)
        values = tuple(tuple(v) if isinstance(v := getattr(obj, n), deque) else v for obj, n in self._fields)
        return self._save_base(), values

    def _restore(self, snap: Snapshot) -> None:
        base, values = snap
        self._restore_base(base)
        for (obj, n), v in zip(self._fields, values, strict=True):
            if isinstance(current := getattr(obj, n), deque):
                current.clear()  # the same deque, which keeps its maxlen
                current.extend(v)
            else:
                setattr(obj, n, v)

    def _acquire(self, restore: bool = True) -> None:
        """Make the env hold this state, saving the state it held into its owner first."""
        ref = self._owner[0]
        owner = ref() if ref is not None else None
        if owner is self:
            return
        if owner is not None:
            owner._snap = self._save()
        if restore:
            assert self._snap is not None
            self._restore(self._snap)
        self._owner[0], self._snap = weakref.ref(self), None

    def reset(self, seed: int) -> None:
        """Start a new episode from the env's reset with this seed (as GymVecEnv resets with its episode seeds)."""
        self._acquire(restore=False)
        obs, _ = self.env.reset(seed=seed)
        self._obs, self._done = self._convert(obs), False

    def clone(self: S) -> S:
        """An independent copy: stepping either never changes the other."""
        other = copy.copy(self)
        if self._snap is None:  # this state is in the env: the copy starts from a snapshot of it
            other._snap = self._save()
        return other

    @property
    def is_terminal(self) -> bool:
        """The episode ended: terminated or truncated (both end a search)."""
        return self._done

    def legal_mask(self) -> np.ndarray:
        """(A,) bool: all actions while the episode runs, none after it ended."""
        return np.full(self.n_actions, not self._done)

    def observation(self) -> np.ndarray:
        """The current observation as the network takes it (a copy); after the end, the final one."""
        return self._obs.copy()

    def step(self, action: int) -> float:
        """Play `action` (0 .. n_actions - 1); the raw reward."""
        if self._done:
            raise ValueError(f"{self.name}: the episode has ended; reset() before stepping")
        if not 0 <= int(action) < self.n_actions:
            raise ValueError(f"{self.name}: action {action} is not in 0 .. {self.n_actions - 1}")
        self._acquire()
        obs, reward, terminated, truncated, _ = self.env.step(int(action) + self._offset)
        self._obs, self._done = self._convert(obs), bool(terminated or truncated)
        return float(reward)


class ClassicControlState(_SearchEnv):
    """CartPole, Acrobot or MountainCar: the physics state and counters are copied in and out of one env."""

    def __init__(self, spec: str, cfg: Config | None = None) -> None:
        entry = gym.registry[spec].entry_point if spec in gym.registry else None
        if entry not in CLASSIC_CONTROL:
            raise not_searchable(spec, "it is not a Gymnasium classic-control env with discrete actions")
        self._base_fields = CLASSIC_CONTROL[str(entry)]
        super().__init__(spec, cfg)
        self._base = self.env.unwrapped

    def _save_base(self) -> Any:
        return tuple(copy.copy(getattr(self._base, n)) for n in self._base_fields)

    def _restore_base(self, state: Any) -> None:
        for n, v in zip(self._base_fields, state, strict=True):
            setattr(self._base, n, copy.copy(v))  # a copy: the snapshot may be restored again


class ALEState(_SearchEnv):
    """An ale-py Atari game with deepq's preprocessing: the emulator via ALE's cloneState, the wrappers by value."""

    def __init__(self, spec: str, cfg: Config | None = None) -> None:
        if not is_atari(spec):
            raise not_searchable(spec, "it is not an Atari game registered by ale-py")
        super().__init__(spec, cfg)
        self._ale = self.env.unwrapped.ale  # type: ignore[attr-defined]
        if self._ale.getFloat("repeat_action_probability") > 0:
            self.env.close()
            # The ALE keeps the previous action, which a sticky frame repeats, outside the state it
            # clones (even with include_rng=True): a restored state could repeat another branch's action.
            raise not_searchable(spec, "with sticky_actions=True the ALE does not save the action a sticky frame "
                                       "repeats; use sticky_actions=False")

    def _save_base(self) -> Any:
        # Without sticky actions the ALE's RNG is drawn from but never changes a frame: leave it out (half the cost)
        return self._ale.cloneState()

    def _restore_base(self, state: Any) -> None:
        self._ale.restoreState(state)  # leaves the ALEState as it was: restorable again


class SearchEnv(Searchable, Protocol):
    """What target='mcts' plays on: a searchable state (deepq.core.mcts) that also starts episodes and says
    its observations' shape. ClassicControlState, ALEState and the game adapters (deepq.games.adapters) are."""

    obs_shape: tuple[int, ...]

    def reset(self, seed: int) -> None: ...


def make_search_env(spec: EnvSpec, cfg: Config | None = None) -> ClassicControlState | ALEState:
    """A cloneable single-agent env for a tree search: ClassicControlState or ALEState; else a ConfigError.
    (A game's is its adapter: deepq/envs/kinds.py resolves the kind.)"""
    if callable(spec):
        raise not_searchable(spec, "the env a factory makes is opaque to deepq, which cannot copy its state")
    if is_atari(spec):
        return ALEState(spec, cfg)
    entry = gym.registry[spec].entry_point if spec in gym.registry else None
    if entry in CLASSIC_CONTROL:
        return ClassicControlState(spec, cfg)
    if spec.startswith("MinAtar/"):  # registered only once minatar is imported: name it without importing
        raise not_searchable(spec, "deepq cannot copy the exact state of MinAtar's simulator")
    if entry is None:
        raise not_searchable(spec, "it is not a registered Gymnasium id")
    if str(entry).startswith("gymnasium.envs.classic_control."):
        raise not_searchable(spec, "its actions are continuous (DQN and the search take discrete actions)")
    raise not_searchable(spec, f"deepq cannot copy the exact state of its simulator ({entry})")
