"""The learner's Ray actors: started, asked for batches with back-pressure, given new weights, replaced when they die.

Used by both distributed learners (deepq/training/distributed.py): DQN's replay fed by transition actors, and
target="mcts" fed by search actors. Each actor has at most `max_in_flight` batches requested and not yet taken:
an actor ahead of the learner waits, and Ray's object store holds at most num_actors × max_in_flight batches.
Weights are `ray.put` once per broadcast; each actor receives the reference with its next request. An actor
that dies (its process killed) is replaced by a new one on a new seed, with the latest weights. Every wait
(actors starting, a batch) polls `stop` each second, so a signal stops the run in seconds however slow the actors.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from deepq.config import Config
from deepq.training.actor import Shipment, Weights
from deepq.training.ray_cluster import connect, require_ray


class ActorPool:
    """`cfg.num_actors` Ray actors of class `actor_class` (Actor or SearchActor, deepq/training/actor.py)."""

    WAIT_S = 1.0  # each wait's slice: how soon `stop` is seen
    SAY_WAITING_S = 15.0  # actors not started after this: say what they wait for (CPUs another job holds)

    def __init__(self, cfg: Config, actor_class: type, stop: Callable[[], bool] = lambda: False) -> None:
        self.stop = stop  # the loop asked to stop (a deferred signal): every wait returns early
        self.ray = require_ray(cfg)
        self.started_ray = connect(cfg)  # at set-up: a Ray that cannot start stops the run before it writes
        self.cfg, self.actor_class = cfg, actor_class
        self.actors: list[Any] = []
        self.pids: list[int] = []
        self.generation: list[int] = []  # per actor id: replacements so far (seeds the replacement)
        self.in_flight: dict[Any, tuple[int, int]] = {}  # object ref -> (actor id, generation)
        self.expected: list[int] = []  # per actor: the seq of the batch to hand out next (each actor's in order)
        self.early: list[dict[int, Shipment]] = []  # per actor: batches that arrived before their predecessor
        self.weights_ref: Any = None
        self.weights_version = 0  # broadcasts so far
        self.sent_version: list[int] = []  # per actor: the weights version it last received
        self.start_step = 0
        self.replaced = 0  # actors replaced after dying
        self.on_replaced: Callable[[int], None] = lambda i: None  # the learner forgets what actor i left open
        self.message: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)

    @property
    def started(self) -> bool:
        return bool(self.actors)

    def publish(self, weights: Weights) -> None:
        """ray.put the learner's weights once; each actor gets the reference with its next request."""
        self.weights_ref = self.ray.put(weights)
        self.weights_version += 1

    def launch(self, step: int) -> None:
        """Start the actors (after a first publish), each with max_in_flight requests."""
        self.remote = self.ray.remote(num_cpus=1, max_restarts=0)(self.actor_class)
        self.start_step = step
        n = self.cfg.num_actors
        self.actors = [self.remote.remote(self.cfg, i, n) for i in range(n)]
        self.generation, self.sent_version = [0] * n, [-1] * n
        self.expected, self.early = [0] * n, [{} for _ in range(n)]
        pids = self._started([a.reset.remote(self._seed(i), self.weights_ref) for i, a in enumerate(self.actors)])
        if pids is None:
            return  # stopped while the actors started: next() returns None, close() ends them
        self.pids = pids
        for i in range(n):
            self.sent_version[i] = self.weights_version
            for _ in range(self.cfg.max_in_flight):
                self.request(i, step)

    def request(self, i: int, step: int) -> None:
        """Ask actor i for its next batch (with the newest weights if it has not had them)."""
        weights = None
        if self.sent_version[i] != self.weights_version:
            weights, self.sent_version[i] = self.weights_ref, self.weights_version
        ref = self.actors[i].collect.remote(weights, step)
        self.in_flight[ref] = (i, self.generation[i])

    def next(self, step: int) -> Shipment | None:
        """The next batch any actor has ready, each actor's in the order it sent them; an actor found dead is
        replaced, and its batches are dropped. None when `stop` says so."""
        while not self.stop():
            for i, early in enumerate(self.early):
                if self.expected[i] in early:
                    self.expected[i] += 1
                    return early.pop(self.expected[i] - 1)
            ready, _ = self.ray.wait(list(self.in_flight), num_returns=1, timeout=self.WAIT_S)
            if not ready:
                continue  # every actor is busy or starting (a slow env, a long search); keep waiting
            ref = ready[0]
            i, gen = self.in_flight.pop(ref)
            try:
                shipment = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as e:
                if gen == self.generation[i]:
                    self._replace(i, step, e)
                continue
            self.early[i][shipment.seq] = shipment
        return None

    def _started(self, resets: list[Any]) -> list[int] | None:
        """The actors' pids once every reset in `resets` is done; None when `stop` came first. Actors that the
        cluster cannot place yet (another job holds its CPUs) are waited for, and the wait is said once."""
        t0, said = time.monotonic(), False
        while not self.stop():
            _, pending = self.ray.wait(resets, num_returns=len(resets), timeout=self.WAIT_S)
            if not pending:
                return list(self.ray.get(resets))
            if not said and time.monotonic() - t0 > self.SAY_WAITING_S:
                free = int(self.ray.available_resources().get("CPU", 0))
                self.message(f"waiting for {len(pending)} of {len(resets)} actor(s) to start: each needs a CPU and "
                             f"the cluster has {free} free now (another job holds the rest?); Ctrl-C stops")
                said = True
        return None

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

    def _seed(self, actor_id: int) -> int:
        """Each actor, each replacement and each resume gets its own seed (distributed runs are not replayed)."""
        seq = np.random.SeedSequence([self.cfg.seed, 0xA9E7, actor_id, self.generation[actor_id], self.start_step])
        return int(seq.generate_state(1)[0] & 0x7FFFFFFF)

    def _replace(self, i: int, step: int, error: Exception) -> None:
        self.generation[i] += 1
        self.replaced += 1
        self.in_flight = {r: v for r, v in self.in_flight.items() if v[0] != i}
        self.expected[i], self.early[i] = 0, {}
        self.on_replaced(i)
        self.message(f"actor {i} died ({type(error).__name__}); starting a replacement on a new seed, training "
                     "goes on (the replay is intact)")
        try:
            self.ray.kill(self.actors[i], no_restart=True)
        except Exception:
            pass
        started = time.monotonic()
        self.actors[i] = self.remote.remote(self.cfg, i, self.cfg.num_actors)
        pid = self._started([self.actors[i].reset.remote(self._seed(i), self.weights_ref)])
        if pid is None:
            return
        self.pids[i] = pid[0]
        self.sent_version[i] = self.weights_version
        for _ in range(self.cfg.max_in_flight):
            self.request(i, step)
        self.message(f"actor {i} replaced in {time.monotonic() - started:.1f} s")
