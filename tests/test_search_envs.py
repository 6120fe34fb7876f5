"""Cloneable single-agent envs for tree search, checked against plain envs replaying the same actions.

Real Gymnasium and ALE envs throughout: the reference for any state is a fresh env from make_env,
reset with the same seed and stepped through the same actions from the start of the episode.
"""

from __future__ import annotations

import gc
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import deepq
from deepq.envs.base import episode_seed, obs_converter
from deepq.envs.gym import GymVecEnv, make_env
from deepq.envs.search import ALEState, ClassicControlState, make_search_env
from deepq.errors import ConfigError

pytest.importorskip("ale_py")

SEED = 7
CLASSIC = ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"]
# Pong with a frame stack; Breakout also presses FIRE at reset and after each lost life
Case = tuple[str, dict[str, Any]]  # an env id and the Config fields it is made with
ATARI: list[Case] = [("ALE/Pong-v5", {"frame_stack": 4}), ("ALE/Breakout-v5", {"frame_stack": 4})]
CASES: list[Case] = [(spec, {}) for spec in CLASSIC] + [("CartPole-v1", {"frame_stack": 3}), *ATARI]

Trajectory = tuple[list[np.ndarray], list[float], bool]


def cfg_for(spec: str, kw: dict[str, Any]) -> deepq.Config:
    return deepq.Config(env=spec, **kw)


def play(env: Any, actions: list[int]) -> Trajectory:
    """A search env's observations and rewards after each action, until the actions or the episode end."""
    obs, rewards = [], []
    for a in actions:
        if env.is_terminal:
            break
        rewards.append(env.step(a))
        obs.append(env.observation())
    return obs, rewards, env.is_terminal


def replay(spec: str, cfg: deepq.Config, seed: int, prefix: list[int], actions: list[int]) -> Trajectory:
    """The same from a fresh plain env: reset with `seed`, play `prefix`, then record `actions`."""
    env = make_env(spec, cfg=cfg)
    convert = obs_converter(env.observation_space)
    env.reset(seed=seed)
    done = False
    for a in prefix:
        _, _, terminated, truncated, _ = env.step(a)
        done = terminated or truncated
    obs, rewards = [], []
    for a in actions:
        if done:
            break
        o, r, terminated, truncated, _ = env.step(a)
        obs.append(convert(o))
        rewards.append(float(r))
        done = terminated or truncated
    env.close()
    return obs, rewards, done


def same(a: Trajectory, b: Trajectory) -> bool:
    return (len(a[0]) == len(b[0]) and all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
            and a[1] == b[1] and a[2] == b[2])


def actions(rng: np.random.Generator, env: Any, n: int) -> list[int]:
    return [int(a) for a in rng.integers(0, env.n_actions, n)]


@pytest.mark.parametrize(("spec", "kw"), CASES)
def test_clone_continues_exactly_after_divergent_steps(spec: str, kw: dict[str, Any]) -> None:
    cfg, rng = cfg_for(spec, kw), np.random.default_rng(0)
    env = make_search_env(spec, cfg)
    assert isinstance(env, ALEState if spec.startswith("ALE/") else ClassicControlState)
    env.reset(SEED)
    prefix = [0, 1] * 4 if spec.startswith("CartPole") else actions(rng, env, 40)  # CartPole: stay up a while
    play(env, prefix)
    assert not env.is_terminal
    clone = env.clone()
    ahead, other = actions(rng, env, 60), actions(rng, env, 60)
    diverged = play(env, other)  # the original moves on first: the clone must not see any of it
    assert same(play(clone, ahead), replay(spec, cfg, SEED, prefix, ahead))
    # ...and the original, whose state was saved when the clone took the env, goes on from where it was
    more = actions(rng, env, 20)
    assert same(play(env, more), replay(spec, cfg, SEED, prefix + other[:len(diverged[1])], more))


@pytest.mark.parametrize(("spec", "kw"), [("CartPole-v1", {}), ATARI[1]])
def test_clones_are_independent_when_interleaved(spec: str, kw: dict[str, Any]) -> None:
    cfg, rng = cfg_for(spec, kw), np.random.default_rng(1)
    root = make_search_env(spec, cfg)
    root.reset(SEED)
    prefix = [0, 1, 0, 1]
    play(root, prefix)
    branches = [root.clone(), root.clone(), root]
    plans = [actions(rng, root, 30) for _ in branches]
    done: list[list[int]] = [[], [], []]
    for t in range(30):  # each step switches the env to another state
        for i, (b, plan) in enumerate(zip(branches, plans, strict=True)):
            if not b.is_terminal:
                b.step(plan[t])
                done[i].append(plan[t])
        if t == 10:  # a clone of a state the env does not hold shares its snapshot
            branches.append(branches[0].clone())
            plans.append(plans[0][:11] + actions(rng, root, 19))
            done.append(list(done[0]))
    for b, played in zip(branches, done, strict=True):
        reference = replay(spec, cfg, SEED, prefix, played)
        assert np.array_equal(b.observation(), reference[0][-1]) and b.is_terminal == reference[2]


def test_truncation_counter_is_restored() -> None:
    """MountainCar ends by its 200-step time limit: a clone at step 150 must end 50 steps later, as the original."""
    env = make_search_env("MountainCar-v0")
    env.reset(SEED)
    play(env, [1] * 150)
    clone = env.clone()
    play(env, [0] * 10)
    obs, _, done = play(clone, [2] * 60)
    assert done and len(obs) == 50 and clone.is_terminal and not env.is_terminal


def test_atari_time_limit_in_the_emulator_state_is_restored() -> None:
    """ALE counts frames for max_episode_frames in its state: a clone truncates where a replay does.

    After reset (one FIRE frame) and 99 steps of 4 frames the ALE is at frame 397, so the 100th step
    ends on its first frame, max-pooled with the previous step's last frame: AtariFrames' `_last`.
    """
    spec, cfg = "ALE/Pong-v5", deepq.Config(env="ALE/Pong-v5", max_episode_frames=398, noop_max=0)
    env, rng = make_search_env(spec, cfg), np.random.default_rng(2)
    env.reset(SEED)
    prefix = actions(rng, env, 99)
    play(env, prefix)
    clone = env.clone()
    assert play(env, [3])[2]  # the original ends first
    trajectory = play(clone, [2, 2])
    assert trajectory[2] and len(trajectory[0]) == 1 and not clone.legal_mask().any()
    assert same(trajectory, replay(spec, cfg, SEED, prefix, [2, 2]))


def test_a_dropped_state_is_not_needed_by_its_clones() -> None:
    env = make_search_env("Acrobot-v1")
    env.reset(SEED)
    play(env, [0] * 5)
    clone = env.clone()
    del env  # the env held the dropped state: the clone restores its own without saving it
    gc.collect()
    assert same(play(clone, [2] * 10), replay("Acrobot-v1", deepq.Config(), SEED, [0] * 5, [2] * 10))


def test_legal_mask_and_terminal_after_the_end() -> None:
    env = ClassicControlState("CartPole-v1")
    env.reset(SEED)
    assert env.legal_mask().dtype == bool and env.legal_mask().shape == (2,) and env.legal_mask().all()
    assert env.to_move == 0 and env.two_player is False
    while not env.is_terminal:
        env.step(0)
    clone = env.clone()
    for s in (env, clone):
        assert s.is_terminal and s.legal_mask().shape == (2,) and not s.legal_mask().any()
        with pytest.raises(ValueError, match="ended"):
            s.step(0)
    clone.reset(SEED + 1)
    assert clone.legal_mask().all() and env.is_terminal  # resetting a clone leaves the original ended
    with pytest.raises(ValueError, match=r"not in 0 \.\. 1"):
        clone.step(2)


@pytest.mark.parametrize(("spec", "kw"), CASES)
def test_observation_is_what_vecenv_gives(spec: str, kw: dict[str, Any]) -> None:
    cfg = cfg_for(spec, kw)
    vec = GymVecEnv([lambda: make_env(spec, cfg=cfg)], seed=SEED)
    first = vec.reset()[0]
    env = make_search_env(spec, cfg)
    env.reset(episode_seed(SEED, 0, 0))  # GymVecEnv's seed for env 0's first episode: the very same state
    assert env.n_actions == vec.n_actions
    for a in [0, 1, 1, 0, 1]:
        obs = env.observation()
        assert obs.dtype == first.dtype == vec.obs_dtype and obs.shape == first.shape == vec.obs_shape
        assert np.array_equal(obs, first)
        step = vec.step(np.array([a]))
        assert env.step(a) == step.rewards[0]
        first = step.final_obs[0]
    vec.close()


@pytest.mark.parametrize("spec", ["LunarLander-v3", lambda: gym.make("CartPole-v1"), "Pendulum-v1", "NoSuchEnv-v0",
                                  "MinAtar/Breakout-v1"])
def test_other_envs_are_refused_clearly(spec: Any) -> None:
    with pytest.raises(ConfigError, match="cannot be cloned for tree search") as info:
        make_search_env(spec)
    message = str(info.value)
    assert "classic control" in message and "ALE" in message and "openspiel" in message
    if isinstance(spec, str):
        assert spec in message
    else:
        assert "factory" in message
    with pytest.raises(ConfigError, match="cannot be cloned"):
        ClassicControlState("LunarLander-v3")


def test_game_ids_give_the_game_adapters() -> None:
    pytest.importorskip("pyspiel")
    from deepq.training.setup import env_kind

    cfg = deepq.Config(env="openspiel:tic_tac_toe")
    game = env_kind(cfg).make_search_env(cfg)
    assert game.to_move == 0 and game.n_actions == 9 and game.clone().legal_mask().all()


def test_sticky_actions_are_refused() -> None:
    with pytest.raises(ConfigError, match="sticky_actions=False"):
        make_search_env("ALE/Pong-v5", deepq.Config(env="ALE/Pong-v5", sticky_actions=True))


def test_ale_state_leaves_out_the_sticky_action() -> None:
    """Why sticky actions are refused: a restored ALE state repeats whatever action the emulator ran last.

    If this starts failing, ale-py saves the previous action now and ALEState could allow sticky actions.
    """
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.25)
    env.reset(seed=3)
    ale, moves = env.unwrapped.ale, env.unwrapped._action_set  # type: ignore[attr-defined]
    for _ in range(20):
        ale.act(moves[1])  # FIRE: serve
    differs = 0
    for _ in range(40):
        for _ in range(8):
            ale.act(moves[3])  # LEFT is the previous action in the saved state
        state = ale.cloneState(include_rng=True)
        ale.act(moves[0])
        expected = ale.getRAM().copy()
        for _ in range(8):
            ale.act(moves[2])  # RIGHT is the previous action when it is restored
        ale.restoreState(state)
        ale.act(moves[0])  # sticky (p = 0.25): repeats RIGHT, not the saved state's LEFT
        differs += not np.array_equal(ale.getRAM(), expected)
    env.close()
    assert differs > 0
