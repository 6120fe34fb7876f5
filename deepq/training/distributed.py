"""Distributed training on Ray core, Ape-X style (Horgan et al. 2018): `num_actors` actors collect, one learner
(this process) owns the prioritized replay and learns.

    actors (deepq/training/actor.py, Ray actors)    learner (the training loop, deepq/training/loop.py)
      step own vector envs                            take the next batch that is ready (ray.wait)
      act from a weights snapshot                     add it to the replay, with the actors' priorities
      n-step transitions + initial priorities   →     sample by priority → update → write priorities back
      ship every actor_batch steps per env            every broadcast_interval updates: ray.put(weights) once

`Distributed` is an `Experience`, so the loop, evaluation, checkpoints, Ctrl-C and `--resume` are the
single-process ones. `collect` hands the loop one actor's batch and advances the env step by the steps it
holds; the loop then takes `gradient_steps` updates per `train_freq` env steps, so the replay ratio is the
single-process one whatever the actors' speed. The actors themselves (back-pressure, weight broadcasts, an actor
that dies replaced) are deepq/training/actor_pool.py's; the replay is the learner's and stays intact.
`DistributedSearch` is target="mcts" on the same pool: actors play searched episodes and ship (s, Q_mcts(s, ·))
pairs, the learner regresses Q toward them (deepq/training/mcts.py), with no target network to sync.

A distributed run is resumable (learner, replay, priorities, counters and RNGs are checkpointed; actors
restart on new seeds) but not bit-reproducible: which actor's batch arrives first depends on timing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepq.agent import Agent
from deepq.config import Config
from deepq.core.frame_streams import FrameStreams
from deepq.core.per import PrioritizedSampler
from deepq.core.replay import ReplayMemory
from deepq.envs.base import VecEnv
from deepq.envs.kinds import EnvKind
from deepq.envs.search import SearchEnv
from deepq.training.actor import Actor, SearchActor, Shipment, weights_of
from deepq.training.actor_pool import ActorPool
from deepq.training.control import NO_EPISODES, LoopState
from deepq.training.dqn import ReplayLearning, make_replay
from deepq.training.experience import Collected
from deepq.training.mcts import SearchedEpisodes


class Distributed:
    """The learner's side: DQN's replay, PER and updates (ReplayLearning, as one process learns), fed by Ray actors
    instead of its own envs (it has none: acting happens in the actors)."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind, probe: VecEnv, agent: Agent,
                 stop: Callable[[], bool] = lambda: False) -> None:
        # probe: one env of the actors' kind, already closed: only its shapes and names are read
        self.obs_shape, self.n_actions, obs_dtype = probe.obs_shape, probe.n_actions, probe.obs_dtype
        self.env_label = probe.env_label
        self.cfg, self.rng, self.kind, self.agent = cfg, rng, kind, agent
        # refused here if it cannot fit, before Ray starts
        memory = make_replay(cfg, self.obs_shape, obs_dtype, self.agent.device, self.n_actions, kind, self.agent.arch,
                             folded=True, masked=probe.legal is not None)
        assert isinstance(memory, ReplayMemory | FrameStreams)  # folded rows, or each actor's frames once
        self.memory: ReplayMemory | FrameStreams = memory
        # the actors' opponent pools (games) refresh at the syncs they hear of through the published weights
        self.learning = ReplayLearning(cfg, rng, self.agent, memory, on_sync=lambda online: None)
        self.per: PrioritizedSampler | None = self.learning.per
        # frame stacks: per actor, the slots of its steps whose n-step windows are not complete yet (priority 0
        # until the actor's priorities for them arrive, with a later batch)
        self.unscored: list[deque[np.ndarray]] = [deque() for _ in range(cfg.num_actors)]
        self.published = (-1, -1)  # (updates, target syncs) at the last broadcast
        self.learned = self.syncs = 0
        self.bytes_received = self.transitions_received = 0
        self.pool = ActorPool(cfg, Actor, stop)  # last: nothing after it can fail and leave Ray running
        self.pool.on_replaced = self._forget

    # -- the Experience protocol ------------------------------------------------------------------------------

    def start(self) -> None:
        pass  # the actors start at the first collect, fresh or resumed

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        if not self.pool.started:
            self._publish()
            self.pool.launch(state.step)
        shipment = self.pool.next(state.step)
        if shipment is None:
            return Collected(NO_EPISODES, eps_at(state.step))  # a signal: the loop stops at its next check
        t = shipment.transitions
        if shipment.frames is not None:
            assert isinstance(self.memory, FrameStreams)
            store_frames(self.memory, self.per, self.unscored[shipment.actor], shipment)
        elif t is not None:
            assert isinstance(self.memory, ReplayMemory)
            slots = self.memory.add(t.obs, t.actions, t.returns, t.next_obs, t.terminated, None, t.next_legal,
                                    discount=t.discounts)
            if self.per is not None:
                self.per.update(slots, shipment.priorities)  # Ape-X: the actors' priorities, not the max
        self.transitions_received += shipment.steps if shipment.frames is not None else len(t or ())
        self.bytes_received += shipment.nbytes()
        return counted(self.pool, shipment, state)

    def can_learn(self) -> bool:
        return self.learning.can_learn()

    def updates(self, prev: int, step: int) -> int:
        return self.learning.updates(prev, step)

    def learn(self, step: int) -> torch.Tensor:
        self.learned += 1
        return self.learning.learn(step)

    def after_updates(self, prev: int, step: int) -> None:
        if self.learning.after_updates(prev, step):
            self.syncs += 1  # actors refresh their opponent pools (games) when they see a new count
        updates, syncs = self.published
        if self.learned - updates >= self.cfg.broadcast_interval or self.syncs != syncs:
            self._publish()

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "envs": None, "pool": None,
                "per": self.per.state_dict() if self.per is not None else None,
                "distributed": {"updates": self.learned, "syncs": self.syncs}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if data.get("distributed") is None:
            raise ValueError("it was written by a single-process run (num_actors=0), whose replay keeps each "
                             "env's steps in order; resume it with --num_actors 0")
        self.learning.load_state_dict(data)
        if isinstance(self.memory, FrameStreams):
            self.memory.mark_reset()  # the actors restart on new seeds: every stream's next step starts an episode
        self.learned, self.syncs = data["distributed"]["updates"], data["distributed"]["syncs"]

    def close(self) -> None:
        self.pool.close()

    def _publish(self) -> None:
        self.pool.publish(weights_of(self.agent, self.syncs))
        self.published = (self.learned, self.syncs)

    def _forget(self, i: int) -> None:
        """Actor i died: its open windows end where it stopped (left at priority 0, never sampled), and its
        replacement's envs start new episodes."""
        self.unscored[i].clear()
        if isinstance(self.memory, FrameStreams):
            self.memory.mark_reset(i)


class DistributedSearch(SearchedEpisodes):
    """target="mcts" on Ray: search actors play `mcts_episodes` searched episodes per batch; this process keeps the
    (s, Q_mcts(s, ·)) pairs and regresses Q toward them (inherited from SearchedEpisodes), publishing its weights
    every broadcast_interval updates (the search's guide is the learner's latest Q)."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind, env: SearchEnv, agent: Agent,
                 stop: Callable[[], bool] = lambda: False) -> None:
        super().__init__(cfg, rng, kind, env, agent)  # the learner's own search env only gives shapes; actors search
        self.learned, self.published = 0, -1
        self.bytes_received = self.transitions_received = 0
        self.pool = ActorPool(cfg, SearchActor, stop)  # last: nothing after it can fail and leave Ray running

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        if not self.pool.started:
            self._publish()
            self.pool.launch(state.step)
        shipment = self.pool.next(state.step)
        if shipment is None:
            return Collected(NO_EPISODES, eps_at(state.step))  # a signal: the loop stops at its next check
        if shipment.searched is not None:
            for obs, q in zip(*shipment.searched, strict=True):
                self.memory.add(obs, q)
            self.transitions_received += len(shipment.searched[0])
        self.bytes_received += shipment.nbytes()
        return counted(self.pool, shipment, state)

    def learn(self, step: int) -> torch.Tensor:
        self.learned += 1
        return super().learn(step)

    def after_updates(self, prev: int, step: int) -> None:
        if self.learned - self.published >= self.cfg.broadcast_interval:
            self._publish()

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "distributed": {"updates": self.learned, "syncs": 0}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        super().load_state_dict(data)  # the same target memory as one process: either resumes the other
        self.learned = (data.get("distributed") or {}).get("updates", 0)

    def close(self) -> None:
        self.pool.close()

    def _publish(self) -> None:
        self.pool.publish(weights_of(self.agent, 0))
        self.published = self.learned


def counted(pool: ActorPool, shipment: Shipment, state: LoopState) -> Collected:
    """After a shipment is stored: its env steps counted, its actor asked for the next batch (at the new env step,
    which an actor on the eps_* schedule explores by), and its finished episodes handed to the loop to log."""
    state.step += shipment.steps
    pool.request(shipment.actor, state.step)
    return Collected(shipment.episodes, shipment.eps, shipment.actor)


def store_frames(memory: FrameStreams, per: PrioritizedSampler | None, unscored: deque[np.ndarray],
                 shipment: Shipment) -> None:
    """An actor's frames, step by step, into its stream. Each step's transitions wait at priority 0 in
    `unscored` (that actor's) until the actor's priorities for them arrive: it folds its n-step windows in step
    order, so the priorities shipped belong to the oldest unscored steps."""
    f = shipment.frames
    assert f is not None
    firsts = np.split(f.first, np.cumsum(f.first_count)[:-1])  # each step's reset frames
    for k in range(len(f.actions)):
        slots = memory.add_frames(shipment.actor, firsts[k], f.new[k], f.actions[k], f.rewards[k], f.terminated[k],
                                  f.ended[k])
        if per is not None:
            per.set_invalid(slots)  # not sampled before its priority is known (its window is still open)
        unscored.append(slots)
    n_envs = f.actions.shape[1]
    for k in range(len(shipment.priorities) // n_envs):
        slots = unscored.popleft()
        if per is not None:
            per.update(slots, shipment.priorities[k * n_envs:(k + 1) * n_envs])
