"""ReplayMemory: circular indexing, sampling, and state round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepq.core.replay import Batch, ReplayMemory


def transitions(start: int, n: int, obs_dim: int = 2) -> tuple[np.ndarray, ...]:
    """n transitions numbered start..start+n-1: every field encodes the number, so slots can be read back."""
    k = np.arange(start, start + n)
    obs = np.repeat(k[:, None], obs_dim, axis=1).astype(np.float32)  # (n, obs_dim)
    return obs, k % 3, k.astype(np.float32), obs + 0.5, (k % 2).astype(np.float32)


def test_empty_memory() -> None:
    mem = ReplayMemory(4, (2,))
    assert (len(mem), mem.size, mem.pos, mem.capacity) == (0, 0, 0, 4)


def test_add_fills_slots_in_order() -> None:
    mem = ReplayMemory(5, (2,))
    mem.add(*transitions(0, 1))
    mem.add(*transitions(1, 2))
    assert (len(mem), mem.pos) == (3, 3)
    np.testing.assert_array_equal(mem.rewards, [0, 1, 2, 0, 0])
    np.testing.assert_array_equal(mem.obs[:3], [[0, 0], [1, 1], [2, 2]])
    np.testing.assert_array_equal(mem.next_obs[:3], [[0.5, 0.5], [1.5, 1.5], [2.5, 2.5]])
    np.testing.assert_array_equal(mem.actions[:3], [0, 1, 2])


def test_single_adds_wrap_and_overwrite_oldest() -> None:
    mem = ReplayMemory(4, (2,))
    for i in range(4 + 2):  # capacity + 2 single adds
        mem.add(*transitions(i, 1))
    # transitions 4 and 5 overwrote slots 0 and 1 (the oldest); slots 2, 3 keep 2, 3
    assert (len(mem), mem.pos) == (4, 2)
    np.testing.assert_array_equal(mem.rewards, [4, 5, 2, 3])
    np.testing.assert_array_equal(mem.obs[:, 0], [4, 5, 2, 3])
    np.testing.assert_array_equal(mem.actions, [4 % 3, 5 % 3, 2, 0])
    np.testing.assert_array_equal(mem.terminated, [0, 1, 0, 1])


def test_batched_add_straddling_the_end() -> None:
    mem = ReplayMemory(5, (2,))
    mem.add(*transitions(0, 3))  # slots 0, 1, 2; pos 3
    mem.add(*transitions(3, 4))  # 3, 4 go to slots 3, 4; 5, 6 wrap to slots 0, 1
    assert (len(mem), mem.pos) == (5, 2)
    np.testing.assert_array_equal(mem.rewards, [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(mem.obs[:, 1], [5, 6, 2, 3, 4])
    np.testing.assert_array_equal(mem.next_obs[:, 0], [5.5, 6.5, 2.5, 3.5, 4.5])
    np.testing.assert_array_equal(mem.actions, [2, 0, 2, 0, 1])
    np.testing.assert_array_equal(mem.terminated, [1, 0, 0, 1, 0])
    mem.add(*transitions(7, 3))  # slots 2, 3, 4; pos back to 0
    assert (len(mem), mem.pos) == (5, 0)
    np.testing.assert_array_equal(mem.rewards, [5, 6, 7, 8, 9])


def test_batched_add_ending_exactly_at_capacity() -> None:
    mem = ReplayMemory(4, (2,))
    mem.add(*transitions(0, 4))
    assert (len(mem), mem.pos) == (4, 0)
    np.testing.assert_array_equal(mem.rewards, [0, 1, 2, 3])


def test_sample_shapes_dtypes_and_only_filled_slots() -> None:
    mem = ReplayMemory(100, (3,))
    mem.add(*transitions(1, 7, obs_dim=3))  # rewards 1..7 in slots 0..6; slots 7.. hold zeros
    batch = mem.sample(256, np.random.default_rng(0))
    assert isinstance(batch, Batch)
    assert batch.next_legal is None  # legal-action masks are stored for two-player games only
    assert all(isinstance(x, torch.Tensor) for x in batch[:-1])
    assert batch.obs.shape == (256, 3) and batch.next_obs.shape == (256, 3)
    assert batch.actions.shape == batch.rewards.shape == batch.terminated.shape == (256,)
    assert batch.obs.dtype == torch.float32 and batch.next_obs.dtype == torch.float32
    assert batch.actions.dtype == torch.int64
    assert batch.rewards.dtype == torch.float32 and batch.terminated.dtype == torch.float32
    # a zero reward would mean an unfilled slot (index >= size) was drawn
    assert set(batch.rewards.tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0}
    # each row is one transition: fields of a row agree with each other
    torch.testing.assert_close(batch.obs[:, 0], batch.rewards)
    torch.testing.assert_close(batch.next_obs[:, 2], batch.rewards + 0.5)
    torch.testing.assert_close(batch.actions, batch.rewards.long() % 3)


def test_terminated_is_stored_separately_from_the_rest() -> None:
    mem = ReplayMemory(3, (1,))
    obs = np.zeros((3, 1), np.float32)
    # same obs, action, reward and next obs; only the terminated flag differs
    mem.add(obs, np.zeros(3, np.int64), np.ones(3, np.float32), obs, np.array([True, False, True]))
    np.testing.assert_array_equal(mem.terminated, [1.0, 0.0, 1.0])
    batch = mem.batch_slots(np.array([0, 1, 2]))
    torch.testing.assert_close(batch.terminated, torch.tensor([1.0, 0.0, 1.0]))


@pytest.mark.parametrize("adds", [3, 9])  # partly filled, and wrapped around
def test_state_dict_round_trip(adds: int) -> None:
    mem = ReplayMemory(6, (2,))
    for i in range(adds):
        mem.add(*transitions(i, 1))
    state = mem.state_dict()
    assert all(isinstance(state[k], torch.Tensor) for k in ("obs", "next_obs", "actions", "rewards", "terminated"))
    copy = ReplayMemory(6, (2,))
    copy.load_state_dict(state)
    assert (copy.pos, copy.size) == (mem.pos, mem.size)
    for k in ("obs", "next_obs", "actions", "rewards", "terminated"):
        np.testing.assert_array_equal(getattr(copy, k), getattr(mem, k))
    a = mem.sample(32, np.random.default_rng(7))
    b = copy.sample(32, np.random.default_rng(7))
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    # and both keep evolving the same way
    mem.add(*transitions(100, 2))
    copy.add(*transitions(100, 2))
    np.testing.assert_array_equal(copy.rewards, mem.rewards)
    assert (copy.pos, copy.size) == (mem.pos, mem.size)


def test_load_state_dict_rejects_other_capacity() -> None:
    mem = ReplayMemory(6, (2,))
    mem.add(*transitions(0, 2))
    with pytest.raises(ValueError, match="capacity"):
        ReplayMemory(5, (2,)).load_state_dict(mem.state_dict())


# ---- n-step returns ---------------------------------------------------------------------------
def episode_memory(**kw: object) -> ReplayMemory:
    """7 transitions of one env, rewards 1, 2, 4, ..., 64; obs = next_obs - 0.5 = transition number.
    t2 is terminal; t4 is a time-limit truncation (ended, not terminated); t6 is the newest."""
    mem = ReplayMemory(16, (1,), n_step=3, gamma=0.5, **kw)  # type: ignore[arg-type]
    for i in range(7):
        o = np.array([[float(i)]], np.float32)
        mem.add(o, np.array([i]), np.array([2.0 ** i], np.float32), o + 0.5, np.array([i == 2]),
                np.array([i in (2, 4)]))
    return mem


def test_n_step_returns_stop_at_terminals_truncations_and_the_newest_transition() -> None:
    b = episode_memory().batch_slots(np.arange(7))
    # t0: 1 + .5*2 + .25*4 = 3, terminal at t2 -> no bootstrap;   t1: 2 + .5*4 = 4;   t2: 4
    # t3: 8 + .5*16 = 16, cut by the truncation at t4 -> bootstrap from t4's true final obs with .5^2
    # t4: 16 (one step, truncation) -> .5;   t5: 32 + .5*64 = 64, cut by the newest (t6) -> .25;   t6: 64 -> .5
    torch.testing.assert_close(b.rewards, torch.tensor([3.0, 4.0, 4.0, 16.0, 16.0, 64.0, 64.0]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.0, 0.0, 0.0, 0.25, 0.5, 0.25, 0.5]))
    torch.testing.assert_close(b.terminated, torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(b.next_obs[:, 0], torch.tensor([2.5, 2.5, 2.5, 4.5, 4.5, 6.5, 6.5]))
    torch.testing.assert_close(b.obs[:, 0], torch.arange(7.0))  # s and a stay the window's first
    torch.testing.assert_close(b.actions, torch.arange(7))


def test_n_step_follows_each_vector_env_and_the_circular_wrap() -> None:
    mem = ReplayMemory(6, (1,), num_envs=2, n_step=2, gamma=0.5)  # 3 steps of 2 envs fill it
    for step in range(5):  # steps 3, 4 overwrite rows 0-3; env e's reward is 10 * e + step
        r = np.array([step, 10 + step], np.float32)
        o = np.array([[step], [10 + step]], np.float32)
        mem.add(o, np.zeros(2, np.int64), r, o + 0.5, np.zeros(2, bool), np.zeros(2, bool))
    # rows now: 0,1 = step 3; 2,3 = step 4; 4,5 = step 2 (the oldest)
    b = mem.batch_slots(np.array([4, 5, 0, 1, 2]))
    # step 2 -> step 3 wraps from row 4 to row 0: 2 + .5 * 3 = 3.5; env 1: 12 + .5 * 13 = 18.5
    torch.testing.assert_close(b.rewards, torch.tensor([3.5, 18.5, 3.0 + 0.5 * 4.0, 13.0 + 0.5 * 14.0, 4.0]))
    torch.testing.assert_close(b.next_obs[:, 0], torch.tensor([3.5, 13.5, 4.5, 14.5, 4.5]))
    torch.testing.assert_close(b.discounts, torch.tensor([0.25, 0.25, 0.25, 0.25, 0.5]))


def test_one_step_discounts_are_gamma_or_zero() -> None:
    mem = ReplayMemory(4, (1,), gamma=0.9)
    mem.add(np.zeros((2, 1), np.float32), np.zeros(2, np.int64), np.ones(2, np.float32), np.zeros((2, 1), np.float32),
            np.array([False, True]))
    torch.testing.assert_close(mem.batch_slots(np.array([0, 1])).discounts, torch.tensor([0.9, 0.0]))
