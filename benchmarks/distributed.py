"""Distributed training (Ape-X on Ray) against the single-process loop, side by side in one run.

    python benchmarks/distributed.py                      # everything (about 13 minutes on 2 cores)
    python benchmarks/distributed.py --parts throughput   # env steps/s and updates/s only
    python benchmarks/distributed.py --parts solve --seeds 0,1,2
    python benchmarks/distributed.py --parts minatar --minutes 3   # MinAtar Breakout at equal wall-clock, seeds 0-2
    python benchmarks/distributed.py --parts replay      # the learner's replay in process against a replay actor
    python benchmarks/distributed.py --parts connect4 --minutes 6 --games 20   # connect4-mcts at equal wall-clock

throughput: for the single-process loop and for 1, 2 and 4 actors, env steps/s and updates/s over a fixed
window of wall-clock time after learning starts, on CartPole (MLP 64-64, batch 64, one env per actor) at two
replay ratios: one update per 32 env steps (collection-bound: what the actors can deliver) and one per env step
(the cartpole preset's ratio: learner-bound). Each is a deepq.train run without evaluations or checkpoints,
timed between env steps N/2 and N after the loop's collect calls (start-up, Ray's and the actors', is outside).
Scaling efficiency is (rate with N actors) / (N × rate with 1 actor). Bytes shipped per transition are the
arrays' bytes received by the learner (CartPole, MinAtar Breakout frames, and Atari Breakout frame stacks, whose
actors ship each new 84x84 frame once), divided by the transitions received.

solve: wall-clock seconds until the cartpole preset's evaluation first reaches 475, single process against
2 actors at the same replay ratio, for each seed (a local Ray's start-up, ~5 s, is inside the distributed
time). minatar: the minatar-breakout preset for the same wall-clock minutes (max_minutes), one process against
2 actors, each of --seeds: env steps reached, periodic and final evaluations. connect4: the connect4-mcts preset
for the same wall-clock minutes, one process against one search actor, first seed: plies per minute, then games
against random and OpenSpiel's MCTS with 1,000 simulations a move. One Ray is started for the whole run, on
loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import deepq  # after the path: the checkout's deepq
from deepq.training import loop

CARTPOLE = dict(env="CartPole-v1", hidden_sizes=(64, 64), batch_size=64, buffer_size=50_000, learning_starts=1_000,
                target_update_interval=100, lr=1e-3, double=True, loss="huber", eps_decay_steps=5_000,
                progress=False, eval_interval=0, eval_episodes=1, checkpoint_interval=0, gradient_steps=1)


def measure(cfg: deepq.Config) -> dict[str, float]:
    """deepq.train on `cfg` (no evaluations or checkpoints); env steps/s and updates/s between env steps
    total_steps/2 and total_steps, read after each of the loop's collect calls (the mode's collect is wrapped,
    as benchmarks/speed.py wraps the calls it times); bytes per transition for a distributed run."""
    marks: list[tuple[float, int, int]] = []  # (time, env step, updates) after each collect
    modes: list[Any] = []
    make = loop.make_experience

    def timed_experience(*args: Any) -> Any:
        mode = make(*args)
        collect = mode.collect

        def timed(state: Any, eps_at: Any) -> Any:
            got = collect(state, eps_at)
            marks.append((time.perf_counter(), state.step, state.updates))
            return got

        mode.collect = timed  # type: ignore[method-assign]
        modes.append(mode)
        return mode

    loop.make_experience = timed_experience  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as d:
            deepq.train(cfg.replace(run_dir=str(Path(d) / "run")))
    finally:
        loop.make_experience = make  # type: ignore[assignment]
    window = [m for m in marks if m[1] >= cfg.total_steps // 2]
    (t0, s0, u0), (t1, s1, u1) = window[0], window[-1]
    out = {"steps_per_s": (s1 - s0) / (t1 - t0), "updates_per_s": (u1 - u0) / (t1 - t0)}
    if cfg.num_actors:
        out["bytes_per_transition"] = modes[0].bytes_received / max(modes[0].transitions_received, 1)
    return out


def throughput(seconds: float, actor_counts: list[int]) -> list[dict[str, Any]]:
    """Each setting trains for about 2 × `seconds` at the rates seen on 2 cores; the second half is measured."""
    rows = []
    workloads = (("collection-bound (1 update / 32 env steps)", 32), ("learner-bound (1 update / env step)", 1))
    for (name, train_freq), rate in zip(workloads, (10_000, 2_500), strict=True):
        base = None
        for n in [0, *actor_counts]:
            cfg = deepq.Config(**CARTPOLE, train_freq=train_freq, num_actors=n, actor_eps="schedule",
                               total_steps=int(2 * seconds * rate))
            r = measure(cfg)
            if n == 1:
                base = r["steps_per_s"]
            eff = r["steps_per_s"] / (n * base) if n and base else None
            rows.append({"workload": name, "actors": n, **r, "efficiency": eff})
            print(json.dumps(rows[-1]), flush=True)
    frames = measure(deepq.Config(env="MinAtar/Breakout-v0", arch="small_cnn", batch_size=32, buffer_size=20_000,
                                  learning_starts=1_000, train_freq=32, num_actors=1, progress=False, eval_interval=0,
                                  eval_episodes=1, checkpoint_interval=0,
                                  total_steps=int(2 * min(seconds, 10) * 4_000)))
    rows.append({"workload": "MinAtar Breakout frames (10x10x4 bool), 1 actor", "actors": 1, **frames,
                 "efficiency": None})
    print(json.dumps(rows[-1]), flush=True)
    atari = measure(deepq.preset("breakout", buffer_size=20_000, learning_starts=1_000, train_freq=32, num_actors=1,
                                 progress=False, eval_interval=0, eval_episodes=1, checkpoint_interval=0,
                                 max_episode_frames=4_000, total_steps=4_000))
    rows.append({"workload": "Atari Breakout frame stacks (4x84x84 uint8), each frame shipped once, 1 actor",
                 "actors": 1, **atari, "efficiency": None})
    print(json.dumps(rows[-1]), flush=True)
    return rows


class ReplayHolder:
    """A replay in its own process (a Ray actor): the other place Ape-X's replay can live."""

    def __init__(self, capacity: int, batch: int) -> None:
        import numpy as np

        from deepq.core.per import PrioritizedSampler
        from deepq.core.replay import ReplayMemory

        self.rng, self.batch = np.random.default_rng(0), batch
        self.memory = ReplayMemory(capacity, (4,), folded=True)
        self.per = PrioritizedSampler(capacity)
        for _ in range(capacity // 50):
            o = self.rng.normal(size=(50, 4)).astype(np.float32)
            slots = self.memory.add(o, np.zeros(50, np.int64), np.ones(50, np.float32), o, np.zeros(50, np.float32),
                                    None, None, discount=np.full(50, 0.99, np.float32))
            self.per.update(slots, self.rng.random(50))

    def sample(self) -> Any:
        slots, weights = self.per.sample(self.batch, self.rng, 0.4)
        return slots, weights, self.memory.batch_slots(slots)

    def update(self, slots: Any, td: Any) -> None:
        self.per.update(slots, td)


def replay(repeats: int) -> list[dict[str, Any]]:
    """One learner step's replay traffic, a prioritized minibatch of 64 CartPole transitions sampled and its
    priorities written back: in the learner's own process against a replay actor (two Ray calls a step)."""
    import ray

    local = ReplayHolder(50_000, 64)
    remote = ray.remote(num_cpus=0)(ReplayHolder).remote(50_000, 64)
    ray.get(remote.sample.remote())
    rows = []
    for where in ("learner-owned (in process)", "replay actor (Ray calls)"):
        t0 = time.perf_counter()
        for _ in range(repeats):
            if where.startswith("learner"):
                slots, _, _ = local.sample()
                local.update(slots, local.rng.random(64))
            else:
                slots, _, _ = ray.get(remote.sample.remote())
                remote.update.remote(slots, local.rng.random(64))
        rows.append({"replay": where, "us_per_step": 1e6 * (time.perf_counter() - t0) / repeats})
        print(json.dumps(rows[-1]), flush=True)
    ray.kill(remote)
    return rows


def connect4(minutes: float, seed: int, games: int) -> list[dict[str, Any]]:
    """The connect4-mcts preset for the same wall-clock minutes, one process against 1 search actor (the one
    free core): plies played, plies per minute, then `games` games per seat against random and MCTS-1000."""
    from deepq.games.arena import arena, mcts_opponent, random_opponent
    from deepq.games.bot import as_bot

    rows = []
    for n in (0, 1):
        with tempfile.TemporaryDirectory() as d:
            cfg = deepq.preset("connect4-mcts", seed=seed, num_actors=n, progress=False, max_minutes=minutes,
                               eval_interval=0, eval_episodes=2, run_dir=str(Path(d) / "run"))
            t0 = time.perf_counter()
            agent = deepq.train(cfg)
            wall = time.perf_counter() - t0
            lines = (Path(d) / "run" / "metrics.csv").read_text().splitlines()
        plies = max(int(line.split(",")[0]) for line in lines[1:])
        game = as_bot(agent).game.game
        vs = {name: str(arena(game, lambda player, agent=agent: as_bot(agent), opponent, games, seed=seed))  # type: ignore[misc]
              for name, opponent in (("random", random_opponent(game, seed)),
                                     ("mcts-1000", mcts_opponent(game, 1000, seed)))}
        rows.append({"actors": n, "minutes": minutes, "plies": plies, "plies_per_min": plies / (wall / 60), **vs})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def solve(seeds: list[int]) -> list[dict[str, Any]]:
    rows = []
    for seed in seeds:
        for n in (0, 2):
            with tempfile.TemporaryDirectory() as d:
                t0 = time.perf_counter()
                agent = deepq.train(deepq.preset("cartpole", seed=seed, num_actors=n, progress=False,
                                                 run_dir=str(Path(d) / "run")))
                seconds = time.perf_counter() - t0
                metrics = (Path(d) / "run" / "metrics.csv").read_text().splitlines()
            solved = next((int(line.split(",")[0]) for line in metrics[1:]
                           if ",periodic" in line and float(line.split(",")[6]) >= 475), None)
            assert agent.final_evaluation is not None
            rows.append({"seed": seed, "actors": n, "seconds": seconds, "solved_at_step": solved,
                         "final_eval": agent.final_evaluation.mean})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def minatar(minutes: float, seeds: list[int]) -> list[dict[str, Any]]:
    """The minatar-breakout preset for the same wall-clock minutes, one process against 2 actors: env steps
    reached, the periodic evaluations (every 25,000 env steps, 10 episodes) and the final one."""
    rows = []
    for seed in seeds:
        for n in (0, 2):
            with tempfile.TemporaryDirectory() as d:
                cfg = deepq.preset("minatar-breakout", seed=seed, num_actors=n, progress=False, max_minutes=minutes,
                                   eval_interval=25_000, eval_episodes=10, run_dir=str(Path(d) / "run"))
                agent = deepq.train(cfg)
                lines = (Path(d) / "run" / "metrics.csv").read_text().splitlines()
            evals = [(int(line.split(",")[0]), float(line.split(",")[6])) for line in lines[1:] if ",periodic" in line]
            last_step = max(int(line.split(",")[0]) for line in lines[1:])
            assert agent.final_evaluation is not None
            rows.append({"seed": seed, "actors": n, "minutes": minutes, "env_steps": last_step, "evals": evals,
                         "final_eval": agent.final_evaluation.mean})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="throughput,replay,solve,minatar,connect4")
    ap.add_argument("--seconds", type=float, default=20.0, help="about the measured window per setting")
    ap.add_argument("--actors", default="1,2,4")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--minutes", type=float, default=3.0, help="wall-clock minutes per MinAtar and Connect Four run")
    ap.add_argument("--games", type=int, default=20, help="Connect Four games per seat against each opponent")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a local Ray on loopback only
    import ray

    ray.init(num_cpus=max(os.cpu_count() or 1, 4), include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="ERROR")
    print(f"machine: {os.cpu_count()} cores; deepq {deepq.__version__}; ray {ray.__version__}", flush=True)
    results: dict[str, Any] = {}
    if "throughput" in args.parts:
        results["throughput"] = throughput(args.seconds, [int(n) for n in args.actors.split(",")])
    if "solve" in args.parts:
        results["solve"] = solve([int(s) for s in args.seeds.split(",")])
    if "minatar" in args.parts:
        results["minatar"] = minatar(args.minutes, [int(s) for s in args.seeds.split(",")])
    if "replay" in args.parts:
        results["replay"] = replay(2_000)
    if "connect4" in args.parts:
        results["connect4"] = connect4(args.minutes, int(args.seeds.split(",")[0]), args.games)
    ray.shutdown()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
