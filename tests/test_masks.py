"""Action masks of single-agent Gymnasium envs (deepq/envs/masks.py): Gymnasium's info["action_mask"] (Taxi-v4), a
Dict observation {"observation": o, "action_mask": m} and sb3-contrib's `action_masks()` method all reach the vector
env as (N, A) bools; exploration, replay, targets, PQN's returns, evaluation and Agent.act choose and bootstrap among
legal actions only, and an env that leaves an agent no legal action is one EnvError line naming where.

Real Gymnasium envs throughout: Taxi-v4, and small corridors defined here that record every illegal action they get.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from mask_envs import (  # noqa: F401 (_fresh_records: the autouse fixture)
    ILLEGAL,
    LENGTH,
    Corridor,
    DictCellCorridor,
    DictCorridor,
    FloatMaskCorridor,
    MethodCorridor,
    _fresh_records,
    corridor_mask,
)
from torch import nn

import deepq
from deepq.core.frame_replay import FrameReplay
from deepq.core.losses import c51_loss, td_target
from deepq.core.replay import Batch, ReplayMemory
from deepq.envs.base import episode_seed, obs_converter
from deepq.envs.gym import GymVecEnv, make_env
from deepq.training.pqn import Rollout

# ---- targets, returns and replays with the legal actions of s' ------------------------------------------------

NEXT_Q = torch.tensor([[5.0, 1.0, 3.0], [2.0, 8.0, 4.0], [7.0, 7.0, 7.0]])  # (B, A) Q_target(s', ·)
NEXT_LEGAL = torch.tensor([[False, True, True], [True, False, True], [False, False, False]])


def test_the_td_target_maxes_over_the_legal_actions_of_s_prime_and_bootstraps_from_0_where_there_are_none() -> None:
    """γ = 0.5, r = 1: row 0 max over {1, 2} = 3 (not 5), row 1 over {0, 2} = 4 (not 8), row 2 has no legal
    action and a nonzero discount: 1 + 0.5 · 0 (not 7, not -inf, not NaN)."""
    r, d = torch.ones(3), torch.full((3,), 0.5)
    assert td_target(r, d, NEXT_Q, next_legal=NEXT_LEGAL).tolist() == [2.5, 3.0, 1.0]
    assert td_target(r, d, NEXT_Q).tolist() == [3.5, 5.0, 4.5]  # unmasked, for contrast


def test_double_dqn_takes_the_online_argmax_among_the_legal_actions() -> None:
    """Online Q(s', ·) prefers an illegal action in both rows (0, then 1); among the legal ones it picks 1 (row 0)
    and 0 (row 1), evaluated by the target: 1 + 0.5 · 1 and 1 + 0.5 · 2; row 2 has none: 1 + 0.5 · 0."""
    online = torch.tensor([[9.0, 2.0, 1.0], [9.0, 9.5, 0.0], [0.0, 0.0, 9.0]])
    r, d = torch.ones(3), torch.full((3,), 0.5)
    assert td_target(r, d, NEXT_Q, online, NEXT_LEGAL).tolist() == [1.5, 2.0, 1.0]
    assert td_target(r, d, NEXT_Q, online).tolist() == [3.5, 5.0, 4.5]


class TableDistributions(nn.Module):
    """A C51 network by table: obs [[i]] gets the distributions probs[i] (A, atoms) over `support`."""

    def __init__(self, probs: list[list[list[float]]], support: list[float]) -> None:
        super().__init__()
        self.probs = torch.tensor(probs)  # (S, A, atoms)
        self.support = torch.tensor(support)  # (atoms,)
        self.head = nn.Module()
        self.head.register_buffer("support", self.support)  # where c51_loss reads it

    def log_probs(self, obs: torch.Tensor) -> torch.Tensor:
        return self.probs[obs[:, 0].long()].log()  # (B, A, atoms)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (self.probs[obs[:, 0].long()] * self.support).sum(2)  # (B, A)


def test_c51_chooses_a_star_among_the_legal_actions_of_s_prime() -> None:
    """Support (0, 1, 2), r = 1, γ = 0.5, a taken = 1 with predicted p = (.2, .3, .5); action 0 is illegal in s'.
    Target net on s': Z(a0) = 2 (best, illegal), Z(a1) = 0, Z(a2) = 1, so a* = 2 and 1 + .5 · 1 = 1.5 splits
    evenly between atoms 1 and 2: loss −(.5 log .3 + .5 log .5). Double: the online net rates a0 and a1 at 2, a2
    at 0: a* = 1, 1 + .5 · 0 = 1 lands on atom 1: loss −log .3. Unmasked, both would pick a0: 1 + 1 = 2, −log .5."""
    s_row = [[1 / 3] * 3, [0.2, 0.3, 0.5], [1 / 3] * 3]
    target = TableDistributions([s_row, [[0, 0, 1], [1, 0, 0], [0, 1, 0]]], [0.0, 1.0, 2.0])
    online = TableDistributions([s_row, [[0, 0, 1], [0, 0, 1], [1, 0, 0]]], [0.0, 1.0, 2.0])

    def batch(legal: list[bool] | None) -> Batch:
        return Batch(torch.tensor([[0.0]]), torch.tensor([1]), torch.tensor([1.0]), torch.tensor([[1.0]]),
                     torch.tensor([0.0]), torch.tensor([0.5]), None if legal is None else torch.tensor([legal]))

    masked = [False, True, True]
    expected = {(False, True): -(0.5 * np.log(0.3) + 0.5 * np.log(0.5)), (True, True): -np.log(0.3),
                (False, False): -np.log(0.5), (True, False): -np.log(0.5)}
    for (double, with_mask), want in expected.items():
        out = c51_loss(online, target, batch(masked if with_mask else None), double=double)
        assert out.per_sample.item() == pytest.approx(want, rel=1e-6), (double, with_mask)


class _Shape:
    """What Rollout reads of a VecEnv: sizes and dtype."""

    def __init__(self, n: int) -> None:
        self.num_envs, self.obs_shape, self.obs_dtype, self.n_actions = n, (1,), np.float32, 2


def _q_values(obs: np.ndarray) -> np.ndarray:
    return np.concatenate([obs, 2 * obs], axis=1)  # Q(s) = (s, 2s), (B, 2)


def test_pqn_returns_take_v_of_s_prime_over_its_legal_actions() -> None:
    """γ = λ = 0.5, Q(s) = (s, 2s). Env 0: s'0 = 3 with only action 0 legal (V = 3, not 6), then s'1 = 5 with both
    (V = 10): G1 = 1 + .5 · 10 = 6, G0 = 1 + .5 (.5 · 3 + .5 · 6) = 3.25. Env 1: a terminal step whose s' has no
    legal action (G = 2, not NaN), then s' = 4 with only action 0 legal: G = 1 + .5 · 4 = 3 (not 5)."""
    ro = Rollout(2, _Shape(2), legal=True)  # type: ignore[arg-type]
    assert ro.next_legal is not None and ro.next_legal.shape == (2, 2, 2)
    ro.obs[:, :, 0] = [[0.0, 0.0], [3.0, 0.0]]  # s_1 of env 0 is s'_0; env 1 was reset after its terminal step
    ro.final_obs[:, :, 0] = [[3.0, 9.0], [5.0, 4.0]]  # (T, N)
    ro.q[:] = _q_values(ro.obs.reshape(4, 1)).reshape(2, 2, 2)  # as acting computed them
    ro.actions[:] = 0
    ro.rewards[:] = [[1.0, 2.0], [1.0, 1.0]]
    ro.terminated[:] = [[False, True], [False, False]]
    ro.ended[:] = [[False, True], [False, False]]
    ro.next_legal[:] = [[[True, False], [False, False]], [[True, True], [True, False]]]
    g = ro.returns(_q_values, torch.device("cpu"), gamma=0.5, lam=0.5)
    assert g.tolist() == [3.25, 2.0, 6.0, 3.0]  # step-major: (t0 env0, t0 env1, t1 env0, t1 env1)


def test_replay_memory_returns_the_mask_of_the_n_step_windows_last_s_prime() -> None:
    """n = 2, γ = 0.5, three steps of one env (the third terminal): the window from step 0 ends at s'1, so its
    mask is s'1's (not s'0's); from step 1 it ends at the terminal s'2 (no legal action, discount 0)."""
    memory = ReplayMemory(8, (1,), n_step=2, gamma=0.5, legal_actions=3)
    assert memory.next_legal is not None and memory.next_legal.shape == (8, 3) and memory.next_legal.dtype == bool
    masks = [[True, False, False], [False, True, True], [False, False, False]]
    for t, (reward, mask) in enumerate(zip([1.0, 2.0, 4.0], masks, strict=True)):
        memory.add(np.array([[t]], np.float32), np.array([0]), np.array([reward], np.float32),
                   np.array([[t + 1]], np.float32), np.array([t == 2]), next_legal=np.array([mask]))
    b = memory.batch_slots(np.array([0, 1, 2]))
    assert b.next_legal is not None
    assert b.next_legal.tolist() == [masks[1], masks[2], masks[2]]
    assert b.rewards.tolist() == [2.0, 4.0, 4.0] and b.next_obs[:, 0].tolist() == [2.0, 3.0, 3.0]
    assert b.discounts.tolist() == [0.25, 0.0, 0.0]
    with pytest.raises(ValueError, match="pass next_legal"):
        memory.add(np.zeros((1, 1), np.float32), np.array([0]), np.zeros(1, np.float32), np.zeros((1, 1), np.float32),
                   np.array([False]))


def _frame_mask(frames: torch.Tensor) -> torch.Tensor:
    """The mask the frame replay test stores with frame value v: (v even, v odd, v % 3 == 0)."""
    v = frames.long()
    return torch.stack([v % 2 == 0, v % 2 == 1, v % 3 == 0], dim=-1)


def _filled_frame_replay(legal_actions: int = 3, n_step: int = 2) -> FrameReplay:
    """Two envs, stacks of k = 2 one-value frames; each env's frames count up (env 1's from 100), episodes of 4 steps
    (the 4th terminal); each transition stores the mask _frame_mask gives the newest frame of its s'."""
    memory = FrameReplay(64, (2, 1), num_envs=2, obs_dtype=np.float32, n_step=n_step, gamma=0.5,
                         legal_actions=legal_actions)
    obs = np.repeat(np.array([0.0, 100.0])[:, None, None], 2, axis=1)  # (N, k, 1): [f0, f0]
    for t in range(10):
        new = obs[:, -1, 0] + 1  # (N,) the newest frame of s'
        next_obs = np.concatenate([obs[:, 1:], new[:, None, None]], axis=1)
        end = np.full(2, t % 4 == 3)
        legal = _frame_mask(torch.from_numpy(new)).numpy() if legal_actions else None
        memory.add(obs, np.array([t % 3, 2]), np.ones(2, np.float32), next_obs, end, end, legal)
        obs = np.where(end[:, None, None], np.repeat((new + 1)[:, None, None], 2, axis=1), next_obs)
    return memory


def test_frame_replay_stores_and_returns_the_mask_of_s_prime_and_round_trips_it() -> None:
    memory = _filled_frame_replay()
    assert memory.next_legal is not None and memory.next_legal.shape == (2, 32, 3)
    every = memory.batch(np.arange(len(memory)))
    assert len(memory) == 20 and every.next_legal is not None
    # each transition's mask is that of its window's last s' (n = 2: often the step after its own)
    assert torch.equal(every.next_legal, _frame_mask(every.next_obs[:, -1, 0]))
    assert not torch.equal(every.next_legal, _frame_mask(every.obs[:, -1, 0] + 1))  # not the first step's s'
    drawn = memory.sample(50, np.random.default_rng(0))
    assert drawn.next_legal is not None and torch.equal(drawn.next_legal, _frame_mask(drawn.next_obs[:, -1, 0]))

    state = memory.state_dict()
    assert state["next_legal"].shape == (2, 10, 3)
    restored = FrameReplay(64, (2, 1), num_envs=2, obs_dtype=np.float32, n_step=2, gamma=0.5, legal_actions=3)
    restored.load_state_dict(state)
    again = restored.batch(np.arange(len(restored)))
    assert again.next_legal is not None and torch.equal(again.next_legal, every.next_legal)
    with pytest.raises(ValueError, match="differ in storing action masks"):
        FrameReplay(64, (2, 1), num_envs=2, obs_dtype=np.float32).load_state_dict(state)


def test_frame_replay_refuses_an_add_without_the_mask_it_stores_and_a_mask_it_does_not() -> None:
    masked = FrameReplay(8, (2, 1), num_envs=1, obs_dtype=np.float32, legal_actions=3)
    with pytest.raises(ValueError, match="pass next_legal exactly when the memory stores masks"):
        masked.add(np.zeros((1, 2, 1), np.float32), np.zeros(1, np.int64), np.zeros(1, np.float32),
                   np.zeros((1, 2, 1), np.float32), np.zeros(1, bool), np.zeros(1, bool))
    assert len(masked) == 0
    plain = FrameReplay(8, (2, 1), num_envs=1, obs_dtype=np.float32)
    with pytest.raises(ValueError, match="pass next_legal exactly when the memory stores masks"):
        plain.add(np.zeros((1, 2, 1), np.float32), np.zeros(1, np.int64), np.zeros(1, np.float32),
                  np.zeros((1, 2, 1), np.float32), np.zeros(1, bool), np.zeros(1, bool), np.ones((1, 3), bool))
    assert len(plain) == 0


# ---- the vector env: each env's own masks -------------------------------------------------------------------------

def _taxi_twins(seed: int, n: int) -> tuple[GymVecEnv, list[gym.Env], list[dict[str, Any]]]:
    vec = GymVecEnv([lambda: make_env("Taxi-v4") for _ in range(n)], seed)
    twins = [gym.make("Taxi-v4") for _ in range(n)]
    infos = [t.reset(seed=episode_seed(seed, i, 0))[1] for i, t in enumerate(twins)]
    return vec, twins, infos


def test_taxi_masks_reach_the_vec_env_as_the_env_gives_them() -> None:
    """Three Taxi-v4 envs stepped for 450 steps (past the 200-step time limit, so every env resets twice): at each
    step `legal` and next_legal are the masks the envs' own info gives, reset with the seeds deepq uses."""
    seed, n = 11, 3
    vec, twins, infos = _taxi_twins(seed, n)
    convert = obs_converter(twins[0].observation_space)
    obs = vec.reset()
    assert vec.legal is not None and vec.legal.shape == (n, 6) and vec.legal.dtype == bool
    assert vec.legal.tolist() == [info["action_mask"].astype(bool).tolist() for info in infos]
    rng, episodes, resets = np.random.default_rng(0), [1] * n, 0
    masks_seen = set()
    for _ in range(450):
        legal = vec.legal.copy()
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in legal])
        step = vec.step(actions)
        assert step.next_legal is not None and step.next_legal.shape == (n, 6) and step.next_legal.dtype == bool
        for i, twin in enumerate(twins):
            o, _, term, trunc, info = twin.step(int(actions[i]))
            assert step.next_legal[i].tolist() == info["action_mask"].astype(bool).tolist()
            assert np.array_equal(step.final_obs[i], convert(o))
            masks_seen.add(tuple(info["action_mask"].tolist()))
            if term or trunc:
                o, info = twin.reset(seed=episode_seed(seed, i, episodes[i]))
                episodes[i], resets = episodes[i] + 1, resets + 1
            assert vec.legal[i].tolist() == info["action_mask"].astype(bool).tolist()
            assert np.array_equal(step.obs[i], convert(o))
        obs = step.obs
    assert resets >= 2 * n and len(masks_seen) > 3 and obs.shape == (n, 500)


def test_a_vec_env_rebuilt_from_its_state_has_the_masks_of_the_episodes_in_progress() -> None:
    """load_state_dict replays each env's actions since its reset: `legal` is then the mask of where each env is,
    not of its reset."""
    vec = GymVecEnv([lambda: make_env("Taxi-v4") for _ in range(4)], 5)
    vec.reset()
    rng = np.random.default_rng(1)
    for _ in range(30):
        assert vec.legal is not None
        vec.step(np.array([rng.choice(np.flatnonzero(row)) for row in vec.legal]))
    assert vec.legal is not None
    rebuilt = GymVecEnv([lambda: make_env("Taxi-v4") for _ in range(4)], 5)
    rebuilt.load_state_dict(vec.state_dict())
    assert rebuilt.legal is not None and rebuilt.legal.tolist() == vec.legal.tolist()
    fresh = GymVecEnv([lambda: make_env("Taxi-v4") for _ in range(4)], 5)
    fresh.reset()
    assert fresh.legal is not None and fresh.legal.tolist() != vec.legal.tolist()  # (the test can tell them apart)


def test_with_action_masks_false_the_vec_env_has_no_masks() -> None:
    from deepq.training.setup import env_kind

    cfg = deepq.Config(env="Taxi-v4", num_envs=2, action_masks=False)
    vec = env_kind(cfg).make_vec_env(cfg)
    assert isinstance(vec, GymVecEnv) and vec.legal is None
    vec.reset()
    assert vec.step(np.array([4, 5])).next_legal is None and vec.legal is None  # (4, 5: illegal in most states)
    masked = env_kind(cfg.replace(action_masks=True)).make_vec_env(cfg.replace(action_masks=True))
    assert masked.legal is not None and masked.legal.shape == (2, 6)


@pytest.mark.parametrize(("factory", "shape"), [(DictCorridor, (3,)), (FloatMaskCorridor, (3,)),
                                               (DictCellCorridor, (LENGTH,)), (MethodCorridor, (LENGTH,))],
                         ids=["dict-observation", "dict-float-mask", "dict-discrete-observation",
                              "action_masks-method"])
def test_a_corridors_masks_reach_the_vec_env_with_the_bare_observation(factory: Callable[[], Corridor],
                                                                       shape: tuple[int, ...]) -> None:
    """The network sees the Dict's "observation" entry (or the one-hot cell); `legal` and next_legal are the masks of
    each env's own cell, through 20 steps of the last legal action (several episodes end: resets with deepq's
    seeds)."""
    seed, n = 4, 3
    vec = GymVecEnv([lambda: make_env(factory) for _ in range(n)], seed)
    assert vec.obs_shape == shape and vec.obs_dtype == np.float32 and vec.n_actions == 4
    twins = [factory() for _ in range(n)]
    for i, t in enumerate(twins):
        t.reset(seed=episode_seed(seed, i, 0))
    assert vec.reset().shape == (n, *shape)
    episodes = [1] * n
    for _ in range(20):
        assert vec.legal is not None
        assert vec.legal.tolist() == [corridor_mask(t.cell).astype(bool).tolist() for t in twins]
        actions = np.array([int(np.flatnonzero(row)[-1]) for row in vec.legal])  # the last legal action
        step = vec.step(actions)
        assert step.next_legal is not None
        for i, t in enumerate(twins):
            o, _, term, trunc, _ = t.step(int(actions[i]))
            assert step.next_legal[i].tolist() == corridor_mask(t.cell).astype(bool).tolist()
            bare = o["observation"] if isinstance(o, dict) else o
            bare = np.eye(LENGTH, dtype=np.float32)[bare] if shape == (LENGTH,) else bare
            assert np.array_equal(step.final_obs[i], bare) and step.ended[i] == (term or trunc)
            if term or trunc:
                t.reset(seed=episode_seed(seed, i, episodes[i]))
                episodes[i] += 1
    assert min(episodes) >= 3 and ILLEGAL == []
