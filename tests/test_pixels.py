"""Learning from pixels end to end: networks, MinAtar and Atari envs in the loop, frame histories,
reward clipping and episodic life. Frame-stack reconstruction itself is tested in test_frame_replay.py,
the Atari wrappers in test_atari.py."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import deepq
from deepq.components import network_config
from deepq.core.frame_replay import FrameReplay
from deepq.core.networks import MLP, NatureCNN, SmallCNN, build_network, resolve_arch
from deepq.core.replay import ReplayMemory
from deepq.envs.gym import make_env
from deepq.envs.kinds import make_vec_env, resolve
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path, make_replay

FAST = dict(progress=False, eval_interval=0, eval_episodes=1, checkpoint_interval=0, learning_starts=64, batch_size=8,
            buffer_size=2_000, train_freq=4, eps_decay_steps=200)


# ---- networks -------------------------------------------------------------------------------
def build(obs_shape: tuple[int, ...], n_actions: int, cfg: deepq.Config) -> torch.nn.Module:
    """The built-in network cfg gets for a single-agent env: cfg.arch resolved, then built."""
    return build_network(obs_shape, n_actions, network_config(cfg, resolve_arch(obs_shape, cfg.arch)))


def test_default_network_follows_the_observation_shape() -> None:
    cfg = deepq.Config()
    assert resolve_arch((4,), cfg.arch) == "mlp" and resolve_arch((3, 4), cfg.arch) == "mlp"
    assert resolve_arch((4, 84, 84), cfg.arch) == "nature_cnn"
    assert resolve_arch((4, 10, 10), cfg.arch) == "small_cnn"
    assert isinstance(build((4, 84, 84), 6, cfg), NatureCNN)
    assert isinstance(build((4, 10, 10), 3, cfg), SmallCNN)
    assert isinstance(build((4, 84, 84), 6, cfg.replace(arch="mlp")), MLP)
    with pytest.raises(deepq.ConfigError, match="small_cnn"):
        build((4, 10, 10), 3, cfg.replace(arch="nature_cnn"))
    with pytest.raises(deepq.ConfigError, match="image observations"):
        build((4,), 2, cfg.replace(arch="small_cnn"))


def test_nature_cnn_shapes_and_pixel_scaling() -> None:
    net = NatureCNN((4, 84, 84), 6)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == \
        [(32, (8, 8), (4, 4)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    x = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    assert net(x).shape == (5, 6)
    # uint8 pixels are scaled to [0, 1]: the same as feeding floats divided by 255
    torch.testing.assert_close(net(x), net.head(net.conv(x.float() / 255.0)))
    rgb = NatureCNN((4, 3, 84, 84), 6)  # a stack of RGB frames: k * 3 input channels
    assert rgb.conv[0].in_channels == 12 and rgb(torch.zeros(2, 4, 3, 84, 84, dtype=torch.uint8)).shape == (2, 6)


# ---- MinAtar ---------------------------------------------------------------------------------
def test_minatar_observations_are_channels_first_uint8() -> None:
    env = make_env("MinAtar/Breakout-v0")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 10, 10) and obs.dtype == np.uint8 and set(np.unique(obs)) <= {0, 1}
    assert env.observation_space.shape == (4, 10, 10)
    env.close()


@pytest.mark.parametrize("game", ["breakout", "spaceinvaders", "freeway", "asterix", "seaquest"])
def test_every_minatar_preset_runs(tmp_path: Path, game: str) -> None:
    cfg = deepq.preset(f"minatar-{game}", total_steps=120, run_dir=str(tmp_path / game), **FAST)
    agent = deepq.train(cfg)
    assert agent.n_actions == 6 and agent.obs_shape[1:] == (10, 10)  # the paper's full action set


def test_minatar_preset_trains_evaluates_and_reloads(tmp_path: Path) -> None:
    cfg = deepq.preset("minatar-breakout", total_steps=600, run_dir=str(tmp_path / "r"), **FAST)
    agent = deepq.train(cfg)
    assert isinstance(agent.online, SmallCNN)
    loaded = deepq.load(tmp_path / "r")
    obs = make_env("MinAtar/Breakout-v0").reset(seed=1)[0]
    np.testing.assert_array_equal(loaded.q_values(obs), agent.q_values(obs))
    result = deepq.evaluate(loaded, episodes=2)
    assert len(result.returns) == 2 and "raw score" in result.protocol


# ---- frame histories through the loop --------------------------------------------------------
def test_frame_stack_uses_the_frame_replay_and_resumes_exactly(tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(env="CartPole-v1", frame_stack=3, hidden_sizes=(16,), lr=1e-3,
                              checkpoint_interval=500, **{k: v for k, v in FAST.items() if k != "checkpoint_interval"})
    cfg = deepq.Config(total_steps=1_000, run_dir=str(tmp_path / "a"), **kw)
    envs = make_vec_env(cfg)
    assert envs.obs_shape == (3, 4)
    cpu, kind = torch.device("cpu"), resolve(cfg)
    assert isinstance(make_replay(cfg, envs.obs_shape, envs.obs_dtype, cpu, envs.n_actions, kind,
                                  kind.arch(cfg, envs.obs_shape)), FrameReplay)
    assert isinstance(make_replay(cfg.replace(frame_stack=1), (4,), np.float32, cpu, envs.n_actions, kind,
                                  kind.arch(cfg, (4,))), ReplayMemory)
    deepq.train(cfg)
    resumed = deepq.train(cfg.replace(total_steps=2_000), resume=tmp_path / "a")
    straight = deepq.train(deepq.Config(total_steps=2_000, run_dir=str(tmp_path / "b"), **kw))
    for a, b in zip(resumed.online.state_dict().values(), straight.online.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()


# ---- reward clipping -------------------------------------------------------------------------
class BigRewardEnv(gym.Env[np.ndarray, int]):
    """Rewards of +5 and -3; episodes of 4 steps."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        return np.full(2, self._t / 4, np.float32), (5.0 if action == 1 else -3.0), self._t >= 4, False, {}


def test_clipped_rewards_train_and_raw_rewards_are_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored: list[np.ndarray] = []
    add = ReplayMemory.add

    def spy(self: ReplayMemory, obs: Any, actions: Any, rewards: np.ndarray, *rest: Any) -> None:
        stored.append(rewards.copy())
        add(self, obs, actions, rewards, *rest)

    monkeypatch.setattr(ReplayMemory, "add", spy)
    cfg = deepq.Config(env=BigRewardEnv, total_steps=200, clip_rewards=True, run_dir=str(tmp_path / "r"),
                       hidden_sizes=(8,), **FAST)
    deepq.train(cfg)
    assert set(np.concatenate(stored).tolist()) == {1.0, -1.0}
    returns = {float(r["episode_return"]) for r in csv.DictReader((tmp_path / "r" / "metrics.csv").open())
               if r["episode_return"]}
    assert returns <= {5.0 * k - 3.0 * (4 - k) for k in range(5)} and max(abs(r) for r in returns) > 4


# ---- Atari in the loop -----------------------------------------------------------------------
def test_episodic_life_marks_a_lost_life_terminal_without_a_reset() -> None:
    cfg = deepq.preset("breakout", noop_max=0)
    envs = make_vec_env(cfg)
    obs = envs.reset()
    assert obs.shape == (1, 4, 84, 84) and obs.dtype == np.uint8 and envs.lives[0] == 5
    rng = np.random.default_rng(0)
    for _ in range(5_000):
        out = envs.step(rng.integers(envs.n_actions, size=1))
        if out.terminated[0]:
            break
    assert out.terminated[0] and not out.ended[0], "a lost life is terminal but the game goes on"
    assert envs.lives[0] == 4 and envs.episodes[0] == 1  # no reset happened
    np.testing.assert_array_equal(out.obs, out.final_obs)  # the frame history continues
    envs.close()


def test_atari_smoke_run_from_pixels(tmp_path: Path) -> None:
    cfg = deepq.preset("breakout", total_steps=300, run_dir=str(tmp_path / "r"), buffer_size=1_000,
                       max_episode_frames=2_000, **{k: v for k, v in FAST.items() if k != "buffer_size"})
    agent = deepq.train(cfg)
    assert isinstance(agent.online, NatureCNN)
    result = deepq.evaluate(agent, episodes=1, eps=0.05)
    assert "no-op starts" in result.protocol and "eps=0.05" in result.protocol
    assert result.lengths[0] <= 2_000 // 4


def test_envpool_backend_trains_and_resumes_with_the_frame_replay(tmp_path: Path) -> None:
    cfg = deepq.preset("breakout", backend="envpool", num_envs=2, total_steps=400, run_dir=str(tmp_path / "r"),
                       buffer_size=1_000, max_episode_frames=2_000, checkpoint_interval=200,
                       **{k: v for k, v in FAST.items() if k not in ("buffer_size", "checkpoint_interval")})
    deepq.train(cfg)
    agent = deepq.train(cfg.replace(total_steps=600), resume=tmp_path / "r")  # episodes restart; the replay knows
    assert safe_load(checkpoint_path(tmp_path / "r"), CHECKPOINT_FORMAT)["loop"]["step"] == 600
    assert isinstance(agent.online, NatureCNN)
