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
single-process one whatever the actors' speed. Each actor has at most `max_in_flight` batches requested and not
yet taken (back-pressure: an actor ahead of the learner waits, and Ray's object store holds at most
num_actors × max_in_flight batches). An actor that dies (its process killed) is replaced by a new one on a new
seed, with the latest weights; the replay is the learner's and stays intact.

A distributed run is resumable (learner, replay, priorities, counters and RNGs are checkpointed; actors
restart on new seeds) but not bit-reproducible: which actor's batch arrives first depends on timing.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepq.config import Config
from deepq.core.agent import Agent
from deepq.core.frame_streams import FrameStreams
from deepq.core.per import PrioritizedSampler
from deepq.core.replay import ReplayMemory
from deepq.envs.kinds import EnvKind
from deepq.games.kind import GameKind
from deepq.run.log import RunLog
from deepq.training.actor import Actor, Shipment, weights_of
from deepq.training.control import LoopState, crossings, episode_ended
from deepq.training.dqn import SingleAgent, Transitions, make_replay
from deepq.training.ray_cluster import connect, require_ray


class Distributed(Transitions):
    """The learner's side: DQN's replay, PER and updates (inherited from Transitions), fed by Ray actors."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind) -> None:
        self.ray = require_ray(cfg)
        self.started_ray = connect(cfg)  # at set-up: a Ray that cannot start stops the run before it writes
        probe = kind.make_vec_env(cfg.replace(num_envs=1))  # shapes and names only
        self.obs_shape, self.n_actions, obs_dtype = probe.obs_shape, probe.n_actions, probe.obs_dtype
        self.env_label = probe.env_label
        probe.close()
        two_player = isinstance(kind, GameKind)
        self.cfg, self.rng, self.kind = cfg, rng, kind
        self.players = SingleAgent(self.n_actions)  # acting happens in the actors; the learner has no envs
        self.agent = Agent(self.obs_shape, self.n_actions, cfg, two_player=two_player)
        memory = make_replay(cfg, self.obs_shape, obs_dtype, self.agent.device, self.n_actions,
                             two_player=two_player, folded=True)
        assert isinstance(memory, ReplayMemory | FrameStreams)  # folded rows, or each actor's frames once
        self.memory: ReplayMemory | FrameStreams = memory
        self.per = PrioritizedSampler(self.memory.num_slots, cfg.per_alpha) if cfg.prioritized else None
        self.actors: list[Any] = []
        self.generation: list[int] = []  # per actor id: replacements so far (seeds the replacement)
        self.in_flight: dict[Any, tuple[int, int]] = {}  # object ref -> (actor id, generation)
        self.expected: list[int] = []  # per actor: the seq of the batch to store next (each actor's in order)
        self.early: list[dict[int, Shipment]] = []  # per actor: batches that arrived before their predecessor
        # frame stacks: per actor, the slots of its steps whose n-step windows are not complete yet (priority 0
        # until the actor's priorities for them arrive, with a later batch)
        self.unscored: list[deque[np.ndarray]] = []
        self.weights_ref: Any = None
        self.weights_version = 0  # broadcasts so far
        self.published = (-1, -1)  # (updates, target syncs) at the last broadcast
        self.sent_version: list[int] = []  # per actor: the weights version it last received
        self.updates = self.syncs = 0
        self.start_step = 0
        self.replaced = 0  # actors replaced after dying
        self.bytes_received = self.transitions_received = 0
        self.message: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)

    # -- the Experience protocol ------------------------------------------------------------------------------

    def start(self) -> None:
        pass  # the actors start at the first collect, fresh or resumed

    def collect(self, state: LoopState, eps_at: Callable[[int], float], log: RunLog) -> None:
        if not self.actors:
            self._launch(state.step)
        shipment = self._next(state.step)
        t = shipment.transitions
        if shipment.frames is not None:
            self._store_frames(shipment)
        elif t is not None:
            assert isinstance(self.memory, ReplayMemory)
            slots = self.memory.add(t.obs, t.actions, t.returns, t.next_obs, t.terminated, None, t.next_legal,
                                    discount=t.discounts)
            if self.per is not None:
                self.per.update(slots, shipment.priorities)  # Ape-X: the actors' priorities, not the max
            self.transitions_received += len(t)
            self.bytes_received += shipment.nbytes()
        state.step += shipment.steps
        for ret, length in shipment.episodes:
            episode_ended(state, ret, length, shipment.eps, log, actor=shipment.actor)
        self._request(shipment.actor, state.step)

    def _store_frames(self, shipment: Shipment) -> None:
        assert isinstance(self.memory, FrameStreams)
        store_frames(self.memory, self.per, self.unscored[shipment.actor], shipment)
        self.transitions_received += shipment.steps
        self.bytes_received += shipment.nbytes()

    def learn(self, step: int) -> torch.Tensor:
        self.updates += 1
        return super().learn(step)

    def after_updates(self, prev: int, step: int) -> None:
        if self.cfg.target == "hard" and crossings(prev, step, self.cfg.target_update_interval):
            self.syncs += 1  # actors refresh their opponent pools (games) when they see a new count
        super().after_updates(prev, step)
        updates, syncs = self.published
        if self.updates - updates >= self.cfg.broadcast_interval or self.syncs != syncs:
            self._publish()

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "envs": None, "pool": None,
                "per": self.per.state_dict() if self.per is not None else None,
                "distributed": {"updates": self.updates, "syncs": self.syncs}}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        if data.get("distributed") is None:
            raise ValueError("it was written by a single-process run (num_actors=0), whose replay keeps each "
                             "env's steps in order; resume it with --num_actors 0")
        self.memory.load_state_dict(data["memory"])
        if isinstance(self.memory, FrameStreams):
            self.memory.mark_reset()  # the actors restart on new seeds: every stream's next step starts an episode
        if self.per is not None:
            self.per.load_state_dict(data["per"])
        self.updates, self.syncs = data["distributed"]["updates"], data["distributed"]["syncs"]

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
        self.actors, self.in_flight = [], {}
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False

    # -- actors -------------------------------------------------------------------------------------------

    def _publish(self) -> None:
        """ray.put the learner's weights once; each actor gets the reference with its next request."""
        self.weights_ref = self.ray.put(weights_of(self.agent, self.syncs))
        self.weights_version += 1
        self.published = (self.updates, self.syncs)

    def _seed(self, actor_id: int) -> int:
        """Each actor, each replacement and each resume gets its own seed (distributed runs are not replayed)."""
        seq = np.random.SeedSequence([self.cfg.seed, 0xA9E7, actor_id, self.generation[actor_id], self.start_step])
        return int(seq.generate_state(1)[0] & 0x7FFFFFFF)

    def _launch(self, step: int) -> None:
        remote = self.ray.remote(num_cpus=1, max_restarts=0)(Actor)
        self.remote_actor = remote
        self.start_step = step
        self._publish()
        n = self.cfg.num_actors
        self.actors = [remote.remote(self.cfg, i, n) for i in range(n)]
        self.generation, self.sent_version = [0] * n, [-1] * n
        self.expected, self.early, self.unscored = [0] * n, [{} for _ in range(n)], [deque() for _ in range(n)]
        self.pids = self.ray.get([a.reset.remote(self._seed(i), self.weights_ref)
                                  for i, a in enumerate(self.actors)])
        for i in range(n):
            self.sent_version[i] = self.weights_version
            for _ in range(self.cfg.max_in_flight):
                self._request(i, step)

    def _request(self, i: int, step: int) -> None:
        """Ask actor i for its next batch (with the newest weights if it has not had them)."""
        weights = None
        if self.sent_version[i] != self.weights_version:
            weights, self.sent_version[i] = self.weights_ref, self.weights_version
        ref = self.actors[i].collect.remote(weights, step)
        self.in_flight[ref] = (i, self.generation[i])

    def _next(self, step: int) -> Shipment:
        """The next batch any actor has ready, each actor's in the order it sent them; an actor found dead is
        replaced, and its batches are dropped."""
        while True:
            for i, early in enumerate(self.early):
                if self.expected[i] in early:
                    self.expected[i] += 1
                    return early.pop(self.expected[i] - 1)
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=60)
            if not ready:
                continue  # every actor is busy or starting (a slow env); keep waiting
            ref = ready[0]
            i, gen = self.in_flight.pop(ref)
            try:
                shipment = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as e:
                if gen == self.generation[i]:
                    self._replace(i, step, e)
                continue
            self.early[i][shipment.seq] = shipment

    def _replace(self, i: int, step: int, error: Exception) -> None:
        self.generation[i] += 1
        self.replaced += 1
        self.in_flight = {r: v for r, v in self.in_flight.items() if v[0] != i}
        self.expected[i], self.early[i] = 0, {}
        self.unscored[i].clear()  # their windows end where the actor died: left at priority 0, never sampled
        if isinstance(self.memory, FrameStreams):
            self.memory.mark_reset(i)  # the replacement's envs start new episodes
        self.message(f"actor {i} died ({type(error).__name__}); starting a replacement on a new seed, training "
                     "goes on (the replay is intact)")
        try:
            self.ray.kill(self.actors[i], no_restart=True)
        except Exception:
            pass
        started = time.monotonic()
        self.actors[i] = self.remote_actor.remote(self.cfg, i, self.cfg.num_actors)
        self.pids[i] = self.ray.get(self.actors[i].reset.remote(self._seed(i), self.weights_ref))
        self.sent_version[i] = self.weights_version
        for _ in range(self.cfg.max_in_flight):
            self._request(i, step)
        self.message(f"actor {i} replaced in {time.monotonic() - started:.1f} s")


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
