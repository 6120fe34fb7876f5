"""What each Config field is tagged with: its --help group, whether a resume may change it, its value check.

    total_steps: int = tag(100_000, RUN, POSITIVE_INT)
    buffer_size: int = tag(10_000, TD, POSITIVE_INT, resume_fixed=True)

`tag` returns a `dataclasses.field` whose metadata holds a `Tag`; deepq/config.py derives RESUME_FIXED, the
--help groups and the simple half of `Config.validate` from them. A `Check` is one field's value rule; the
rules that relate fields (batch_size <= buffer_size, ...) are per-group functions in deepq/config.py.
FIELD_ALIASES, at the end, maps other libraries' names for fields to deepq's. This module is the base layer's:
it imports nothing from deepq but errors.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from deepq.errors import ConfigError

T = TypeVar("T")
TAG = "deepq"  # the metadata key


@dataclass(frozen=True)
class Check:
    """A rule for one field's value. The message reads `lr=0 is not valid: lr must be a positive number`,
    or, with advice=True, `env=3 is not valid: use a Gymnasium id ...`."""

    valid: str  # what is valid, as the message says it: "a positive integer"
    ok: Callable[[Any], bool]
    options: tuple[str, ...] = ()  # the fixed choices of a text field (the CLI reference lists them)
    advice: bool = False

    def __call__(self, name: str, value: object) -> None:
        """Raise ConfigError when `value` breaks the rule."""
        if not self.ok(value):
            why = f"use {self.valid}" if self.advice else f"{name} must be {self.valid}"
            shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:60] + f"... ({len(repr(value))} characters)"
            raise ConfigError(f"{name}={shown} is not valid: {why}")


def is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # True is an int to Python, not a count to us


def utf8(text: str) -> bool:
    """`text` can be written as UTF-8: no lone surrogates, which is how Python holds bytes of a command line or a
    file name that are not UTF-8 (a run directory's files, TensorBoard's and metrics.csv's, are written in UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_num(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


POSITIVE_INT = Check("a positive integer", lambda v: is_int(v) and v > 0)
INT_AT_LEAST_0 = Check("an integer >= 0", lambda v: is_int(v) and v >= 0)
POSITIVE_NUMBER = Check("a positive number", lambda v: is_num(v) and v > 0)
IN_0_1 = Check("a number in [0, 1]", lambda v: is_num(v) and 0 <= v <= 1)
IN_OPEN_0_1 = Check("a number in (0, 1]", lambda v: is_num(v) and 0 < v <= 1)


def number_at_least_0(note: str = "") -> Check:
    """A finite number >= 0; `note` says what 0 means: number_at_least_0("0: no limit")."""
    return Check("a number >= 0" + (f" ({note})" if note else ""), lambda v: is_num(v) and v >= 0)


def choice(*options: str) -> Check:
    """One of a few fixed strings."""
    return Check("one of " + ", ".join(repr(o) for o in options), lambda v: v in options, options=options)


# The value checks that only one field has.
ENV_SPEC = Check("a Gymnasium id such as 'CartPole-v1' or a zero-argument callable returning a gym.Env",
                 lambda v: (isinstance(v, str) and v != "") or callable(v), advice=True)
SEED_MAX = 2**32 - 1  # numpy's SeedSequence takes any int >= 0, torch.manual_seed at most 2**64 - 1: one bound for all
SEED = Check(f"an integer in [0, {SEED_MAX}]", lambda v: is_int(v) and 0 <= v <= SEED_MAX)
NAME_BYTES = 200  # a file name has at most 255 bytes; the run directory adds -<seed>-<timestamp>[-n] to the name
RUN_NAME = Check(f"one folder name: no '/' or '\\', not '.' or '..', no control characters, at most {NAME_BYTES} "
                 "bytes of UTF-8 (or '' for the preset or env id)",
                 lambda v: isinstance(v, str) and (v == "" or (utf8(v) and len(v.encode()) <= NAME_BYTES
                                                               and v not in (".", "..") and "/" not in v
                                                               and "\\" not in v and v.isprintable())))
RUN_DIR = Check("a path in UTF-8 with no control characters (or '' for runs/<name>-<seed>-<timestamp>)",
                lambda v: isinstance(v, str) and utf8(v) and v.isprintable())
WIDTHS = Check("a non-empty list of positive integers",
               lambda v: isinstance(v, tuple | list) and len(v) > 0 and all(is_int(h) and h > 0 for h in v))
ATOMS = Check("1 (off) or an integer >= 2", lambda v: is_int(v) and v >= 1)
RETURN_OR_NONE = Check("a number or None", lambda v: v is None or is_num(v), advice=True)
EVAL_OPPONENT = Check("'random', 'perfect' or 'mcts:N' (N simulations, N >= 2)",
                      lambda v: v in ("random", "perfect") or (isinstance(v, str) and v.startswith("mcts:")
                                                               and re.fullmatch(r"[0-9]{1,18}", v[5:]) is not None
                                                               and int(v[5:]) >= 2))  # ASCII digits ('²' is a digit)
DEVICE_NAME = Check("'auto', 'cpu', 'cuda' or 'cuda:N'",
                    lambda v: isinstance(v, str) and (v in ("auto", "cpu", "cuda")
                                                      or (v.startswith("cuda:") and re.fullmatch(r"[0-9]{1,4}", v[5:])
                                                          is not None)))


class Tag(NamedTuple):
    group: str  # the --help section, one of deepq/config.py's group titles
    resume_fixed: bool  # a resume that changes the field is refused (it shapes the nets, the replay or the envs)
    check: Check | None  # None: any value of the annotated type works (bools, names, paths)


def tag(default: T, group: str, check: Check | None = None, *, resume_fixed: bool = False) -> T:
    """A Config field with its default and its tags (typed as the default, so the annotation stays the truth)."""
    return dataclasses.field(default=default, metadata={TAG: Tag(group, resume_fixed, check)})


def tag_of(f: dataclasses.Field[Any]) -> Tag:
    """The tags of one dataclass field (deepq/config.py reads them all on import, so none can be missing)."""
    if TAG not in f.metadata:
        raise TypeError(f"Config field {f.name!r} has no tags: declare it as `{f.name}: type = tag(default, GROUP, "
                        "check, resume_fixed=...)` (deepq/config_checks.py)")
    t: Tag = f.metadata[TAG]
    return t


# Names users bring from Stable-Baselines3 and CleanRL: an unknown field among these is told its deepq name
# (the CLI and Config.replace both use this).
FIELD_ALIASES: dict[str, tuple[str, str]] = {
    "learning_rate": ("lr", ""),
    "total_timesteps": ("total_steps", ""),
    "timesteps": ("total_steps", ""),
    "exploration_initial_eps": ("eps_start", ""),
    "start_e": ("eps_start", ""),
    "exploration_final_eps": ("eps_end", ""),
    "end_e": ("eps_end", ""),
    "exploration_fraction": ("eps_decay_steps", " (a number of env steps, not a fraction of the run)"),
    "buffer": ("buffer_size", ""),
    "replay_size": ("buffer_size", ""),
    "target_network_frequency": ("target_update_interval", " (in env steps)"),
    "train_frequency": ("train_freq", " (in env steps)"),
    "env_id": ("env", ""),
    "net_arch": ("hidden_sizes", " (e.g. --hidden_sizes 64 64)"),
    "exp_name": ("name", ""),
    "cuda": ("device", " (--device cuda or --device cpu)"),
    "double_q": ("double", ""),
    "prioritized_replay": ("prioritized", ""),
    "n_steps": ("n_step", ""),
    "clip_grad_norm": ("max_grad_norm", ""),
}
