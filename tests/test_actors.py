"""Ape-X actors without Ray: what an actor ships equals what the single-process collector stores for the same
seed and weights: folded n-step transitions (each replay window once), legal masks, pixels and the learner's
|TD errors| as priorities; a search actor's (s, Q_mcts) pairs; Atari frames shipped once and rebuilt by the
learner's frame-once replay. The same actors under a real local Ray are tests/test_distributed.py."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

import numpy as np
import pytest
import torch
from distributed_harness import MCTS, SMALL

import deepq
from deepq.core.nstep import Folded, NStepFolder
from deepq.core.replay import ReplayMemory
from deepq.training.actor import Actor, apex_epsilon, weights_of
from deepq.training.control import LoopState
from deepq.training.loop import make_experience
from deepq.training.setup import env_kind


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

    eps_at = deepq.training.dqn.exploration(cfg)  # type: ignore[attr-defined]
    for _ in range(steps):
        single.collect(state, eps_at)
    return single



@pytest.mark.parametrize("overrides", [dict(env="CartPole-v1", n_step=3, num_envs=2),
                                       dict(env="openspiel:tic_tac_toe", n_step=1, num_envs=2, arch="mlp"),
                                       dict(env="MinAtar/Breakout-v0", n_step=1, num_envs=1, arch="small_cnn"),
                                       dict(env="Taxi-v4", n_step=2, num_envs=2)],
                         ids=["cartpole-3step", "tictactoe", "minatar", "taxi-masked-2step"])



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
    elif cfg.env == "Taxi-v4":  # an env that masks actions: the masks of s' travel with the transitions
        assert t.next_legal is not None and not t.next_legal.all() and t.next_legal.any(axis=1).all()
        assert (t.discounts >= 0).all()
    else:
        assert t.obs.dtype == memory.obs.dtype
    from deepq.training.actor import as_batch
    expected = single.agent.learner.priorities(as_batch(t)).numpy()
    np.testing.assert_array_equal(shipment.priorities, expected)
    single.close()
    actor.close()



def test_a_search_actor_ships_the_pairs_one_process_records() -> None:
    """target="mcts": same seed, same weights, the preset's ε schedule: a search actor's (s, Q_mcts) pairs and
    episodes are those the single-process mode records in its target memory."""
    cfg = deepq.Config(**MCTS, actor_eps="schedule", total_steps=10_000)
    single = make_experience(cfg, np.random.default_rng(cfg.seed), env_kind(cfg))
    state = LoopState(ep_return=[0.0], ep_length=[0])
    got = single.collect(state, deepq.training.dqn.exploration(cfg))  # type: ignore[attr-defined]
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
    assert shipment.episodes.size == got.episodes.size == cfg.mcts_episodes
    np.testing.assert_array_equal(shipment.episodes.returns, got.episodes.returns)
    np.testing.assert_array_equal(shipment.episodes.lengths, got.episodes.lengths)
    with pytest.raises(deepq.ConfigError, match="num_actors × num_envs"):
        deepq.Config(num_actors=4, frame_stack=4, num_envs=8, buffer_size=16, batch_size=8).validate()



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
