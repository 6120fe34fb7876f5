"""deepq: Deep Q-Learning for Gymnasium environments.

    import deepq
    agent = deepq.train(deepq.preset("cartpole", seed=0))
    deepq.evaluate(agent, episodes=10).mean
"""

from deepq.agent import Agent, load
from deepq.config import Config
from deepq.errors import (
    CheckpointError,
    ConfigError,
    DeepQError,
    DiskFullError,
    EnvError,
    NonFiniteLossError,
    RunDirError,
    RunInterrupted,
)
from deepq.evaluate import EvalResult, evaluate
from deepq.presets import PRESETS, preset
from deepq.train import train

__version__ = "0.1.0"
__all__ = [
           "PRESETS",
           "Agent",
           "CheckpointError",
           "Config",
           "ConfigError",
           "DeepQError",
           "DiskFullError",
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
