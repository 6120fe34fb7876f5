"""What an Agent takes as an observation, and how an observation becomes the network's input.

Training and acting share one encoding: `one_hot` turns a Discrete observation (an int, or a 1-D array of them)
into the float32 one-hot vector the network takes; deepq/envs/base.py's obs_converter applies it to every observation
of training and evaluation, and `encode` to what a caller hands Agent.act / q_values / predict. Box observations go
to the network as they are.

`encode` needs to know the env's observation space only where the input alone cannot say (an int, an int array):
the Agent then asks for an `ObsSpec` once, from the space it was given or, failing that, from `probe(cfg.env)`, which
makes the env once to read its space. Every input `encode` cannot take is one ConfigError line naming what it takes.

An env that masks actions with a Dict observation ({"observation": o, "action_mask": m}) hands the Agent that Dict:
`split_mask` takes the mask out for the greedy choice and leaves o to encode; `legal_mask` checks a mask given.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from deepq.errors import ConfigError
from deepq.files import short_repr


@dataclass(frozen=True)
class ObsSpec:
    """The observations an agent takes: a Discrete space's ints (`n` set), else arrays of `shape`."""

    label: str  # how messages name the env: its id ('Taxi-v4') or its factory
    shape: tuple[int, ...]  # one observation as the network takes it ((n,) for a Discrete space: one-hot)
    n: int | None = None  # a Discrete space's number of values; None for arrays (Box)
    start: int = 0  # a Discrete space's first value


def one_hot(obs: Any, n: int, start: int = 0) -> np.ndarray:
    """A Discrete observation (an int in start..start+n-1) as the network takes it: float32 (n,) with a 1 at
    obs - start; a 1-D array of B of them gives (B, n). The one encoding of training and acting."""
    if np.ndim(obs) == 0:  # the training envs' case, one observation a step: the cheapest form
        out = np.zeros(n, dtype=np.float32)
        out[int(obs) - start] = 1.0
        return out
    index = np.asarray(obs, dtype=np.int64) - start  # (B,)
    out = np.zeros((len(index), n), dtype=np.float32)  # (B, n)
    out[np.arange(len(index)), index] = 1.0
    return out


MASK_KEY = "action_mask"  # the info key, and the Dict observation's entry, an action mask goes by (deepq/envs/masks.py)


def split_mask(obs: Any) -> tuple[Any, Any]:
    """(observation, mask) of a Dict observation {..., "action_mask": m} with one other entry; (obs, None) for any
    other observation."""
    if not isinstance(obs, Mapping) or MASK_KEY not in obs:
        return obs, None
    rest = [k for k in obs if k != MASK_KEY]
    if len(rest) != 1:
        raise ConfigError(f"a Dict observation with an {MASK_KEY!r} entry must hold one other entry, the "
                          f"observation; this one holds {len(rest)} ({', '.join(map(repr, rest)) or 'none'})")
    return obs[rest[0]], obs[MASK_KEY]


def legal_mask(legal: Any, n_actions: int, batch: int | None, caller: str) -> np.ndarray:
    """`legal` as bool (A,) for one observation (`batch` None) or (B, A) for a batch of B, with a legal action in
    every row; anything else is one ConfigError line."""
    x = _as_array(legal)
    want = (n_actions,) if batch is None else (batch, n_actions)
    if x is None or x.shape != want or not is_mask(x):
        raise ConfigError(f"{caller}: expected an action mask of shape {want} (bools or 0/1 numbers, one per action"
                          f"{'' if batch is None else ', per observation'}); got {_got(legal, x)}")
    x = x.astype(bool)
    if not x.any(axis=-1).all():
        raise ConfigError(f"{caller}: the action mask allows no action"
                          f"{'' if batch is None else f' in row {int(np.flatnonzero(~x.any(axis=-1))[0])}'}; "
                          "at least one action must be legal")
    return x


def is_mask(x: np.ndarray) -> bool:
    """Whether an array holds a mask's values: bools, or only 0 and 1 as ints or floats."""
    return x.dtype.kind == "b" or (x.dtype.kind in "iuf" and bool(((x == 0) | (x == 1)).all()))


def env_name(env: Any) -> str:
    """How messages call the env an agent was trained on: its id, or its factory's name."""
    if isinstance(env, str):
        return env
    return f"<callable {getattr(env, '__qualname__', type(env).__name__)}>"


def spec_of(space: Any, label: str, shape: tuple[int, ...]) -> ObsSpec:
    """The ObsSpec of a Gymnasium observation space, for a network taking `shape` (a Dict space with an action mask:
    of its observation entry)."""
    if isinstance(space, gym.spaces.Dict) and MASK_KEY in space.spaces and len(space.spaces) == 2:
        space = next(v for k, v in space.spaces.items() if k != MASK_KEY)
    if isinstance(space, gym.spaces.Discrete) and (int(space.n),) == tuple(shape):
        return ObsSpec(label, tuple(shape), int(space.n), int(space.start))
    return ObsSpec(label, tuple(shape))


def probe(env: Any, shape: tuple[int, ...]) -> ObsSpec:
    """The ObsSpec of the env an agent was trained on (cfg.env), read from the env: a registered Gymnasium id is made
    once and closed, a factory called once. Only a 1-D `shape` can be a Discrete space's one-hot, so nothing is made
    for any other. An env that cannot be made here (a two-player game's id, an id whose package was not imported, the
    '<callable ...>' an agent file names a factory by, an extra not installed) is taken as an array env."""
    label = env_name(env)
    makeable = env in gym.registry if isinstance(env, str) else callable(env)
    if len(shape) != 1 or not makeable:
        return ObsSpec(label, tuple(shape))
    try:
        with warnings.catch_warnings():  # an old version's deprecation notice says nothing about the space
            warnings.simplefilter("ignore")
            made = gym.make(env) if isinstance(env, str) else env()
            space = made.observation_space
            made.close()
    except Exception:  # best effort, as said above: whatever stops the env being made here, the arrays' rules hold
        return ObsSpec(label, tuple(shape))
    return spec_of(space, label, shape)


def encode(obs: Any, shape: tuple[int, ...], spec: Callable[[], ObsSpec], caller: str) -> np.ndarray:
    """`obs` as the network takes it: (*shape) for one observation, (B, *shape) for a batch (the Policy tells them
    apart by their number of dimensions, as it always has).

    A float array of `shape` or (B, *shape) goes as it is (a Box observation, or a Discrete one already one-hot
    encoded, as evaluation passes it). Anything else asks `spec()`: for a Discrete space an int (a Python or NumPy
    integer, or a 0-d int array) is one observation and a 1-D int array a batch, each one-hot encoded; other arrays of
    the network's shape go as they are. Anything else is a ConfigError naming what the agent takes.
    """
    x = _as_array(obs)
    if x is not None and x.dtype.kind == "f" and _fits(x.shape, shape):  # the training and evaluation paths
        return x
    s = spec()
    if x is not None and s.n is not None and x.dtype.kind in "iu" and x.ndim <= 1:
        outside = (x < s.start) | (x >= s.start + s.n)
        if not outside.any():
            return one_hot(x if x.ndim else x.item(), s.n, s.start)
        raise ConfigError(_refusal(caller, s, _got(obs, x, int(np.flatnonzero(outside)[0]) if x.ndim else None)))
    if x is not None and x.dtype.kind in "biuf" and _fits(x.shape, shape):
        return x
    raise ConfigError(_refusal(caller, s, _got(obs, x)))


def _as_array(obs: Any) -> np.ndarray | None:
    """obs as a NumPy array; None for what NumPy cannot make one of (a ragged list, a CUDA tensor, ...)."""
    if isinstance(obs, np.ndarray):
        return obs
    try:
        return np.asarray(obs)
    except (TypeError, ValueError, RuntimeError):
        return None


def _fits(have: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether an array of shape `have` is one observation of `shape` or a batch of them, either as `shape` or
    a batch flattened to (B, D), D the product of `shape` (an MLP on board planes has always taken that)."""
    if len(have) in (len(shape), len(shape) + 1) and tuple(have[len(have) - len(shape):]) == tuple(shape):
        return True
    return len(shape) > 1 and len(have) == 2 and have[-1] == int(np.prod(shape))


def _refusal(caller: str, s: ObsSpec, got: str) -> str:
    if s.n is not None:
        wants = f"an int in {s.start}..{s.start + s.n - 1} (one observation) or a 1-D int array (a batch)"
    else:
        dims = ", ".join(map(str, s.shape))
        one = f"({dims}{',' if len(s.shape) == 1 else ''})"  # as Python writes the shape: (4,), (4, 84, 84)
        wants = f"an array of shape {one} (one observation) or (B, {dims}) (a batch)"
    article = "an" if s.label[:1].lower() in "aeiou" else "a"
    return f"{caller}: expected {article} {s.label} observation: {wants}; got {got}"


def _got(obs: Any, x: np.ndarray | None, bad: int | None = None) -> str:
    """What the caller passed, in a few words: the value itself, or an array's shape and dtype."""
    if x is None or x.dtype.kind not in "biufc":
        return short_repr(obs) + ("" if isinstance(obs, str | bytes) else f" ({type(obs).__name__})")
    if x.ndim == 0:
        return short_repr(x.item())
    what = "an array" if isinstance(obs, np.ndarray) else f"a {type(obs).__name__}"
    held = f" holding {x[bad].item()} at index {bad}" if bad is not None else ""
    return f"{what} of shape {x.shape} ({x.dtype}){held}"
