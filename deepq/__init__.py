"""deepq: Deep Q-Learning for Gymnasium environments.

    import deepq
    agent = deepq.train(deepq.preset("cartpole", seed=0))
    deepq.evaluate(agent, episodes=10).mean
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deepq.agent import Agent
    from deepq.config import Config
    from deepq.core.results import EvalResult
    from deepq.errors import (
        CheckpointError,
        ConfigError,
        DeepQError,
        DiskFullError,
        DistributedError,
        EnvError,
        NonFiniteLossError,
        RunDirError,
        RunInterrupted,
    )
    from deepq.presets import PRESETS, preset
    from deepq.training.evaluate import evaluate
    from deepq.training.loop import train
    from deepq.training.setup import load

# Each name is imported on first use (PEP 562), so `deepq --help`, a mistyped flag or a signal in the first second
# of a command does not wait for torch: the command line answers before anything heavy is imported.
_WHERE = {"Config": "deepq.config", "Agent": "deepq.agent", "EvalResult": "deepq.core.results",
          "PRESETS": "deepq.presets", "preset": "deepq.presets", "evaluate": "deepq.training.evaluate",
          "train": "deepq.training.loop", "load": "deepq.training.setup",
          **{error: "deepq.errors" for error in ("CheckpointError", "ConfigError", "DeepQError", "DiskFullError",
                                                  "DistributedError", "EnvError", "NonFiniteLossError", "RunDirError",
                                                  "RunInterrupted")}}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:  # a subpackage used as an attribute, as before: deepq.games.as_bot after import deepq
        try:
            return importlib.import_module(f"deepq.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"deepq.{name}":  # the subpackage exists and lacks a dependency: say which
                raise
            raise AttributeError(f"module 'deepq' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value  # found directly from now on
    return value


__version__ = "0.1.0"
__all__ = [
           "PRESETS",
           "Agent",
           "CheckpointError",
           "Config",
           "ConfigError",
           "DeepQError",
           "DiskFullError",
           "DistributedError",
           "EnvError",
           "EvalResult",
           "NonFiniteLossError",
           "RunDirError",
           "RunInterrupted",
           "evaluate",
           "load",
           "preset",
           "train",
]
