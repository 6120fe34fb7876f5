"""What a run is set up with before anything is written: the Config checked (its own fields, then its env
kind's: the two-player games' fields, deepq/games/kind.py) and the env kind resolved once, the games' kinds passed
to deepq/envs/kinds.py explicitly (GAME_KINDS); and deepq.load, which lets the agent file's env kind resolve its
network (board games get the MLP).
"""

from __future__ import annotations

import os
from typing import Any

from deepq import agent as agent_file
from deepq.agent import Agent
from deepq.config import Config, EnvSpec
from deepq.core.device import check_threads
from deepq.envs import kinds
from deepq.envs.kinds import EnvKind
from deepq.games.kind import GAME_KINDS


def check(cfg: Config) -> Config:
    """Config.validate, then the checks of cfg.env's kind: one ConfigError naming the first field that cannot work."""
    cfg.validate()
    check_threads(cfg.threads)
    kinds.check(cfg, GAME_KINDS)
    if cfg.num_actors > 0:  # a distributed run: Ray must be importable (one line naming the extra if not)
        from deepq.training.ray_cluster import check_actors_fit, check_address, require_ray

        check_actors_fit(cfg)
        require_ray(cfg)
        check_address(cfg)
    return cfg


def env_kind(cfg: Config) -> EnvKind:
    """cfg.env's kind (deepq/envs/kinds.py), the games' among them."""
    return kinds.resolve(cfg, GAME_KINDS)


def game_kind(spec: EnvSpec) -> EnvKind | None:
    """The game kind of an id with a game prefix ('openspiel:', 'pettingzoo:'), else None; resolves nothing else,
    imports nothing."""
    return kinds.by_prefix(spec, GAME_KINDS)


def arch_of(cfg: Config, obs_shape: tuple[int, ...]) -> str:
    """The network cfg.arch resolves to for cfg.env's kind, from an id's prefix only (an agent file's env need
    not be installed to load it): board games get the MLP for 'auto'."""
    kind = game_kind(cfg.env)
    return kind.arch(cfg, obs_shape) if kind is not None else agent_file.plain_arch(cfg, obs_shape)


def load(path: str | os.PathLike[str], network: Any = None, device: str = "cpu") -> Agent:
    """Load an agent saved by Agent.save (or a run directory's agent.pt); never executes code from the file.
    See deepq.agent.load: this passes it the file's env kind's network resolution."""
    return agent_file.load(path, network, device, arch_of=arch_of)
