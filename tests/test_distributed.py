"""Distributed training (Ape-X on Ray) with a real local Ray: a weight broadcast reaches the actors, a killed
actor (kill -9) is replaced with the replay intact, a distributed run writes its run directory and resumes, every
env kind trains (Atari frames, MCTS search actors, self-play with opponent pools), the learner's death leaves a
resumable checkpoint, and a missing or unreachable Ray is one line. One Ray for the whole module (its start-up is
~5 s). What an actor ships, checked without Ray, is tests/test_actors.py."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from distributed_harness import MCTS, SMALL
from ray_lock import one_ray_at_a_time

import deepq
from deepq.errors import CheckpointError
from deepq.files import safe_load
from deepq.training.actor import weights_of
from deepq.training.control import LoopState
from deepq.training.loop import CHECKPOINT_FORMAT, make_experience
from deepq.training.ray_cluster import LOOPBACK_ONLY
from deepq.training.setup import env_kind

assert os.environ.get(LOOPBACK_ONLY) == "0"  # tests/conftest.py, before Ray's first import: loopback only
ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def _one_ray() -> Iterator[None]:
    """This module's tests start Rays: none of another test's may run meanwhile (tests/ray_lock.py says why)."""
    with one_ray_at_a_time():
        yield


@pytest.fixture(scope="module")
def local_ray() -> Any:
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False,
                 logging_level="ERROR")
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # nothing listens beyond loopback
    yield ray
    if started:
        ray.shutdown()



def test_a_weight_broadcast_reaches_the_actors_and_a_killed_actor_is_replaced(local_ray: Any, tmp_path: Path) -> None:
    cfg = deepq.Config(**SMALL)
    mode = make_experience(cfg, np.random.default_rng(0), env_kind(cfg))
    try:
        state = LoopState()
        mode.collect(state, lambda s: 0.1)  # launches the actors
        with torch.no_grad():
            for p in mode.agent.online.parameters():
                p.add_(1.0)
        mode._publish()  # type: ignore[attr-defined]
        pool = mode.pool  # type: ignore[attr-defined]
        # Each actor's next request carries the weights, and an actor gets a request when a batch of its is taken;
        # which actor's batch is ready first is up to the machine (one actor may serve many before the other's
        # first arrives), so collect until both have been asked again.
        end = time.monotonic() + 60
        while min(pool.sent_version) != pool.weights_version and time.monotonic() < end:
            mode.collect(state, lambda s: 0.1)
        assert pool.sent_version == [pool.weights_version] * cfg.num_actors
        want = {k: v.numpy() for k, v in mode.agent.online.state_dict().items()}
        for actor in pool.actors:
            got = ray.get(actor.weights_loaded.remote())
            for k in want:
                np.testing.assert_array_equal(got[k], want[k])

        stored, received = len(mode.memory), mode.transitions_received  # type: ignore[attr-defined]
        os.kill(pool.pids[0], signal.SIGKILL)
        end = time.monotonic() + 60
        while pool.replaced == 0 and time.monotonic() < end:
            mode.collect(state, lambda s: 0.1)  # Ray notices within seconds
        assert pool.replaced == 1
        end = time.monotonic() + 60
        while pool.expected[0] == 0 and time.monotonic() < end:  # until the replacement's first batch is taken
            mode.collect(state, lambda s: 0.1)
        assert pool.pids[0] != 0 and pool.expected[0] > 0
        assert len(mode.memory) >= stored and mode.transitions_received > received  # type: ignore[attr-defined]
        actors = {s for s in ray.get([a.reset.remote(1, weights_of(mode.agent, 0)) for a in pool.actors])}
        assert len(actors) == cfg.num_actors  # both alive, in two processes
    finally:
        mode.close()



def test_a_distributed_run_writes_the_run_directory_and_resumes(local_ray: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    deepq.train(deepq.Config(**{**SMALL, "run_dir": str(run), "total_steps": 2_000}))
    with (run / "metrics.csv").open() as f:
        first = list(csv.DictReader(f))
    episodes = [r for r in first if r["episode"]]
    assert episodes and {r["actor"] for r in episodes} == {"0", "1"}
    agent = deepq.train(deepq.Config(**{**SMALL, "run_dir": str(run), "total_steps": 4_000}), resume=run)
    with (run / "metrics.csv").open() as f:
        after = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in after if r["episode"]]
    assert steps == sorted(steps) and steps[-1] > 2_000 >= steps[len(episodes) - 1]
    final = [int(r["step"]) for r in after if r["eval_kind"] == "final"]
    assert len(final) == 1 and final[0] >= 4_000  # the first run's final row came after its checkpoint
    assert after[: len(episodes)] == first[: len(episodes)]  # rows up to the checkpoint are kept as they were
    assert agent.q_values(np.zeros(4, np.float32)).shape == (2,)
    with pytest.raises(CheckpointError, match=r"--num_actors N \(N >= 1\)"):
        deepq.train(deepq.Config(**{**SMALL, "run_dir": str(run), "total_steps": 6_000, "num_actors": 0}), resume=run)



@pytest.mark.slow  # ~30 s on 2 cores; the actor-to-replay path is checked above, the streams' state elsewhere
def test_an_atari_run_with_two_actors_trains_from_frames_and_resumes(local_ray: Any, tmp_path: Path) -> None:
    """Breakout from pixels (frame stacks of 4) on two actors: the learner's replay is one frame stream per actor,
    it learns, and a resume reloads the streams and goes on with new actors."""
    pytest.importorskip("ale_py")
    run = tmp_path / "run"
    cfg = deepq.preset("breakout", num_actors=2, actor_batch=25, total_steps=600, learning_starts=300,
                       buffer_size=2_000, train_freq=4, checkpoint_interval=300, eval_interval=0, eval_episodes=1,
                       max_episode_frames=400, prioritized=True, n_step=3, progress=False, run_dir=str(run))
    deepq.train(cfg)
    data = safe_load(run / "checkpoint" / "checkpoint.pt", CHECKPOINT_FORMAT)
    streams = data["memory"]["streams"]
    assert len(streams) == 2 and all(int(s["head"]) > 0 for s in streams)  # both actors' frames arrived
    assert data["loop"]["updates"] > 0
    agent = deepq.train(cfg.replace(total_steps=1_200), resume=run)
    after = safe_load(run / "checkpoint" / "checkpoint.pt", CHECKPOINT_FORMAT)
    assert after["loop"]["step"] >= 1_200 and after["loop"]["updates"] > data["loop"]["updates"]
    assert all(int(a["head"]) > int(b["head"]) for a, b in zip(after["memory"]["streams"], streams, strict=True))
    assert agent.q_values(np.zeros((4, 84, 84), np.uint8)).shape == (4,)



def test_without_ray_a_distributed_run_says_what_to_install(tmp_path: Path) -> None:
    code = ("import sys; sys.modules['ray'] = None\n"
            "from deepq.cli import main\n"
            f"sys.exit(main(['train', 'cartpole', '--num_actors', '2', '--run_dir', {str(tmp_path / 'r')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "pip install 'deepq[distributed]'" in lines[0]
    assert not (tmp_path / "r").exists()  # said before anything was written



def test_a_cluster_address_where_nothing_answers_is_one_line_in_seconds(tmp_path: Path) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # a port nothing listens on
    started = time.monotonic()
    with pytest.raises(deepq.DistributedError, match=f"nothing answers at ray_address '127.0.0.1:{port}'"):
        deepq.train(deepq.Config(**SMALL, ray_address=f"127.0.0.1:{port}", run_dir=str(tmp_path / "r")))
    assert time.monotonic() - started < 10 and not (tmp_path / "r").exists()
    with pytest.raises(deepq.DistributedError, match="HOST:PORT"):
        deepq.train(deepq.Config(**SMALL, ray_address="headnode", run_dir=str(tmp_path / "r")))



def test_mcts_targets_train_on_two_search_actors_and_resume_in_one_process(local_ray: Any, tmp_path: Path) -> None:
    """Both actors' searched episodes reach the learner, which learns; the target memory is the one-process
    mode's, so the run resumes with num_actors=0 (the other way round goes through the same load)."""
    run = tmp_path / "run"
    cfg = deepq.Config(**{**MCTS, "mcts_simulations": 8, "checkpoint_interval": 50}, num_actors=2, total_steps=120,
                       run_dir=str(run))
    deepq.train(cfg)
    with (run / "metrics.csv").open() as f:
        episodes = [r for r in csv.DictReader(f) if r["episode"]]
    assert {r["actor"] for r in episodes} == {"0", "1"}
    data = safe_load(run / "checkpoint" / "checkpoint.pt", CHECKPOINT_FORMAT)
    assert data["memory"]["size"] > 0 and data["loop"]["updates"] > 0 and data["distributed"]["updates"] > 0
    deepq.train(cfg.replace(total_steps=200, num_actors=0), resume=run)
    after = safe_load(run / "checkpoint" / "checkpoint.pt", CHECKPOINT_FORMAT)
    assert after["loop"]["step"] >= 200 and after["memory"]["size"] > data["memory"]["size"]



@pytest.mark.slow
def test_the_cartpole_preset_solves_with_two_actors(local_ray: Any, tmp_path: Path) -> None:
    agent = deepq.train(deepq.preset("cartpole", seed=0, num_actors=2, run_dir=str(tmp_path / "r"), progress=False))
    assert agent.final_evaluation is not None
    assert agent.final_evaluation.mean >= 475



def test_the_learners_death_leaves_the_last_checkpoint_resumable(tmp_path: Path) -> None:
    """kill -9 of the learner (the CLI process, which started its own local Ray): the checkpoint written before
    is intact, and `deepq train --resume` finishes the run from it."""
    run = tmp_path / "run"
    args = [sys.executable, "-m", "deepq.cli", "train", "CartPole-v1", "--run_dir", str(run), "--total_steps",
            "1000000", "--eval_interval", "0", "--progress", "false"]
    for k, v in SMALL.items():
        if k not in ("env", "total_steps", "eval_interval", "progress"):
            args += [f"--{k}", *(map(str, v) if isinstance(v, tuple) else [str(v)])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = run / "checkpoint" / "checkpoint.pt"
    end = time.monotonic() + 120
    while not checkpoint.exists():
        assert proc.poll() is None and time.monotonic() < end, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    step = safe_load(checkpoint, CHECKPOINT_FORMAT)["loop"]["step"]
    assert step >= 1_000
    resumed = subprocess.run([sys.executable, "-m", "deepq.cli", "train", "--resume", str(run), "--total_steps",
                              str(step + 1_000)], capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "agent.pt").exists()
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert int(rows[-1]["step"]) >= step + 1_000 and rows[-1]["eval_kind"] == "final"



def test_self_play_with_an_opponent_pool_trains_distributed(local_ray: Any, tmp_path: Path) -> None:
    """Tic-tac-toe by self-play on two actors, each with its own opponent pool refreshed at the learner's target
    syncs: episodes from both actors, first-player returns in {−1, 0, 1}, a final evaluation from both seats."""
    run = tmp_path / "ttt"
    agent = deepq.train(deepq.preset("tictactoe", total_steps=4_000, learning_starts=500, target_update_interval=500,
                                     opponent_pool=2, eval_interval=0, eval_episodes=5, num_actors=2, actor_batch=20,
                                     run_dir=str(run), progress=False))
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    episodes = [r for r in rows if r["episode"]]
    assert {r["actor"] for r in episodes} == {"0", "1"}
    # a row holds a shipment's games: their mean return, and the lowest and highest, each a game's -1, 0 or 1
    assert {float(r[k]) for r in episodes for k in ("return_min", "return_max")} <= {-1.0, 0.0, 1.0}
    assert all(-1.0 <= float(r["episode_return"]) <= 1.0 for r in episodes)
    assert agent.final_evaluation is not None
    assert agent.final_evaluation.seats is not None
