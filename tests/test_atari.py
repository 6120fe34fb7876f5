"""Atari preprocessing (ale-py) checked against a raw ALE stepped by hand, and EnvPool against it.

Real emulators throughout: the raw ALE is the reference for max-pooling, reward sums, no-op
starts, FIRE and time limits; EnvPool must give the same pixels and VecEnv's step semantics.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from deepq.config import Config
from deepq.envs.atari import FIRE, EnvPoolVecEnv, atari_id, envpool_task, is_atari, make_atari_env
from deepq.errors import ConfigError

pytest.importorskip("ale_py")
NOOP = 0


def atari_cfg(**kw: Any) -> Config:
    return Config(**{"frame_stack": 4, **kw})


def area_resize(frame: np.ndarray) -> np.ndarray:
    """Exact area average 210x160 -> 84x84 on a common refinement (210*2 = 84*5, 160*21 = 84*40)."""
    x = np.repeat(np.repeat(frame.astype(np.float64), 2, axis=0), 21, axis=1)  # (420, 3360)
    return x.reshape(84, 5, 84, 40).mean(axis=(1, 3))


def play(env: gym.Env, actions: list[int]) -> tuple[list[np.ndarray], list[float], dict[str, Any]]:
    """Observations (after each step) and rewards until the actions run out or the episode ends."""
    obs: list[np.ndarray] = []
    rewards: list[float] = []
    info: dict[str, Any] = {}
    for a in actions:
        o, r, terminated, truncated, info = env.step(a)
        obs.append(o)
        rewards.append(float(r))
        if terminated or truncated:
            break
    return obs, rewards, info


# ale-py ------------------------------------------------------------------------------------------

def test_atari_ids() -> None:
    assert is_atari("ALE/Pong-v5") and is_atari("PongNoFrameskip-v4")
    assert not is_atari("CartPole-v1") and not is_atari("ALE/NoSuchGame-v5")
    assert atari_id("pong") == "ALE/Pong-v5"
    for name in ("space_invaders", "spaceinvaders", "SpaceInvaders", "space-invaders"):
        assert atari_id(name) == "ALE/SpaceInvaders-v5"
    assert atari_id("cartpole") is None
    assert envpool_task("ALE/SpaceInvaders-v5") == envpool_task("SpaceInvadersNoFrameskip-v4") == "SpaceInvaders-v5"


def test_unknown_ids_and_missing_packages_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="ALE/Pong-v5"):  # the close match is suggested
        make_atari_env("ALE/Pongg-v5", Config())
    with pytest.raises(ConfigError, match="not an Atari game"):
        make_atari_env("CartPole-v1", Config())
    monkeypatch.setattr("deepq.envs.atari._ale_installed", lambda: False)
    assert is_atari("ALE/Pong-v5")  # so that make_atari_env is reached and says what to install
    with pytest.raises(ConfigError, match="pip install ale-py"):
        make_atari_env("ALE/Pong-v5", Config())
    monkeypatch.undo()
    monkeypatch.setitem(sys.modules, "envpool", None)  # import envpool -> ImportError
    with pytest.raises(ConfigError, match="pip install envpool"):
        EnvPoolVecEnv("ALE/Pong-v5", 1, 0, Config())


@pytest.mark.parametrize(("grayscale", "k", "shape"), [(True, 4, (4, 84, 84)), (True, 1, (1, 84, 84)),
                                                       (False, 4, (4, 3, 84, 84)), (False, 1, (1, 3, 84, 84))])
def test_shapes_dtypes_lives_and_stack_padding(grayscale: bool, k: int, shape: tuple[int, ...]) -> None:
    env = make_atari_env("ALE/Breakout-v5", atari_cfg(grayscale=grayscale, frame_stack=k))
    assert env.observation_space.shape == shape and env.observation_space.dtype == np.uint8
    obs, info = env.reset(seed=0)
    assert obs.shape == shape and obs.dtype == np.uint8 and info["lives"] == 5
    assert all(np.array_equal(obs[i], obs[0]) for i in range(k))  # "reset" padding: [f0] * k
    assert obs[0].std() > 0  # a real picture, not a blank frame
    prev = obs
    for a in (2, 3, 2):  # RIGHT, LEFT, RIGHT: the paddle moves, so frames differ
        obs, _, _, _, info = env.step(a)
        assert obs.shape == shape and obs.dtype == np.uint8 and info["lives"] == 5
        np.testing.assert_array_equal(obs[:-1], prev[1:])  # the history shifts by one frame per step
        prev = obs
    if k > 1:
        assert not np.array_equal(obs[-1], obs[-2])
    env.close()


def test_max_pool_resize_and_raw_reward_sum_match_a_raw_ale() -> None:
    # MsPacman: sprites flicker between frames (pooling matters) and a pellet is worth 10 (no clipping)
    cfg = atari_cfg(frame_stack=1, noop_max=0, fire_reset=False)
    env = make_atari_env("ALE/MsPacman-v5", cfg)
    raw = gym.make("ALE/MsPacman-v5", frameskip=1, repeat_action_probability=0.0, obs_type="grayscale")
    obs, _ = env.reset(seed=7)
    frame, _ = raw.reset(seed=7)
    assert np.abs(obs[0] - area_resize(frame)).max() <= 0.5 + 1e-4
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 250)  # type: ignore[attr-defined]
    pooled_differs = False
    rewards = []
    for a in actions:
        obs, reward, *_ = env.step(int(a))
        frames, raw_rewards, _ = play(raw, [int(a)] * cfg.frame_skip)
        pooled = np.maximum(frames[-2], frames[-1])
        assert reward == sum(raw_rewards)
        assert np.abs(obs[0] - area_resize(pooled)).max() <= 0.5 + 1e-4  # resize rounds to nearest
        pooled_differs |= bool(np.abs(obs[0] - area_resize(frames[-1])).max() > 1)
        rewards.append(reward)
    assert pooled_differs, "the last frame alone should differ from the max of the last two somewhere"
    assert max(rewards) >= 10  # raw game score, not clipped to 1
    env.close()


def test_noop_starts_are_seeded_by_reset() -> None:
    env = make_atari_env("ALE/Pong-v5", atari_cfg(noop_max=30, fire_reset=False))
    noops = []
    for seed in range(6):
        obs, info = env.reset(seed=seed)
        again, info_again = env.reset(seed=seed)
        np.testing.assert_array_equal(obs, again)
        assert info["episode_frame_number"] == info_again["episode_frame_number"]
        noops.append(info["episode_frame_number"])  # emulator frames since the reset: the no-ops
    env.close()
    assert all(1 <= n <= 30 for n in noops) and len(set(noops)) >= 3, noops
    env = make_atari_env("ALE/Pong-v5", atari_cfg(noop_max=0, fire_reset=False))
    assert env.reset(seed=0)[1]["episode_frame_number"] == 0
    env.close()


def test_fire_reset_serves_at_reset_and_after_each_lost_life() -> None:
    """Breakout waits for FIRE: with fire_reset, never pressing it still loses every life."""
    for fire_reset in (True, False):
        env = make_atari_env("ALE/Breakout-v5", atari_cfg(frame_stack=1, fire_reset=fire_reset))
        env.reset(seed=0)
        _, rewards, info = play(env, [NOOP] * 400)
        if fire_reset:
            assert info["lives"] == 0 and len(rewards) < 400  # 5 serves, game over
        else:
            assert info["lives"] == 5 and len(rewards) == 400 and sum(rewards) == 0  # the ball never came
        env.close()


def test_fire_reset_leaves_games_without_fire_alone() -> None:
    runs = []
    for fire_reset in (True, False):
        env = make_atari_env("ALE/Freeway-v5", atari_cfg(fire_reset=fire_reset))  # actions NOOP, UP, DOWN
        obs, info = env.reset(seed=3)
        steps, _, _ = play(env, [1, 1, 2, 0, 1])
        runs.append((obs, info["episode_frame_number"], steps))
        env.close()
    (obs_a, frames_a, steps_a), (obs_b, frames_b, steps_b) = runs
    np.testing.assert_array_equal(obs_a, obs_b)
    assert frames_a == frames_b
    np.testing.assert_array_equal(np.stack(steps_a), np.stack(steps_b))


def test_sticky_actions_and_time_limit_reach_the_ale() -> None:
    for sticky, p in ((True, 0.25), (False, 0.0)):
        env = make_atari_env("ALE/Pong-v5", atari_cfg(sticky_actions=sticky))
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(p)  # type: ignore[attr-defined]
        env.close()
    env = make_atari_env("ALE/Pong-v5", atari_cfg(noop_max=0, fire_reset=False, max_episode_frames=40))
    env.reset(seed=0)
    for t in range(10):  # 40 emulator frames = 10 agent steps of 4
        _, _, terminated, truncated, info = env.step(NOOP)
        assert not terminated and truncated == (t == 9)
    assert info["episode_frame_number"] == 40
    env.close()


# EnvPool -----------------------------------------------------------------------------------------

def test_envpool_gives_the_same_pixels_and_rewards_as_ale_py() -> None:
    pytest.importorskip("envpool")
    # Deterministic starts on both sides (one no-op, no FIRE, no sticky actions) so frames can be compared
    cfg = atari_cfg(noop_max=1, fire_reset=False)
    pool = EnvPoolVecEnv("ALE/Pong-v5", 1, 0, cfg)
    env = make_atari_env("ALE/Pong-v5", cfg)
    obs, _ = env.reset(seed=0)
    pool_obs = pool.reset()
    assert pool.obs_shape == env.observation_space.shape and pool_obs.dtype == obs.dtype == np.uint8
    assert pool.n_actions == env.action_space.n  # type: ignore[attr-defined]
    np.testing.assert_array_equal(pool_obs[0], obs)
    for a in np.random.default_rng(1).integers(0, pool.n_actions, 60):
        obs, reward, *_ = env.step(int(a))
        step = pool.step(np.array([a]))
        np.testing.assert_array_equal(step.obs[0], obs)
        assert step.rewards.dtype == np.float32 and step.rewards[0] == reward
    pool.close()
    env.close()


def test_envpool_same_step_autoreset_on_time_limit() -> None:
    pytest.importorskip("envpool")
    pool = EnvPoolVecEnv("ALE/Breakout-v5", 2, 0, atari_cfg(max_episode_frames=4 * 15))  # 15 agent steps
    obs = pool.reset()
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8 and list(pool.last_lives) == [5, 5]
    for t in range(15):
        step = pool.step(np.array([2, 3]))
        assert step.truncated.all() == (t == 14) and not step.terminated.any()
        np.testing.assert_array_equal(step.ended, step.truncated)
        np.testing.assert_array_equal(step.final_obs[:, :-1], obs[:, 1:])  # s' continues the episode's history
        if t < 14:
            np.testing.assert_array_equal(step.obs, step.final_obs)
        obs = step.obs
    assert all(np.array_equal(o[i], o[0]) for o in obs for i in range(4))  # fresh episodes: [f0] * 4
    assert not np.array_equal(step.final_obs, obs)
    step = pool.step(np.array([2, 3]))  # no spurious transition: a real step from the reset observation
    assert not step.ended.any()
    np.testing.assert_array_equal(step.obs[:, :-1], obs[:, 1:])
    pool.close()


def test_envpool_lost_lives_are_terminal_with_episodic_life_and_games_end() -> None:
    pytest.importorskip("envpool")
    pool = EnvPoolVecEnv("ALE/Breakout-v5", 2, 0, atari_cfg(episodic_life=True))
    obs = pool.reset()
    lost_lives, game_over = [0, 0], [False, False]
    actions = np.array([NOOP, NOOP])
    for _ in range(600):  # EnvPool serves at reset only: the agent presses FIRE after each lost life
        lives = pool.last_lives.copy()
        step = pool.step(actions)
        for i in range(2):
            if game_over[i]:
                continue
            if step.ended[i]:
                game_over[i] = True
                assert step.terminated[i] and not step.truncated[i] and pool.last_lives[i] == 5  # the new game's
                assert all(np.array_equal(step.obs[i, j], step.obs[i, 0]) for j in range(4))
                np.testing.assert_array_equal(step.final_obs[i, :-1], obs[i, 1:])
            else:  # episodic life: a lost life is terminal, but the game goes on
                assert step.terminated[i] == (pool.last_lives[i] < lives[i])
                lost_lives[i] += int(step.terminated[i])
                np.testing.assert_array_equal(step.final_obs[i, :-1], obs[i, 1:])  # one new frame per step
        actions = np.where(step.terminated, FIRE, NOOP)
        obs = step.obs
        if all(game_over):
            break
    assert game_over == [True, True] and lost_lives == [4, 4]
    pool.close()


def test_envpool_load_state_dict_starts_fresh_episodes() -> None:
    pytest.importorskip("envpool")
    pool = EnvPoolVecEnv("ALE/Pong-v5", 2, 5, atari_cfg())
    pool.reset()
    for _ in range(20):
        step = pool.step(np.array([2, 3]))
    state = pool.state_dict()
    assert state == {"backend": "envpool", "seed": 5, "restarts": 0}
    obs = pool.load_state_dict(state)
    assert obs.shape == (2, 4, 84, 84) and pool.restarts == 1
    assert all(np.array_equal(o[i], o[0]) for o in obs for i in range(4))  # new episodes, not step 20's
    assert not np.array_equal(obs, step.obs)
    assert pool.state_dict()["restarts"] == 1
    step = pool.step(np.array([0, 0]))
    assert not step.ended.any()
    pool.close()


@pytest.mark.slow
@pytest.mark.parametrize(("game", "grayscale"), [("ALE/Breakout-v5", True), ("ALE/SpaceInvaders-v5", False),
                                                 ("ALE/MsPacman-v5", True)])
def test_envpool_matches_ale_py_over_long_play(game: str, grayscale: bool) -> None:
    """Pixel-equal up to the game's end; there EnvPool's last frame may be stale (it stops capturing)."""
    pytest.importorskip("envpool")
    cfg = atari_cfg(noop_max=1, fire_reset=False, grayscale=grayscale)
    pool = EnvPoolVecEnv(game, 1, 0, cfg)
    env = make_atari_env(game, cfg)
    np.testing.assert_array_equal(pool.reset()[0], env.reset(seed=0)[0])
    for a in np.random.default_rng(2).integers(0, pool.n_actions, 1500):
        obs, reward, terminated, truncated, _ = env.step(int(a))
        step = pool.step(np.array([a]))
        assert step.rewards[0] == reward and step.terminated[0] == terminated
        if terminated or truncated:
            break
        np.testing.assert_array_equal(step.obs[0], obs)
    pool.close()
    env.close()
