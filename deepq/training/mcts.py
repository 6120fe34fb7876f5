"""target="mcts": Q values estimated by tree search, the seed's alternative to a target network.

    repeat:
        play `mcts_episodes` episodes; at every state s, search from s with the Q-network guiding
            (deepq/core/mcts.py), record (s, Q_mcts(s, ·)) for the actions the search tried, and play its
            most visited action (a uniformly random legal one with probability ε)
        after the episodes end: gradient steps on mean over searched (s, a) of (Q(s, a) − Q_mcts(s, a))²,
            minibatches drawn from a replay of such pairs
        (an action the search never tried gets no target: no value is invented for it)

The targets come from search, not from a copy of the network, so there is no target network.
Games (OpenSpiel, PettingZoo) and single-agent envs that can be cloned (deepq/envs/search.py) work.
Checkpoints are written between rounds, when no episode is in progress, so resuming needs no env state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepq.agent import Agent
from deepq.components import mcts_config
from deepq.config import Config
from deepq.core.explore import random_legal
from deepq.core.mcts import MCTS
from deepq.envs.kinds import EnvKind
from deepq.envs.search import SearchEnv
from deepq.memory import check_memory
from deepq.training.control import NO_EPISODES, Episodes, LoopState, finished, replay_ratio_updates
from deepq.training.experience import Collected


class TargetMemory:
    """Circular store of (s, Q_mcts(s, ·), which actions were searched); the oldest go first."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], n_actions: int) -> None:
        self.capacity, self.pos, self.size = capacity, 0, 0
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.targets = np.zeros((capacity, n_actions), np.float32)  # 0 where not searched (masked out)
        self.searched = np.zeros((capacity, n_actions), bool)

    def add(self, obs: np.ndarray, q: np.ndarray) -> None:
        """One searched state; q (A,) is NaN for the actions the search never tried."""
        i = self.pos
        self.obs[i], self.searched[i] = obs, ~np.isnan(q)
        self.targets[i] = np.nan_to_num(q, nan=0.0)
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
        idx = rng.integers(0, self.size, size=batch_size)
        return tuple(torch.from_numpy(a[idx]) for a in (self.obs, self.targets, self.searched))

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {"pos": self.pos, "size": n, "obs": torch.from_numpy(self.obs[:n].copy()),
                "targets": torch.from_numpy(self.targets[:n].copy()),
                "searched": torch.from_numpy(self.searched[:n].copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = state["size"]
        self.obs[:n], self.targets[:n] = state["obs"].numpy(), state["targets"].numpy()
        self.searched[:n] = state["searched"].numpy()
        self.pos, self.size = state["pos"], n


Record = Callable[[np.ndarray, np.ndarray], None]  # (s, Q_mcts(s, ·)): the learner's TargetMemory.add, an actor's list


class SearchPlay:
    """Episodes played with search at every state (the learner's, or a search actor's): each state's search values
    go to a `record`, the move is the search's choice (or, with probability ε, a uniformly random legal one)."""

    def __init__(self, cfg: Config, rng: np.random.Generator, env: SearchEnv, search: MCTS) -> None:
        self.cfg, self.rng, self.env, self.search = cfg, rng, env, search

    def episodes(self, state: LoopState, eps_at: Callable[[int], float], record: Record) -> Collected:
        """cfg.mcts_episodes episodes; advances state.step (and counts the episodes that ended)."""
        first_eps = eps_at(state.step)
        # each episode's reset seed counts the run's episodes (those of this collection are logged after it)
        episodes = [self._play_episode(state, eps_at(state.step), state.episodes + k, record)
                    for k in range(self.cfg.mcts_episodes)]
        return Collected(Episodes.concat(episodes), first_eps)

    def _play_episode(self, state: LoopState, eps: float, index: int, record: Record) -> Episodes:
        env = self.env
        env.reset(int(np.random.SeedSequence([self.cfg.seed, 0x3C75, index]).generate_state(1)[0]))
        ended = NO_EPISODES
        while not env.is_terminal:
            result = self.search.search(env)
            record(env.observation(), result.q)  # (A,) NaN where unsearched: those actions get no target
            explore = self.rng.random() < eps
            a = int(random_legal(env.legal_mask()[None], self.rng)[0]) if explore else result.action()
            mover = env.to_move
            r = env.step(a)
            state.step += 1
            logged = r if mover == 0 else -r  # games: the first player's return, as the TD mode logs it
            ended = finished(state, np.array([logged]), np.array([env.is_terminal]))
        return ended


class SearchedEpisodes:
    """target='mcts' as an Experience for deepq/training/loop.py's loop: each iteration plays cfg.mcts_episodes
    episodes with search at every state (SearchPlay); a gradient step regresses Q toward a minibatch of the
    search's values. An iteration ends between episodes, so checkpoints need no env state. `env`: the searchable
    env cfg.env's kind made (a game adapter, or a clonable single-agent env); `agent`: built for it by
    loop.make_experience."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind, env: SearchEnv, agent: Agent) -> None:
        self.cfg, self.rng, self.agent = cfg, rng, agent  # rng: ε draws, random actions, minibatches
        self.env_label = cfg.env if isinstance(cfg.env, str) else ""
        shape = tuple(env.obs_shape)
        self.search = MCTS(self.agent.q_values, mcts_config(cfg, cfg.seed), two_player=kind.two_player)
        # one line, before allocating, if the target memory (and the rest of the run) cannot fit
        check_memory(cfg, shape, np.float32, env.n_actions, self.agent.arch, self.agent.device, networks=False,
                     game=kind.two_player)
        self.memory = TargetMemory(cfg.buffer_size, shape, env.n_actions)
        self.play = SearchPlay(cfg, rng, env, self.search)

    def start(self) -> None:
        pass  # each episode resets the env with its own seed

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        return self.play.episodes(state, eps_at, self.memory.add)

    def can_learn(self) -> bool:
        return self.memory.size >= self.cfg.batch_size

    def updates(self, prev: int, step: int) -> int:
        return replay_ratio_updates(self.cfg, prev, step)

    def learn(self, step: int) -> torch.Tensor:
        return self.agent.learner.fit_targets(*self.memory.sample(self.cfg.batch_size, self.rng)).loss

    def after_updates(self, prev: int, step: int) -> None:
        pass  # no target network to sync

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "search_rng": self.search.rng.bit_generator.state}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.memory.load_state_dict(data["memory"])
        self.search.rng.bit_generator.state = data["search_rng"]

    def close(self) -> None:
        pass
