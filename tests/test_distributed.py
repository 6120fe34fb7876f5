"""Distributed training (Ape-X on Ray): folded n-step transitions equal the replay's windows; an actor ships what
the single-process collector stores for the same seed and weights; with a real local Ray, a weight broadcast
reaches the actors, a killed actor (kill -9) is replaced with the replay intact, the cartpole preset solves
with two actors, and a distributed run resumes. One Ray for the whole module (its start-up is ~5 s)."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepq
from deepq.core.nstep import Folded, NStepFolder
from deepq.core.replay import ReplayMemory
from deepq.errors import CheckpointError
from deepq.files import safe_load
from deepq.training.actor import Actor, apex_epsilon, weights_of
from deepq.training.control import LoopState
from deepq.training.loop import CHECKPOINT_FORMAT, make_experience
from deepq.training.ray_cluster import LOOPBACK_ONLY
from deepq.training.setup import env_kind

os.environ.setdefault(LOOPBACK_ONLY, "0")  # before Ray's first import: a local Ray on 127.0.0.1 only
ray = pytest.importorskip("ray")

SMALL: dict[str, Any] = dict(env="CartPole-v1", total_steps=3_000, learning_starts=200, train_freq=2, batch_size=32,
                             buffer_size=5_000, hidden_sizes=(32, 32), target_update_interval=100,
                             eps_decay_steps=1_000, eval_interval=0, eval_episodes=2, checkpoint_interval=1_000,
                             progress=False, lr=1e-3, num_actors=2, actor_batch=20)


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


def rows(t: Folded) -> list[tuple[Any, ...]]:
    """Each transition as a hashable row, sorted (the actor emits per env in completion order)."""
    legal = t.next_legal if t.next_legal is not None else np.zeros((len(t), 0), bool)
    out = [(t.obs[i].tobytes(), int(t.actions[i]), float(t.returns[i]), t.next_obs[i].tobytes(),
            float(t.terminated[i]), float(t.discounts[i]), legal[i].tobytes()) for i in range(len(t))]
    return sorted(out)


def test_apex_epsilons_follow_the_paper() -> None:
    assert apex_epsilon(0, 1) == 0.4
    assert apex_epsilon(0, 8) == pytest.approx(0.4)
    assert apex_epsilon(7, 8) == pytest.approx(0.4 ** 8)
    assert apex_epsilon(1, 3) == pytest.approx(0.4 ** 4.5)


@pytest.mark.parametrize("n_step", [1, 3])
def test_folded_transitions_are_the_replays_n_step_windows_each_taken_once(n_step: int) -> None:
    """A stream with terminations, truncations and windows still open at its end, taken every 7 steps: each
    transition is handed out once, equal to a big replay's batch_slots for that row; the open ones are withheld."""
    rng = np.random.default_rng(0)
    num_envs, steps, gamma, every = 3, 40, 0.9, 7
    memory = ReplayMemory(1_000, (2,), num_envs=num_envs, n_step=n_step, gamma=gamma)
    folder = NStepFolder(num_envs, n_step, gamma, every, (2,))
    obs = rng.normal(size=(num_envs, 2)).astype(np.float32)
    parts: list[Folded] = []
    for t in range(steps):
        actions = rng.integers(0, 2, num_envs)
        rewards = rng.normal(size=num_envs).astype(np.float32)
        nxt = rng.normal(size=(num_envs, 2)).astype(np.float32)
        terminated = rng.random(num_envs) < 0.1
        ended = terminated | (rng.random(num_envs) < 0.1)  # some truncations
        memory.add(obs, actions, rewards, nxt, terminated, ended)
        folder.add(obs, actions, rewards, nxt, terminated, ended)
        if ((t + 1) % every == 0 or t == steps - 1) and (got := folder.take()) is not None:
            parts.append(got)
        obs = np.where(ended[:, None], rng.normal(size=(num_envs, 2)).astype(np.float32), nxt)
    shipped = Folded(*(np.concatenate([getattr(p, f) for p in parts]) for f in Folded._fields[:-1]), None)
    complete = np.arange((steps - (n_step - 1)) * num_envs)  # rows whose n − 1 successors are stored
    b = memory.batch_slots(complete)
    expected = Folded(b.obs.numpy(), b.actions.numpy(), b.rewards.numpy(), b.next_obs.numpy(),
                      b.terminated.numpy(), b.discounts.numpy(), None)
    assert rows(shipped) == rows(expected)
    assert (shipped.discounts == 0).any()  # terminal windows: no bootstrap
    if n_step > 1:  # windows cut short by an episode's end: γ^m with m < n
        assert (shipped.discounts > np.float32(gamma ** n_step) + 1e-6).any()
    with pytest.raises(RuntimeError, match="take"):
        for _ in range(every + n_step):
            folder.add(obs, actions, rewards, nxt, terminated, ended)


def collected_in_one_process(cfg: deepq.Config, steps: int) -> Any:
    """The single-process experience of `cfg` after `steps` vector steps of collection (no learning)."""
    single = make_experience(cfg, np.random.default_rng(cfg.seed), env_kind(cfg))
    single.start()
    state = LoopState(ep_return=[0.0] * cfg.num_envs, ep_length=[0] * cfg.num_envs)

    class NoLog:
        def episode(self, *a: Any) -> None:
            pass

    eps_at = deepq.training.dqn.exploration(cfg)  # type: ignore[attr-defined]
    for _ in range(steps):
        single.collect(state, eps_at, NoLog())  # type: ignore[arg-type]
    return single


@pytest.mark.parametrize("overrides", [dict(env="CartPole-v1", n_step=3, num_envs=2),
                                       dict(env="openspiel:tic_tac_toe", n_step=1, num_envs=2, arch="mlp"),
                                       dict(env="MinAtar/Breakout-v0", n_step=1, num_envs=1, arch="small_cnn")],
                         ids=["cartpole-3step", "tictactoe", "minatar"])


def test_an_actor_ships_what_the_single_process_collector_stores(overrides: dict[str, Any]) -> None:
    """Same seed, same weights, the preset's ε schedule: the actor's transitions (n-step folded, legal masks,
    pixels) are the single-process replay's rows, and its priorities are the learner's |TD errors| on them."""
    cfg = deepq.Config(**{**SMALL, **overrides, "actor_eps": "schedule", "learning_starts": 10_000,
                          "hidden_sizes": (16,), "num_actors": 0})
    steps = 30
    single = collected_in_one_process(cfg, steps)
    actor = Actor(cfg.replace(actor_batch=steps), actor_id=0, num_actors=1)
    actor.reset(cfg.seed, weights_of(single.agent, syncs=0))
    shipment = actor.collect(step=0)
    assert shipment.steps == steps * cfg.num_envs
    memory = single.memory
    t = shipment.transitions
    assert t is not None and len(t) >= steps * cfg.num_envs - cfg.num_envs * (cfg.n_step - 1)
    # every shipped transition is a replay row with the same n-step values
    b = memory.batch_slots(np.arange(len(memory)))
    legal = None if b.next_legal is None else b.next_legal.numpy()
    stored = Folded(b.obs.numpy(), b.actions.numpy(), b.rewards.numpy(), b.next_obs.numpy(), b.terminated.numpy(),
                    b.discounts.numpy(), legal)
    shipped, kept = Counter(rows(t)), Counter(rows(stored))
    assert not shipped - kept  # (a multiset: a game repeats its openings)
    if cfg.n_step == 1:  # every window is complete at once: the actor shipped exactly what the replay holds
        assert shipped == kept
    if env_kind(cfg).two_player:
        assert t.next_legal is not None and (t.discounts <= 0).all()  # −γ: the opponent's value, negated
    else:
        assert t.obs.dtype == memory.obs.dtype
    from deepq.training.actor import as_batch
    expected = single.agent.learner.priorities(as_batch(t)).numpy()
    np.testing.assert_array_equal(shipment.priorities, expected)
    single.close()
    actor.close()


def test_a_weight_broadcast_reaches_the_actors_and_a_killed_actor_is_replaced(local_ray: Any, tmp_path: Path) -> None:
    cfg = deepq.Config(**SMALL)
    mode = make_experience(cfg, np.random.default_rng(0), env_kind(cfg))
    try:
        state = LoopState()

        class NoLog:
            def episode(self, *a: Any) -> None:
                pass

        mode.collect(state, lambda s: 0.1, NoLog())  # type: ignore[arg-type]  # launches the actors
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
            mode.collect(state, lambda s: 0.1, NoLog())  # type: ignore[arg-type]
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
            mode.collect(state, lambda s: 0.1, NoLog())  # type: ignore[arg-type]  # Ray notices within seconds
        assert pool.replaced == 1
        end = time.monotonic() + 60
        while pool.expected[0] == 0 and time.monotonic() < end:  # until the replacement's first batch is taken
            mode.collect(state, lambda s: 0.1, NoLog())  # type: ignore[arg-type]
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


MCTS = dict(env="openspiel:tic_tac_toe", target="mcts", mcts_simulations=16, mcts_episodes=4, train_freq=1,
            batch_size=32, buffer_size=1_000, hidden_sizes=(32, 32), learning_starts=50, eval_interval=0,
            eval_episodes=2, checkpoint_interval=100, progress=False, lr=1e-3)


def test_a_search_actor_ships_the_pairs_one_process_records() -> None:
    """target="mcts": same seed, same weights, the preset's ε schedule: a search actor's (s, Q_mcts) pairs and
    episodes are those the single-process mode records in its target memory."""
    cfg = deepq.Config(**MCTS, actor_eps="schedule", total_steps=10_000)
    single = make_experience(cfg, np.random.default_rng(cfg.seed), env_kind(cfg))
    state = LoopState(ep_return=[0.0], ep_length=[0])
    logged: list[tuple[float, int]] = []

    class Log:
        def episode(self, step: int, episode: int, ret: float, length: int, *rest: Any) -> None:
            logged.append((ret, length))

    single.collect(state, deepq.training.dqn.exploration(cfg), Log())  # type: ignore[arg-type, attr-defined]
    from deepq.training.actor import SearchActor

    actor = SearchActor(cfg, actor_id=0, num_actors=1)
    actor.reset(cfg.seed, weights_of(single.agent, syncs=0))
    # the single process's search and ε draws come from rng(seed) and the MCTS's own seed, as the actor's do
    shipment = actor.collect(step=0)
    assert shipment.searched is not None and shipment.steps == state.step
    obs, q = shipment.searched
    memory = single.memory  # type: ignore[attr-defined]
    n = memory.size
    assert len(obs) == n > 0
    np.testing.assert_array_equal(obs, memory.obs[:n])
    np.testing.assert_array_equal(np.isnan(q), ~memory.searched[:n])
    np.testing.assert_array_equal(np.nan_to_num(q), memory.targets[:n])
    assert shipment.episodes == logged and len(logged) == cfg.mcts_episodes
    with pytest.raises(deepq.ConfigError, match="num_actors × num_envs"):
        deepq.Config(num_actors=4, frame_stack=4, num_envs=8, buffer_size=16, batch_size=8).validate()


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


def test_an_atari_actor_ships_each_frame_once_and_the_learner_rebuilds_the_single_process_replay() -> None:
    """Atari frame stacks (4 × 84 × 84), 3-step returns, truncations: the actor ships each new frame once; fed
    into the learner's frame-once replay, every slot holds the single-process replay's transition (same seed,
    same weights), the priorities are the |TD errors| of those transitions, and the steps whose windows are
    still open wait at priority 0. What is shipped is each frame once plus ≤ 32 bytes per transition; the replay
    stores ≤ 7.4 KB per transition."""
    pytest.importorskip("ale_py")
    from deepq.core.frame_streams import FrameStreams
    from deepq.core.per import PrioritizedSampler
    from deepq.training.distributed import store_frames

    cfg = deepq.preset("breakout", num_envs=2, n_step=3, buffer_size=400, learning_starts=10_000, actor_batch=40,
                       max_episode_frames=120, prioritized=True, actor_eps="schedule", eps_decay_steps=200,
                       progress=False)
    steps = 2 * cfg.actor_batch  # two batches: the second's priorities complete the first's open windows
    single = collected_in_one_process(cfg, steps)
    actor = Actor(cfg, actor_id=0, num_actors=1)
    actor.reset(cfg.seed, weights_of(single.agent, syncs=0))
    memory = FrameStreams(1, cfg.buffer_size, (4, 84, 84), cfg.num_envs, n_step=cfg.n_step, gamma=cfg.gamma)
    per, unscored = PrioritizedSampler(memory.num_slots, cfg.per_alpha), deque()  # type: ignore[var-annotated]
    shipped = []
    for k in range(2):
        shipment = actor.collect(step=k * cfg.actor_batch * cfg.num_envs)
        assert shipment.transitions is None and shipment.frames is not None
        assert shipment.frames.new.shape == (cfg.actor_batch, cfg.num_envs, 84, 84)  # frames, never stacks
        store_frames(memory, per, unscored, shipment)
        frames = shipment.steps + len(shipment.frames.first)  # one per step, plus each new episode's first
        shipped.append((shipment.nbytes() - frames * 84 * 84) / shipment.steps)
    assert max(shipped) <= 32  # bytes per transition beside its frame: action, reward, flags, priority
    assert FrameStreams(8, 1_000_000, (4, 84, 84)).nbytes() / 1_000_000 <= 7_400  # 8 actors' (lazily allocated)
    slots = np.arange(memory.num_slots)
    ok = single.memory.valid_slots(slots)
    assert ok.sum() > 100 and (memory.valid_slots(slots) == ok).all()
    got, want = memory.batch_slots(slots[ok]), single.memory.batch_slots(slots[ok])
    for name, x, y in zip(got._fields, got, want, strict=True):
        assert (x is None and y is None) or torch.equal(x, y), name
    assert (want.discounts == 0).any() and (want.discounts > 0.98).any()  # lives lost, truncations in windows
    scored = np.flatnonzero(per.tree.get(slots) > 0)
    assert len(scored) == (steps - (cfg.n_step - 1)) * cfg.num_envs  # the last n − 1 steps wait at priority 0
    td = single.agent.learner.priorities(single.memory.batch_slots(scored)).numpy()
    np.testing.assert_allclose(per.tree.get(scored), (np.abs(td.astype(np.float64)) + per.eps) ** per.alpha,
                               rtol=1e-6)
    single.close()
    actor.close()


@pytest.mark.slow
def test_the_cartpole_preset_solves_with_two_actors(local_ray: Any, tmp_path: Path) -> None:
    agent = deepq.train(deepq.preset("cartpole", seed=0, num_actors=2, run_dir=str(tmp_path / "r"), progress=False))
    assert agent.final_evaluation.mean >= 475  # type: ignore[attr-defined]


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
    assert {float(r["episode_return"]) for r in episodes} <= {-1.0, 0.0, 1.0}
    assert agent.final_evaluation.seats is not None  # type: ignore[attr-defined]
