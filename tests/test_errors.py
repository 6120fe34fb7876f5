"""Bad inputs stop before training with one clear DeepQError; loading never executes code."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

import deepq
from deepq import CheckpointError, ConfigError


def tiny_config(tmp_path: Path, **kw: Any) -> deepq.Config:
    """A config that would train for a moment if the inputs were fine."""
    base: dict[str, Any] = dict(total_steps=64, learning_starts=16, batch_size=8, buffer_size=64, train_freq=4,
                                eval_interval=0, checkpoint_interval=0, run_dir=str(tmp_path / "run"),
                                progress=False, device="cpu")
    return deepq.Config(**(base | kw))


def assert_no_training(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert not (run / "agent.pt").exists()
    assert not (run / "checkpoint" / "checkpoint.pt").exists()
    assert not (run / "learning_curve.png").exists()


class DictObsEnv(gym.Env):
    observation_space = spaces.Dict({"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "flag": spaces.Discrete(2)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


class PixelEnv(gym.Env):
    observation_space = spaces.Box(0, 255, (12, 12, 3), np.uint8)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self._t = 0
        return np.zeros((12, 12, 3), np.uint8), {}

    def step(self, action: int) -> tuple[Any, float, bool, bool, dict]:
        self._t += 1
        obs = np.full((12, 12, 3), self._t % 256, np.uint8)
        return obs, float(action == 1), self._t >= 10, False, {}


# ---- train(): errors before any training ---------------------------------------------------------

def test_continuous_actions(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny_config(tmp_path, env="Pendulum-v1"))
    msg = str(err.value)
    assert "Pendulum-v1" in msg and "Discrete action space" in msg
    assert_no_training(tmp_path)


def test_unknown_env_id_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny_config(tmp_path, env="CartPol-v1"))
    msg = str(err.value)
    assert "unknown environment id 'CartPol-v1'" in msg and "Did you mean CartPole-v1" in msg
    assert_no_training(tmp_path)


def test_dict_observations(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny_config(tmp_path, env=DictObsEnv))
    msg = str(err.value)
    assert "DictObsEnv" in msg and "observation space Dict" in msg and "FlattenObservation" in msg
    assert_no_training(tmp_path)


def test_channels_last_images_need_a_transpose_or_a_network(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        deepq.train(tiny_config(tmp_path, env=PixelEnv))
    msg = str(err.value)
    assert "channels-last image observations (12, 12, 3)" in msg and "network=" in msg
    assert_no_training(tmp_path)


class TinyCNN(nn.Module):
    def __init__(self, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(obs_shape[-1], 4, kernel_size=3, stride=2)
        self.head = nn.LazyLinear(n_actions)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 3, 1, 2) / 255.0  # (B, C, H, W)
        return self.head(torch.relu(self.conv(x)).flatten(1))  # (B, A)


def test_image_observations_train_with_a_custom_network(tmp_path: Path) -> None:
    agent = deepq.train(tiny_config(tmp_path, env=PixelEnv, network=TinyCNN, total_steps=32))
    assert (tmp_path / "run" / "agent.pt").exists()
    assert agent.q_values(np.zeros((12, 12, 3), np.uint8)).shape == (3,)


def test_network_with_wrong_output_shape(tmp_path: Path) -> None:
    def bad_net(obs_shape: tuple[int, ...], n_actions: int) -> nn.Module:
        return nn.Linear(obs_shape[0], n_actions + 1)

    with pytest.raises(ConfigError) as err:
        deepq.train(tiny_config(tmp_path, env="CartPole-v1", network=bad_net))
    msg = str(err.value)
    assert "[2, 3]" in msg and "[2, 2]" in msg and "one Q value per action" in msg
    assert_no_training(tmp_path)


def test_network_factory_not_a_module(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not a torch\.nn\.Module"):
        deepq.train(tiny_config(tmp_path, network=lambda obs_shape, n_actions: "mlp"))
    assert_no_training(tmp_path)


def test_bad_config_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^gamma=1\.5"):
        deepq.train(tiny_config(tmp_path, gamma=1.5))
    assert not (tmp_path / "run").exists()


# ---- load(): every bad file is one CheckpointError ------------------------------------------------

@pytest.fixture
def agent_file(tmp_path: Path) -> Path:
    agent = deepq.Agent((4,), 2, deepq.Config(hidden_sizes=(8,), device="cpu"))
    path = tmp_path / "agent.pt"
    agent.save(path)
    return path


def test_a_saved_agent_loads(agent_file: Path) -> None:
    # the control for the tests below: the same file, intact, is fine
    agent = deepq.load(agent_file)
    assert agent.q_values(np.zeros(4, np.float32)).shape == (2,)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        deepq.load(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        deepq.load(tmp_path)  # a folder without agent.pt


def test_truncated_agent_file(agent_file: Path) -> None:
    data = agent_file.read_bytes()
    agent_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as err:
        deepq.load(agent_file)
    assert str(agent_file) in str(err.value) and "corrupt or truncated" in str(err.value)


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as err:
        deepq.load(path)
    assert str(path) in str(err.value)


def test_random_bytes_are_reported_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as err:
        deepq.load(path)
    assert "corrupt" in str(err.value)
    assert "Python objects" not in str(err.value)


def test_foreign_torch_file(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"hello": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a deepq-agent file"):
        deepq.load(path)


def test_checkpoint_is_not_an_agent_file(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    torch.save({"format": "deepq-checkpoint", "version": 1}, path)
    with pytest.raises(CheckpointError, match="found format 'deepq-checkpoint'"):
        deepq.load(path)


def test_other_format_version(agent_file: Path) -> None:
    data = torch.load(agent_file, weights_only=True)
    torch.save(data | {"version": 99}, agent_file)
    with pytest.raises(CheckpointError, match="version 99"):
        deepq.load(agent_file)


def test_counter_pickle(tmp_path: Path) -> None:
    path = tmp_path / "counter.pt"
    torch.save(collections.Counter(format=3), path)
    with pytest.raises(CheckpointError):
        deepq.load(path)


def _plant_marker(path: str) -> None:
    """What the malicious pickle runs on load: it writes a file."""
    Path(path).write_text("code ran")


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _plant_marker, (str(self.marker),)  # unpickling calls _plant_marker(marker)


@pytest.mark.parametrize("wrap", [False, True], ids=["bare", "inside-agent-dict"])
def test_malicious_pickle_is_refused_without_running_code(tmp_path: Path, agent_file: Path, wrap: bool) -> None:
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pt"
    payload: Any = Exploit(marker)
    if wrap:  # a real agent file with one poisoned entry
        payload = torch.load(agent_file, weights_only=True) | {"extra": payload}
    torch.save(payload, path)
    assert not marker.exists()  # saving does not run it

    with pytest.raises(CheckpointError) as err:
        deepq.load(path)
    assert "Python objects" in str(err.value)
    assert not marker.exists(), "deepq.load executed code from the file"

    # control: the file really is malicious; an unsafe load runs the payload
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"
