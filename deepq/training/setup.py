"""What a run is set up with before anything is written: the Config checked (its own fields, then its env
kind's: the two-player games' fields, deepq/games/kind.py) and the env kind resolved once; and deepq.load, which
tells the agent file's env kind to the core (board games get the MLP).

Importing this module imports deepq/games/kind.py, which registers the game kind with deepq/envs/kinds.py.
"""

from __future__ import annotations

import os
from typing import Any

import deepq.games.kind  # noqa: F401  (registers the two-player game kind)
from deepq.config import Config
from deepq.core import agent as core_agent
from deepq.core.agent import Agent
from deepq.envs import kinds
from deepq.envs.kinds import EnvKind


def check(cfg: Config) -> Config:
    """Config.validate, then the checks of cfg.env's kind: one ConfigError naming the first field that cannot work."""
    cfg.validate()
    core_agent.check_threads(cfg.threads)
    kinds.check(cfg)
    if cfg.num_actors > 0:  # a distributed run: Ray must be importable (one line naming the extra if not)
        from deepq.training.ray_cluster import check_actors_fit, check_address, require_ray

        check_actors_fit(cfg)
        require_ray(cfg)
        check_address(cfg)
    return cfg


def env_kind(cfg: Config) -> EnvKind:
    """cfg.env's kind (deepq/envs/kinds.py), with the game kind registered."""
    return kinds.resolve(cfg)


def two_player(cfg: Config) -> bool:
    """cfg.env names a two-player game (a registered kind; resolving nothing else, importing nothing)."""
    kind = kinds.registered(cfg.env)
    return kind is not None and kind.two_player


def load(path: str | os.PathLike[str], network: Any = None, device: str = "cpu") -> Agent:
    """Load an agent saved by Agent.save (or a run directory's agent.pt); never executes code from the file.
    See deepq.core.agent.load: this passes it the file's env kind."""
    return core_agent.load(path, network, device, two_player=two_player)
