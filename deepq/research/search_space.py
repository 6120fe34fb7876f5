"""RL Zoo's DQN search space (rl_zoo3/hyperparams_opt.py, sample_dqn_params) in deepq's Config fields.

Optuna's parameters keep RL Zoo's names (one_minus_gamma, batch_size_pow, subsample_steps, ...), so a study reads
as RL Zoo's would; `suggest` turns them into the Config fields they set:

    gamma                  = 1 - one_minus_gamma               one_minus_gamma in [1e-4, 0.03], log scale
    lr                     = learning_rate                     [1e-5, 2e-3], log scale
    batch_size             = 2 ** batch_size_pow               32 to 2048 (never above buffer_size)
    train_freq             = train_freq                        1 to 10 env steps
    gradient_steps         = train_freq // subsample_steps     subsample_steps 1 to min(train_freq, 8)
    eps_end                = exploration_final_eps             [0, 0.2]
    eps_decay_steps        = exploration_fraction * total_steps   exploration_fraction in [0, 0.5]
    target_update_interval = target_update_interval            1 to 20,000 env steps, log scale
    hidden_sizes           = net_arch                          small (64, 64), medium (256, 256), big (400, 300)
    buffer_size            = buffer_size                       10k, 50k, 100k or 1M transitions (not by default)
    learning_starts        = learning_starts                   0, 1k, 5k, 10k or 20k env steps (not by default)

The first nine are RL Zoo's current DQN space, tuned by default; buffer_size and learning_starts come from its
earlier one and are tuned when named in --fields.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from deepq.config import FIELD_ALIASES, Config
from deepq.errors import ConfigError

if TYPE_CHECKING:
    from optuna.trial import BaseTrial  # optuna is imported only when a study runs

NET_ARCH: dict[str, tuple[int, ...]] = {"small": (64, 64), "medium": (256, 256), "big": (400, 300)}
BUFFER_SIZES = (10_000, 50_000, 100_000, 1_000_000)
LEARNING_STARTS = (0, 1_000, 5_000, 10_000, 20_000)
DEFAULT_FIELDS = ("gamma", "lr", "batch_size", "train_freq", "gradient_steps", "eps_end", "eps_decay_steps",
                  "target_update_interval", "hidden_sizes")
FIELDS = (*DEFAULT_FIELDS, "buffer_size", "learning_starts")


def suggest(trial: BaseTrial, base: Config, fields: Iterable[str]) -> dict[str, Any]:
    """The values of `fields` for one trial, drawn as RL Zoo draws them; the other fields keep base's values."""
    fields = set(fields)
    out: dict[str, Any] = {}
    if "gamma" in fields:
        out["gamma"] = 1.0 - trial.suggest_float("one_minus_gamma", 1e-4, 0.03, log=True)
    if "lr" in fields:
        out["lr"] = trial.suggest_float("learning_rate", 1e-5, 2e-3, log=True)
    if "buffer_size" in fields:
        out["buffer_size"] = trial.suggest_categorical("buffer_size", list(BUFFER_SIZES))
    if "batch_size" in fields:
        # RL Zoo's comment says 2**5 to 2**11; a minibatch is drawn from the replay, so never above buffer_size
        top = min(11, out.get("buffer_size", base.buffer_size).bit_length() - 1)
        out["batch_size"] = 2 ** trial.suggest_int("batch_size_pow", min(5, top), top)
    if "learning_starts" in fields:  # a start at or after total_steps would never learn
        out["learning_starts"] = trial.suggest_categorical(
            "learning_starts", [s for s in LEARNING_STARTS if s < base.total_steps])
    if "train_freq" in fields:
        out["train_freq"] = trial.suggest_int("train_freq", 1, 10)
    if "gradient_steps" in fields:  # at most one gradient step per env step, as RL Zoo's subsampling gives
        freq = out.get("train_freq", base.train_freq)
        out["gradient_steps"] = max(freq // trial.suggest_int("subsample_steps", 1, min(freq, 8)), 1)
    if "eps_end" in fields:
        out["eps_end"] = trial.suggest_float("exploration_final_eps", 0.0, 0.2)
    if "eps_decay_steps" in fields:
        out["eps_decay_steps"] = round(trial.suggest_float("exploration_fraction", 0.0, 0.5) * base.total_steps)
    if "target_update_interval" in fields:
        out["target_update_interval"] = trial.suggest_int("target_update_interval", 1, 20_000, log=True)
    if "hidden_sizes" in fields:
        out["hidden_sizes"] = NET_ARCH[trial.suggest_categorical("net_arch", list(NET_ARCH))]
    return out


def parse_fields(text: str | None, fixed: Iterable[str]) -> tuple[str, ...]:
    """The fields to tune, in FIELDS' order: `--fields lr,gamma` (text), or DEFAULT_FIELDS without those a flag
    fixes. A name that is not in the search space, or one that a flag also fixes, is a ConfigError."""
    fixed = set(fixed)
    if text is None:
        chosen = [f for f in DEFAULT_FIELDS if f not in fixed]
        if not chosen:
            raise ConfigError("every field of the search space is fixed by a flag, so nothing is left to tune; "
                              "drop some of those flags, or name fields with --fields (e.g. --fields buffer_size)")
        return tuple(chosen)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ConfigError(f"--fields {text!r} names no field; give some of: {', '.join(FIELDS)}")
    known = [f.name for f in dataclasses.fields(Config)]
    for name in names:
        if name in FIELDS:
            if name in fixed:
                raise ConfigError(f"--fields tunes {name}, and --{name} fixes it for every trial: drop one of them")
            continue
        if name in FIELD_ALIASES and FIELD_ALIASES[name][0] in FIELDS:
            hint = f"; deepq's field for RL Zoo's {name!r} is {FIELD_ALIASES[name][0]!r}"
        elif name in known:
            hint = f"; {name} is a Config field outside RL Zoo's DQN search space (fix it with --{name} VALUE)"
        else:
            close = difflib.get_close_matches(name, FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"--fields: {name!r} cannot be tuned{hint}; the fields are {', '.join(FIELDS)}")
    return tuple(f for f in FIELDS if f in names)
