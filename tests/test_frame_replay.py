"""FrameReplay: stacks rebuilt from single frames, episode boundaries, both rings' wrap, sampling, state.

The fake envs (frame_harness.py) fill every frame with its own number, so a rebuilt stack can be read
back as a list of numbers and compared with the stack the env really showed.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
import torch
from frame_harness import FRAME, assert_same_batch, envs_for, everything, frames

from deepq.core.frame_replay import FrameReplay

# --- hand-built sequences ----------------------------------------------------------------

def test_empty_memory() -> None:
    mem = FrameReplay(10, (4, *FRAME), obs_dtype=np.int64)
    assert len(mem) == 0
    with pytest.raises(ValueError, match="no sampleable"):
        mem.sample(4, np.random.default_rng(0))


def test_first_steps_of_an_episode_pad_with_the_first_frame() -> None:
    mem = FrameReplay(10, (4, *FRAME), obs_dtype=np.uint8)
    env = envs_for(mem, dtype=np.uint8)  # frames 0, 1, 2, ...
    for _ in range(5):
        env.step()
    b = everything(mem)
    assert frames(b.obs) == [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4]]
    assert frames(b.next_obs) == [[0, 0, 0, 1], [0, 0, 1, 2], [0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]]
    assert b.actions.tolist() == [0, 1, 2, 3, 4] and b.rewards.tolist() == [0, 0.5, 1, 1.5, 2]
    assert b.terminated.tolist() == [0] * 5


def test_episode_boundary_does_not_leak_the_previous_episode() -> None:
    mem = FrameReplay(10, (4, *FRAME), obs_dtype=np.int64)
    env = envs_for(mem)
    env.step()
    env.step()
    env.step(terminated=[True], ended=[True])  # episode 1: frames 0..3; the reset frame is 4
    env.step()
    env.step()
    b = everything(mem)
    assert frames(b.obs)[2:] == [[0, 0, 1, 2], [4, 4, 4, 4], [4, 4, 4, 5]]
    assert frames(b.next_obs)[2:] == [[0, 1, 2, 3], [4, 4, 4, 5], [4, 4, 5, 6]]
    assert b.terminated.tolist() == [0, 0, 1, 0, 0]


def test_life_loss_is_terminated_but_continues_the_frame_history() -> None:
    mem = FrameReplay(10, (3, *FRAME), obs_dtype=np.int64)
    env = envs_for(mem)
    env.step()
    env.step(terminated=[True], ended=[False])  # a lost life: the game goes on from frame 2
    env.step()
    b = everything(mem)
    assert frames(b.obs) == [[0, 0, 0], [0, 0, 1], [0, 1, 2]]
    assert frames(b.next_obs) == [[0, 0, 1], [0, 1, 2], [1, 2, 3]]
    assert b.terminated.tolist() == [0, 1, 0]


def test_truncation_keeps_the_true_final_observation_as_next_obs() -> None:
    mem = FrameReplay(10, (2, *FRAME), obs_dtype=np.int64)
    env = envs_for(mem)
    env.step()
    env.step(terminated=[False], ended=[True])  # time limit: s' = [1, 2] is real, then reset to frame 3
    env.step()
    b = everything(mem)
    assert frames(b.next_obs) == [[0, 1], [1, 2], [3, 4]]
    assert frames(b.obs) == [[0, 0], [0, 1], [3, 3]]
    assert b.terminated.tolist() == [0, 0, 0]  # the target bootstraps from [1, 2]


def test_transition_ring_wraps_and_keeps_the_newest() -> None:
    mem = FrameReplay(8, (3, *FRAME), obs_dtype=np.int64)  # frame ring: 8 + 0 + 3 = 11 frames
    env = envs_for(mem)
    for _ in range(30):  # one long episode: frames 0..30, both rings wrapped twice
        env.step()
    assert len(mem) == 8 and mem.head == 30
    b = everything(mem)
    assert frames(b.obs) == [[t - 2, t - 1, t] for t in range(22, 30)]  # transitions 22..29, oldest first
    assert frames(b.next_obs) == [[t - 1, t, t + 1] for t in range(22, 30)]
    assert b.actions.tolist() == [t % 5 for t in range(22, 30)]


def test_frame_ring_wraps_at_its_own_period() -> None:
    mem = FrameReplay(128, (4, *FRAME), obs_dtype=np.int64)  # frame ring: 128 + 2 + 4 = 134 frames
    env = envs_for(mem)
    for t in range(300):
        env.step(ended=[t % 50 == 49])  # 50-step episodes: 51 frames each
    assert len(mem) == 128
    b = everything(mem)
    assert frames(b.obs) == [s for s, *_ in env.seen[0][-128:]]
    assert frames(b.next_obs) == [s for *_, s, _ in env.seen[0][-128:]]


def test_very_short_episodes_use_up_the_frame_headroom() -> None:
    mem = FrameReplay(8, (2, *FRAME), obs_dtype=np.int64)  # frame ring: 8 + 0 + 2 = 10 frames
    env = envs_for(mem)
    for _ in range(20):
        env.step(ended=[True])  # 1-step episodes: 2 frames per transition, so only 5 fit
    assert len(mem) == 5
    b = everything(mem)
    assert frames(b.obs) == [[f, f] for f in range(30, 40, 2)]  # transition j shows frames 2j, 2j + 1
    assert frames(b.next_obs) == [[f, f + 1] for f in range(30, 40, 2)]
    for _ in range(8):  # longer episodes again: the memory refills to capacity
        env.step()
    assert len(mem) == 8


def test_interleaved_vector_envs_keep_separate_histories() -> None:
    mem = FrameReplay(20, (3, *FRAME), obs_dtype=np.int64, num_envs=2)  # 10 transitions per env
    env = envs_for(mem, base=100)  # env 0: frames 0, 1, ...; env 1: frames 100, 101, ...
    env.step()
    env.step(terminated=[False, True], ended=[False, True])
    env.step()
    b = everything(mem)  # env 0's transitions, then env 1's
    assert frames(b.obs) == [[0, 0, 0], [0, 0, 1], [0, 1, 2], [100, 100, 100], [100, 100, 101], [103, 103, 103]]
    assert frames(b.next_obs) == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [100, 100, 101], [100, 101, 102],
                                  [103, 103, 104]]
    assert b.terminated.tolist() == [0, 0, 0, 0, 1, 0]


def test_one_frame_observations() -> None:
    mem = FrameReplay(4, (1, *FRAME), obs_dtype=np.int64)  # MinAtar-like: no history
    env = envs_for(mem)
    for t in range(7):
        env.step(ended=[t == 2])
    b = everything(mem)
    assert frames(b.obs) == [[4], [5], [6], [7]]  # frame 3 ended episode 1, frame 4 is the reset
    assert frames(b.next_obs) == [[5], [6], [7], [8]]


def stacks(*rows: list[int]) -> np.ndarray:
    """One stack of numbered frames per env: stacks([0, 0, 1], [5, 5, 5]) is (2, 3, 2)."""
    return np.array(rows, dtype=np.int64)[:, :, None].repeat(FRAME[0], axis=2)


def add(mem: FrameReplay, obs: np.ndarray, next_obs: np.ndarray, ended: bool = False) -> None:
    n = len(obs)
    mem.add(obs, np.zeros(n, np.int64), np.zeros(n, np.float32), next_obs, np.zeros(n, bool), np.full(n, ended))


def test_rejects_a_history_not_padded_with_the_first_frame() -> None:
    mem = FrameReplay(10, (3, *FRAME), obs_dtype=np.int64)
    with pytest.raises(ValueError, match="padding_type='reset'"):  # FrameStackObservation(padding_type="zero")
        add(mem, stacks([0, 0, 7]), stacks([0, 7, 8]))
    assert len(mem) == 0  # nothing stored
    add(mem, stacks([7, 7, 7]), stacks([7, 7, 8]), ended=True)
    with pytest.raises(ValueError, match="padding_type='reset'"):  # the next add starts an episode again
        add(mem, stacks([0, 0, 9]), stacks([0, 9, 10]))
    assert len(mem) == 1


def test_rejects_a_step_that_pushes_two_frames() -> None:
    mem = FrameReplay(10, (3, *FRAME), obs_dtype=np.int64, num_envs=2)
    add(mem, stacks([0, 0, 0], [5, 5, 5]), stacks([0, 0, 1], [5, 5, 6]))
    # env 1 pressed FIRE inside the step with the env's own stacker: frames 7 and 8 both pushed
    with pytest.raises(ValueError, match=r"shifted by one frame .*; env\(s\) \[1\]"):
        add(mem, stacks([0, 0, 1], [5, 5, 6]), stacks([0, 1, 2], [6, 7, 8]))
    assert len(mem) == 2
    add(mem, stacks([0, 0, 1], [5, 5, 6]), stacks([0, 1, 2], [5, 6, 7]))  # nothing was stored by the failed add
    assert frames(everything(mem).next_obs) == [[0, 0, 1], [0, 1, 2], [5, 5, 6], [5, 6, 7]]


def test_rejects_a_reset_without_ended_and_accepts_it_after_mark_reset() -> None:
    mem = FrameReplay(10, (3, *FRAME), obs_dtype=np.int64, num_envs=2)
    add(mem, stacks([0, 0, 0], [5, 5, 5]), stacks([0, 0, 1], [5, 5, 6]))
    restarted = stacks([0, 0, 1], [9, 9, 9])  # env 1 was reset, but its last add said ended=False
    with pytest.raises(ValueError, match=r"previous add's next_obs within an episode; env\(s\) \[1\]"):
        add(mem, restarted, stacks([0, 1, 2], [9, 9, 10]))
    mem.mark_reset(np.array([1]))
    add(mem, restarted, stacks([0, 1, 2], [9, 9, 10]))
    b = everything(mem)
    assert frames(b.obs) == [[0, 0, 0], [0, 0, 1], [5, 5, 5], [9, 9, 9]]
    assert frames(b.next_obs) == [[0, 0, 1], [0, 1, 2], [5, 5, 6], [9, 9, 10]]


# --- sampling, dtypes, state ---------------------------------------------------------------

def test_sample_dtypes_shapes_and_separate_obs_tensors() -> None:
    mem = FrameReplay(100, (4, 6, 5), obs_dtype=np.uint8)
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 256, (1, 1, 6, 5), dtype=np.uint8).repeat(4, axis=1)  # (1, 4, 6, 5) at reset
    for t in range(10):
        nxt = np.concatenate([stack[:, 1:], rng.integers(0, 256, (1, 1, 6, 5), dtype=np.uint8)], axis=1)
        mem.add(stack, np.array([t]), np.array([1.0], np.float32), nxt, np.array([t == 9]), np.array([False]))
        stack = nxt
    b = mem.sample(32, rng)
    assert b.obs.shape == b.next_obs.shape == (32, 4, 6, 5)
    assert b.obs.dtype == b.next_obs.dtype == torch.uint8
    assert b.actions.dtype == torch.int64 and b.rewards.dtype == b.terminated.dtype == torch.float32
    assert b.actions.shape == b.rewards.shape == b.terminated.shape == (32,)
    assert ((b.terminated == 1) == (b.actions == 9)).all()
    np.testing.assert_array_equal(mem.batch(np.array([9])).next_obs.numpy(), stack)
    before = b.next_obs.clone()
    b.obs.zero_()  # an in-place op on obs must not change next_obs
    assert torch.equal(b.next_obs, before)


def test_sampling_is_uniform_over_all_envs_sampleable_transitions() -> None:
    mem = FrameReplay(64, (2, *FRAME), obs_dtype=np.int64, num_envs=2)  # 32 per env, frame ring 34
    env = envs_for(mem, base=1000)
    for _ in range(40):
        env.step(ended=[False, True])  # env 1 runs 1-step episodes: it keeps 17 sampleable transitions
    assert len(mem) == 32 + 17
    b = mem.sample(49_000, np.random.default_rng(1))
    counts = np.unique(b.obs[:, -1, 0].numpy(), return_counts=True)[1]  # draws per distinct transition
    assert len(counts) == 49 and abs(counts - 1000).max() < 150  # 1000 expected each, sd about 31


def test_batch_rejects_indices_outside_len() -> None:
    mem = FrameReplay(10, (2, *FRAME), obs_dtype=np.int64)
    envs_for(mem).step()
    with pytest.raises(IndexError):
        mem.batch(np.array([1]))


class Both:
    """Passes every add to several memories."""

    def __init__(self, *memories: FrameReplay) -> None:
        self.memories = memories

    def add(self, *args: Any) -> None:
        for m in self.memories:
            m.add(*args)


def test_state_dict_round_trip_reproduces_samples_and_later_adds() -> None:
    for adds in (11, 200):  # part filled (copied) and past both rings' wrap (the full frame ring is shared)
        mem = FrameReplay(60, (4, *FRAME), obs_dtype=np.int64, num_envs=3)
        env = envs_for(mem, base=1000)
        for t in range(adds):
            env.step(ended=[t % 7 == 6, t % 3 == 2, False])
        buf = io.BytesIO()
        torch.save(mem.state_dict(), buf)
        buf.seek(0)
        copy = FrameReplay(60, (4, *FRAME), obs_dtype=np.int64, num_envs=3)
        copy.load_state_dict(torch.load(buf, weights_only=True))
        assert len(copy) == len(mem) > 0
        assert_same_batch(mem.sample(64, np.random.default_rng(3)), copy.sample(64, np.random.default_rng(3)))
        env.memory = Both(mem, copy)  # the same continuation into both (an episode starts at the first add)
        for t in range(25):
            env.step(ended=[t % 4 == 3, False, t % 2 == 1])
        assert_same_batch(everything(mem), everything(copy))
    with pytest.raises(ValueError, match="capacity"):
        FrameReplay(30, (4, *FRAME), obs_dtype=np.int64, num_envs=3).load_state_dict(mem.state_dict())


def test_nbytes_per_transition_at_one_million_atari_frames() -> None:
    mem = FrameReplay(1_000_000, (4, 84, 84))  # lazily allocated: nothing is touched
    assert 84 * 84 < mem.nbytes() / 1_000_000 <= 7400


# --- the strongest check: random episodes against a full reference ------------------------

@pytest.mark.parametrize(("k", "num_envs", "capacity", "mean_len"),
                         [(4, 1, 50, 6), (4, 3, 90, 3), (2, 2, 40, 1.5), (1, 2, 30, 4), (3, 1, 200, 40)])
def test_random_episodes_match_a_full_reference(k: int, num_envs: int, capacity: int, mean_len: float) -> None:
    rng = np.random.default_rng(k * 100 + num_envs)
    mem = FrameReplay(capacity, (k, *FRAME), obs_dtype=np.int64, num_envs=num_envs)
    env = envs_for(mem, base=100_000)
    slots = capacity // num_envs
    shrunk = 0  # adds after which lost frames kept len() below capacity
    for _ in range(6 * slots):
        ended = (rng.random(num_envs) < 1 / mean_len).tolist()
        terminated = [(e and rng.random() < 0.7) or rng.random() < 0.05 for e in ended]  # incl. life losses
        env.step(terminated, ended)
        # the reference's sampleable transitions: the last `slots` of each env whose oldest shown frame
        # is among the last frame_slots frames that env produced (frame numbers count frames produced)
        expected = []
        for i in range(num_envs):
            keep = [tr for tr in env.seen[i][-slots:] if min(tr[0]) - 100_000 * i >= env.produced[i] - mem.frame_slots]
            assert keep == env.seen[i][len(env.seen[i]) - len(keep):]  # always the newest ones
            expected += keep
        b = everything(mem)
        assert len(mem) == len(expected)
        shrunk += len(env.seen[0]) > slots and len(mem) < num_envs * slots
        assert frames(b.obs) == [tr[0] for tr in expected]
        assert b.actions.tolist() == [tr[1] for tr in expected]
        assert b.rewards.tolist() == [tr[2] for tr in expected]
        assert frames(b.next_obs) == [tr[3] for tr in expected]
        assert b.terminated.tolist() == [float(tr[4]) for tr in expected]
    assert shrunk > 0  # every case runs out of frame headroom at times


@pytest.mark.parametrize(("k", "num_envs", "capacity", "mean_len", "n"),
                         [(4, 2, 60, 5, 3), (1, 1, 30, 3, 2), (3, 3, 90, 8, 4)])
def test_n_step_windows_match_a_full_reference(k: int, num_envs: int, capacity: int, mean_len: float,
                                               n: int) -> None:
    """n-step returns: stop after a terminal or at an episode's end (truncation or game over), cut at the
    newest stored transition; s' is the window's last s'; discount gamma^m, 0 after a terminal."""
    gamma = 0.5
    rng = np.random.default_rng(n * 10 + k)
    mem = FrameReplay(capacity, (k, *FRAME), obs_dtype=np.int64, num_envs=num_envs, n_step=n, gamma=gamma)
    env = envs_for(mem, base=100_000)
    ends: list[list[bool]] = [[] for _ in range(num_envs)]
    for _ in range(4 * capacity // num_envs):
        ended = (rng.random(num_envs) < 1 / mean_len).tolist()
        terminated = [(e and rng.random() < 0.6) or rng.random() < 0.05 for e in ended]  # incl. life losses
        env.step(terminated, ended)
        for i in range(num_envs):
            ends[i].append(ended[i])
    b = everything(mem)
    expected_r, expected_next, expected_d = [], [], []
    counts = mem.head - mem.tail
    for i in range(num_envs):
        seen = env.seen[i]
        for j in range(len(seen) - int(counts[i]), len(seen)):
            total, m = 0.0, 0
            while True:
                total += gamma ** m * seen[j + m][2]
                m += 1
                last = j + m - 1
                if seen[last][4] or ends[i][last] or m == n or last == len(seen) - 1:
                    break
            expected_r.append(total)
            expected_next.append(seen[last][3])
            expected_d.append(0.0 if seen[last][4] else gamma ** m)
    torch.testing.assert_close(b.rewards, torch.tensor(expected_r, dtype=torch.float32))
    assert frames(b.next_obs) == expected_next
    torch.testing.assert_close(b.discounts, torch.tensor(expected_d, dtype=torch.float32))
