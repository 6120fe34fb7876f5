"""deepq: Deep Q-Learning for Gymnasium environments.

    import deepq
    agent = deepq.train(deepq.preset("cartpole", seed=0))
    deepq.evaluate(agent, episodes=10).mean
"""

from deepq.config import Config
from deepq.core.agent import Agent
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
