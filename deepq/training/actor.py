"""An Ape-X actor (Horgan et al. 2018): its own vector envs, a policy on the learner's latest weights, n-step
transitions folded as they complete and their initial priorities computed with the learner's TD loss
(core.learner.td_loss) on its copies of the networks, shipped in batches of `actor_batch` steps per env.

A plain class: deepq/training/distributed.py runs it as a Ray actor, and tests call it directly, so what it
ships can be compared with what the single-process collector (deepq/training/dqn.py) stores for the same seed
and weights. Who moves is the same `Players` as in one process: SingleAgent, or a game's SelfPlay (legal
moves, the opponent pool refreshed when the learner's target network is).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

from deepq.agent import Agent, actor_policy
from deepq.components import learner_config, mcts_config, network_config
from deepq.config import Config
from deepq.core.device import set_cpu_threads
from deepq.core.learner import td_loss
from deepq.core.mcts import MCTS
from deepq.core.nstep import Folded, NStepFolder
from deepq.core.policy import load_net_weights, net_weights
from deepq.core.replay import Batch
from deepq.envs.base import VecEnv
from deepq.games.kind import GameKind
from deepq.training.collect import Collector, Players, SingleAgent
from deepq.training.control import Episodes, LoopState, finished
from deepq.training.dqn import exploration
from deepq.training.mcts import SearchPlay
from deepq.training.setup import env_kind

Weights = dict[str, Any]  # {"online": arrays, "target": arrays or None, "syncs": target syncs so far}


class FrameSteps(NamedTuple):
    """T vector steps of N envs as frames, each shipped once (frame stacks, frame_stack > 1): the learner's
    FrameReplay rebuilds the stacks (FrameReplay.add_frames) and sums the n-step windows itself."""

    first: np.ndarray  # (R, *frame): the reset frame of each env starting an episode, step by step, env order
    first_count: np.ndarray  # (T,) int: how many of `first` belong to each step
    new: np.ndarray  # (T, N, *frame): the newest frame of each s' (the true final one where an episode ended)
    actions: np.ndarray  # (T, N) int64
    rewards: np.ndarray  # (T, N) float32, clipped as the replay stores them
    terminated: np.ndarray  # (T, N) bool
    ended: np.ndarray  # (T, N) bool


class Shipment(NamedTuple):
    """What an actor sends the learner for one batch of env steps."""

    actor: int
    seq: int  # this actor's batches so far (the learner stores each actor's batches in order)
    transitions: Folded | None  # the n-step transitions completed in these steps (None: none, or frames below)
    frames: FrameSteps | None  # frame stacks: the steps themselves, each frame once
    searched: tuple[np.ndarray, np.ndarray] | None  # target="mcts": obs (S, *obs) and Q_mcts (S, A), NaN unsearched
    priorities: np.ndarray  # (B,) |TD error| of each completed n-step transition under the actor's weights
    episodes: Episodes  # each episode that ended, in order: its return as logged and its length
    steps: int  # env steps taken, summed over the actor's envs
    eps: float  # the exploration rate the actor used (at the batch's last step)

    def nbytes(self) -> int:
        """Bytes of the arrays shipped (what crosses the object store, pickling overhead aside)."""
        parts = (self.transitions, self.frames, self.searched)
        arrays = [a for part in parts if part is not None for a in part if a is not None]
        return int(sum(a.nbytes for a in [*arrays, self.priorities]))


def apex_epsilon(i: int, n: int, base: float = 0.4, alpha: float = 7.0) -> float:
    """Ape-X's fixed per-actor exploration: ε_i = base^(1 + alpha · i / (n − 1)); one actor gets `base`."""
    return base if n <= 1 else base ** (1 + alpha * i / (n - 1))


def weights_of(agent: Agent, syncs: int) -> Weights:
    """The learner's weights as actors load them: the online net, the target net (for priorities) and the count
    of target syncs (games: each one refreshes the actors' opponent pools, as it does in one process)."""
    target = agent.target
    return {"online": net_weights(agent.online), "target": None if target is None else net_weights(target),
            "syncs": syncs}


class Actor:
    """Collects for the learner. `reset` (re)starts it on a seed; `collect` runs `cfg.actor_batch` vector steps."""

    def __init__(self, cfg: Config, actor_id: int, num_actors: int) -> None:
        set_cpu_threads(1)
        torch.set_flush_denormal(cfg.flush_denormal)
        self.cfg = cfg.replace(device="cpu", num_actors=0)  # actors act on CPU; the learner may use a GPU
        self.actor_id = actor_id
        self.kind = env_kind(self.cfg)
        self.fixed_eps = apex_epsilon(actor_id, num_actors) if cfg.actor_eps == "apex" else None
        self.eps_at = exploration(self.cfg)
        self.frames_once = cfg.frame_stack > 1  # ship frames, not stacks (the learner has a frame-once replay)
        self.envs: VecEnv | None = None
        self.syncs = 0

    def reset(self, seed: int, weights: Weights) -> int:
        """New envs and RNGs from `seed`, the given weights; returns this process's pid (for fault tests)."""
        cfg = self.cfg.replace(seed=seed)
        if self.envs is not None:
            self.envs.close()
        self.envs = self.kind.make_vec_env(cfg)
        self.players: Players = (self.kind.self_play(self.envs, cfg) if isinstance(self.kind, GameKind)  # type: ignore[arg-type]
                                 else SingleAgent(self.envs))
        torch.manual_seed(seed)
        shape, n_actions = self.envs.obs_shape, self.envs.n_actions
        arch = self.kind.arch(cfg, shape)
        # acting: a Policy on the learner's online weights; priorities: the learner's TD loss, with a copy of its
        # target network where it keeps one
        self.policy = actor_policy(cfg, arch, shape, n_actions, weights["online"])
        self.learner_cfg, self.net_cfg = learner_config(cfg), network_config(cfg, arch)
        self.target = (copy.deepcopy(self.policy.net).requires_grad_(False) if self.learner_cfg.keeps_target
                       else None)
        self.rng = np.random.default_rng(seed)
        legal = n_actions if self.envs.legal is not None else 0  # games, and envs that mask actions
        self.folder = NStepFolder(cfg.num_envs, cfg.n_step, self.kind.discount(cfg.gamma), cfg.actor_batch, shape,
                                  self.envs.obs_dtype, legal)  # the discount as the replay stores it
        self.syncs = 0
        self.sent = 0  # batches shipped since this reset
        self.load(weights)
        self.collector = Collector(cfg, self.envs, self.players, self.policy, self.rng)
        self.collector.start()
        self.new_episode = np.ones(cfg.num_envs, dtype=bool)  # frame stacks: whose next step ships a reset frame
        self.tally = LoopState(ep_return=[0.0] * cfg.num_envs, ep_length=[0] * cfg.num_envs)  # episodes in progress
        return os.getpid()

    def load(self, weights: Weights) -> None:
        """Act (and compute priorities) with these weights from now on."""
        self.policy.load_weights(weights["online"])
        if self.target is not None and weights["target"] is not None:
            load_net_weights(self.target, weights["target"])
        if weights["syncs"] != self.syncs:  # the learner synced its target: games refresh the opponent pool
            self.syncs = weights["syncs"]
            self.players.target_synced(self.target if self.target is not None else self.policy.net)

    def priorities(self, batch: Batch) -> np.ndarray:
        """(B,) each transition's |TD error| (C51: its cross-entropy) under the weights loaded: what the learner's
        Learner.priorities computes, as Ape-X's actors do."""
        with torch.no_grad():
            return td_loss(self.policy.net, self.target, batch, self.learner_cfg, self.net_cfg).per_sample.numpy()

    def collect(self, weights: Weights | None = None, step: int = 0) -> Shipment:
        """`cfg.actor_batch` vector steps (new `weights` first, when given). `step`: the run's env step when the
        batch starts, from which the 'schedule' exploration counts (ε as one process would use it there)."""
        assert self.envs is not None, "reset() first"
        if weights is not None:
            self.load(weights)
        cfg, envs = self.cfg, self.envs
        episodes = []
        eps = 0.0
        frames: list[tuple[np.ndarray, ...]] = []  # frame stacks: per step, what FrameSteps ships
        for k in range(cfg.actor_batch):
            eps = self.fixed_eps if self.fixed_eps is not None else self.eps_at(step + k * envs.num_envs)
            vs = self.collector.step(eps, step + k * envs.num_envs)
            out = vs.out
            self.folder.add(vs.obs, vs.actions, vs.rewards, out.final_obs, out.terminated, out.ended, out.next_legal)
            if self.frames_once:  # (N, k, *frame) stacks: only their newest frames travel
                frames.append((vs.obs[self.new_episode, -1], out.final_obs[:, -1], vs.actions, vs.rewards,
                               out.terminated, out.ended))
                self.new_episode = out.ended.copy()
            episodes.append(finished(self.tally, vs.logged, out.ended))
        folded = self.folder.take()  # None in the first batch of an actor with actor_batch < n_step
        priorities = np.zeros(0, np.float32) if folded is None else self.priorities(as_batch(folded))
        steps = None
        if frames:
            first, new, actions, rewards, terminated, ended = zip(*frames, strict=True)
            steps = FrameSteps(np.concatenate(first), np.array([len(f) for f in first]), np.stack(new),
                               np.stack(actions).astype(np.int64), np.stack(rewards).astype(np.float32),
                               np.stack(terminated), np.stack(ended))
            folded = None  # the learner sums the windows from the frames; the priorities say which are complete
        self.sent += 1
        return Shipment(self.actor_id, self.sent - 1, folded, steps, None, priorities, Episodes.concat(episodes),
                        cfg.actor_batch * envs.num_envs, eps)

    def weights_loaded(self) -> dict[str, np.ndarray]:
        """The online weights the actor acts with (tests check that a broadcast arrived)."""
        return self.policy.weights()

    def close(self) -> None:
        if self.envs is not None:
            self.envs.close()


class SearchActor:
    """target="mcts": each batch plays `cfg.mcts_episodes` searched episodes with the Q-network on the learner's
    latest weights guiding the search (deepq/training/mcts.py's SearchedEpisodes, as one process plays them) and
    ships the (s, Q_mcts(s, ·)) pairs it recorded."""

    def __init__(self, cfg: Config, actor_id: int, num_actors: int) -> None:
        set_cpu_threads(1)
        torch.set_flush_denormal(cfg.flush_denormal)
        self.cfg = cfg.replace(device="cpu", num_actors=0)
        self.actor_id = actor_id
        fixed = apex_epsilon(actor_id, num_actors) if cfg.actor_eps == "apex" else None
        schedule = exploration(self.cfg)
        self.eps_at: Callable[[int], float] = schedule if fixed is None else (lambda step: fixed)

    def reset(self, seed: int, weights: Weights) -> int:
        """A new search env, search and RNGs from `seed`, the given weights; returns this process's pid."""
        cfg = self.cfg.replace(seed=seed)
        torch.manual_seed(seed)
        kind = env_kind(cfg)
        env = kind.make_search_env(cfg)
        shape = tuple(env.obs_shape)
        self.policy = actor_policy(cfg, kind.arch(cfg, shape), shape, env.n_actions, weights["online"])
        search = MCTS(self.policy.q_values, mcts_config(cfg, cfg.seed), two_player=kind.two_player)
        self.play = SearchPlay(cfg, np.random.default_rng(seed), env, search)
        self.episodes = 0  # played since this reset (each episode's reset seed counts them)
        self.sent = 0
        return os.getpid()

    def load(self, weights: Weights) -> None:
        self.policy.load_weights(weights["online"])

    def collect(self, weights: Weights | None = None, step: int = 0) -> Shipment:
        """`cfg.mcts_episodes` searched episodes (new `weights` first, when given); ε counts from the run's `step`."""
        if weights is not None:
            self.load(weights)
        state = LoopState(step=step, episodes=self.episodes, ep_return=[0.0], ep_length=[0])
        obs: list[np.ndarray] = []  # this batch's (s, Q_mcts(s, ·)) pairs, shipped (the learner stores them)
        q: list[np.ndarray] = []

        def record(o: np.ndarray, values: np.ndarray) -> None:
            obs.append(np.asarray(o, np.float32))
            q.append(np.asarray(values, np.float32))
        got = self.play.episodes(state, self.eps_at, record)
        self.episodes = state.episodes + got.episodes.size  # each episode's reset seed counts them
        searched = (np.stack(obs), np.stack(q)) if obs else None
        self.sent += 1
        return Shipment(self.actor_id, self.sent - 1, None, None, searched, np.zeros(0, np.float32), got.episodes,
                        state.step - step, self.eps_at(step))

    def weights_loaded(self) -> dict[str, np.ndarray]:
        return self.policy.weights()

    def close(self) -> None:
        pass


def as_batch(t: Folded) -> Batch:
    """Folded transitions as a CPU minibatch (for priorities)."""
    legal = None if t.next_legal is None else torch.from_numpy(t.next_legal)
    return Batch(torch.from_numpy(t.obs), torch.from_numpy(t.actions), torch.from_numpy(t.returns),
                 torch.from_numpy(t.next_obs), torch.from_numpy(t.terminated), torch.from_numpy(t.discounts), legal)
