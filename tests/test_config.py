"""Config: presets, overrides, validation messages, and the dict round trip."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym
import pytest

import deepq
from deepq import PRESETS, Config, ConfigError, preset

PRESET_NAMES = ["cartpole", "acrobot", "mountaincar", "lunarlander"]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_exists_and_validates(name: str) -> None:
    assert name in PRESETS
    cfg = preset(name)
    assert cfg.validate() is cfg
    assert cfg.name == name
    assert cfg.env in gym.registry


def test_preset_overrides_and_does_not_mutate_the_preset() -> None:
    cfg = preset("cartpole", seed=3, lr=5e-4, hidden_sizes=[32])
    assert (cfg.seed, cfg.lr, cfg.hidden_sizes) == (3, 5e-4, (32,))
    assert cfg.env == "CartPole-v1" and cfg.batch_size == PRESETS["cartpole"].batch_size
    assert (PRESETS["cartpole"].seed, PRESETS["cartpole"].lr) == (0, 1e-3)


def test_preset_name_is_case_insensitive() -> None:
    assert preset("CartPole") == PRESETS["cartpole"]


def test_unknown_preset_names_valid_presets() -> None:
    with pytest.raises(ConfigError) as err:
        preset("cartpol")
    msg = str(err.value)
    assert "cartpol" in msg and "did you mean 'cartpole'" in msg
    for name in PRESET_NAMES:
        assert name in msg


def test_unknown_override_field_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"'gama' \(did you mean 'gamma'\?\)"):
        preset("cartpole", gama=0.9)
    with pytest.raises(ConfigError, match="learning_rate"):
        Config().replace(learning_rate=1e-3)


BAD_VALUES: list[tuple[str, Any]] = [
    ("total_steps", 0), ("total_steps", -5),
    ("batch_size", 0), ("batch_size", -1),
    ("buffer_size", 0), ("buffer_size", -100),
    ("train_freq", 0), ("train_freq", -1),
    ("num_envs", 0), ("num_envs", -2),
    ("lr", 0.0), ("lr", -1e-3),
    ("gamma", 1.5), ("gamma", -0.1),
    ("tau", 0.0), ("tau", 1.5),
    ("eps_end", -0.1), ("eps_start", 1.1),
    ("loss", "l1"),
    ("target", "soft"),
    ("device", "tpu"),
    ("total_steps", 1.5), ("batch_size", True),
    ("lr", float("nan")),
]


@pytest.mark.parametrize(("field", "value"), BAD_VALUES)
def test_bad_value_names_the_field(field: str, value: Any) -> None:
    cfg = Config(**{field: value})  # constructing is fine; validate() is what checks
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert str(err.value).startswith(f"{field}=")
    assert "not valid" in str(err.value)


def test_default_config_validates() -> None:
    Config().validate()


def test_batch_larger_than_buffer() -> None:
    with pytest.raises(ConfigError) as err:
        Config(batch_size=64, buffer_size=32).validate()
    msg = str(err.value)
    assert "batch_size=64" in msg and "buffer_size=32" in msg
    Config(batch_size=32, buffer_size=32).validate()  # equal is fine


def test_stop_at_return_needs_evaluation() -> None:
    with pytest.raises(ConfigError) as err:
        Config(stop_at_return=100.0, eval_interval=0).validate()
    assert "stop_at_return" in str(err.value) and "eval_interval" in str(err.value)
    Config(stop_at_return=100.0, eval_interval=1000).validate()
    Config(stop_at_return=None, eval_interval=0).validate()


def test_to_dict_from_dict_round_trip() -> None:
    cfg = preset("lunarlander", seed=7, hidden_sizes=(64, 32), stop_at_return=None)
    data = cfg.to_dict()
    text = json.dumps(data)  # JSON-serialisable
    assert data["hidden_sizes"] == [64, 32]
    back = Config.from_dict(json.loads(text))
    assert back == cfg
    assert back.hidden_sizes == (64, 32)


def test_from_dict_rejects_unknown_fields() -> None:
    data = Config().to_dict() | {"gama": 0.5}
    with pytest.raises(ConfigError, match="gama"):
        Config.from_dict(data)


def _my_env_factory() -> gym.Env:
    return gym.make("CartPole-v1")


def test_callable_env_is_recorded_as_a_string() -> None:
    cfg = Config(env=_my_env_factory)
    cfg.validate()
    data = cfg.to_dict()
    json.dumps(data)
    assert isinstance(data["env"], str)
    assert "_my_env_factory" in data["env"]
    assert cfg.run_name == "_my_env_factory"


def test_network_factory_is_recorded_as_a_string_and_dropped_on_load() -> None:
    def net(obs_shape: tuple[int, ...], n_actions: int) -> Any:
        raise NotImplementedError

    data = Config(network=net).to_dict()
    json.dumps(data)
    assert isinstance(data["network"], str) and "net" in data["network"]
    assert Config.from_dict(data).network is None


def test_env_must_be_an_id_or_callable() -> None:
    with pytest.raises(ConfigError, match="env="):
        Config(env="").validate()
    with pytest.raises(ConfigError, match="env="):
        Config(env=3).validate()  # type: ignore[arg-type]


def test_public_api() -> None:
    assert deepq.preset is preset and deepq.Config is Config
    assert issubclass(ConfigError, ValueError) and issubclass(ConfigError, deepq.DeepQError)
