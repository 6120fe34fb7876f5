"""Config: presets, overrides, validation messages, the dict round trip, and the fields' tags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import deepq
from deepq import PRESETS, Config, ConfigError, preset
from deepq.cli import build_parser
from deepq.config import (
    DEVICE,
    DISTRIBUTED,
    EVAL,
    EXPLORATION,
    GAMES,
    MCTS,
    NETWORK,
    PIXELS,
    PQN,
    RAINBOW,
    RESUME_FIXED,
    RUN,
    TAGS,
    TARGET,
    TD,
    groups,
)
from deepq.config_checks import Check, Tag, tag_of
from deepq.training import loop

PRESET_NAMES = ["cartpole", "acrobot", "mountaincar", "lunarlander", "taxi"]


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


# Field tags: group, resume rule, value check (deepq/config_checks.py) ----------------------------------------------

def test_every_field_is_tagged_with_a_known_group() -> None:
    fields = dataclasses.fields(Config)
    assert list(TAGS) == [f.name for f in fields]  # made from the dataclass, so a field without `tag` fails here
    for f in fields:
        t = tag_of(f)
        assert isinstance(t, Tag) and isinstance(t.resume_fixed, bool), f.name
        assert t.check is None or isinstance(t.check, Check), f.name
    assert list(groups()) == [RUN, NETWORK, PIXELS, TD, RAINBOW, TARGET, MCTS, PQN, EXPLORATION, GAMES, EVAL,
                              DEVICE, DISTRIBUTED]
    assert sorted(n for names in groups().values() for n in names) == sorted(TAGS)  # each field in one group
    assert all(TAGS[n].group == g for g, names in groups().items() for n in names)


# The fields a resume may not change, as docs/guides/checkpoints.md lists them (they shape the networks, the
# replay memory or the envs); a checkpoint written before the tags refuses and accepts the same resumes.
DOCUMENTED_RESUME_FIXED = {
    "env", "seed", "num_envs", "action_masks", "buffer_size", "hidden_sizes", "target", "network", "arch",
    "layer_norm", "dueling", "noisy",
    "atoms", "prioritized", "per_alpha", "frame_stack", "backend", "noop_max", "frame_skip", "screen_size",
    "grayscale", "sticky_actions", "fire_reset", "max_episode_frames", "opponent_pool"}


def test_resume_fixed_is_derived_from_the_tags_and_equals_the_documented_list() -> None:
    assert set(RESUME_FIXED) == DOCUMENTED_RESUME_FIXED and len(RESUME_FIXED) == 25
    assert list(RESUME_FIXED) == [n for n in TAGS if n in DOCUMENTED_RESUME_FIXED]  # in field order
    assert loop.RESUME_FIXED is RESUME_FIXED
    guide = " ".join((Path(__file__).parents[1] / "docs" / "guides" / "checkpoints.md").read_text().split())
    paragraph = guide[guide.index("Some fields cannot change on resume"):guide.index("A resume that changes one")]
    named = set(re.findall(r"`(\w+)`", paragraph)) - {"RESUME_FIXED", "resume_fixed"}
    assert named == DOCUMENTED_RESUME_FIXED


# One sample per check and per group at least: the message each gave before the checks were made from tags.
MESSAGES: list[tuple[str, Any, str]] = [
    ("env", 3, "env=3 is not valid: use a Gymnasium id such as 'CartPole-v1' or a zero-argument callable "
               "returning a gym.Env"),
    ("seed", -1, "seed=-1 is not valid: seed must be an integer in [0, 4294967295]"),
    ("name", "../x", "name='../x' is not valid: name must be one folder name: no '/' or '\\', not '.' or '..', no "
                     "control characters, at most 200 bytes of UTF-8 (or '' for the preset or env id)"),
    ("run_dir", "r\udcff", "run_dir='r\\udcff' is not valid: run_dir must be a path in UTF-8 with no control "
                           "characters (or '' for runs/<name>-<seed>-<timestamp>)"),
    ("total_steps", 0, "total_steps=0 is not valid: total_steps must be a positive integer"),
    ("num_envs", 1.5, "num_envs=1.5 is not valid: num_envs must be a positive integer"),
    ("hidden_sizes", (), "hidden_sizes=() is not valid: hidden_sizes must be a non-empty list of positive integers"),
    ("arch", "x", "arch='x' is not valid: arch must be one of 'auto', 'mlp', 'nature_cnn', 'small_cnn'"),
    ("frame_stack", 0, "frame_stack=0 is not valid: frame_stack must be a positive integer"),
    ("backend", "x", "backend='x' is not valid: backend must be one of 'auto', 'numpy', 'gymnasium', 'envpool'"),
    ("noop_max", -1, "noop_max=-1 is not valid: noop_max must be an integer >= 0"),
    ("max_episode_frames", True, "max_episode_frames=True is not valid: max_episode_frames must be a positive integer"),
    ("gamma", 1.5, "gamma=1.5 is not valid: gamma must be a number in [0, 1]"),
    ("lr", float("nan"), "lr=nan is not valid: lr must be a positive number"),
    ("optimizer", "x", "optimizer='x' is not valid: optimizer must be one of 'adam', 'rmsprop', 'radam'"),
    ("batch_size", True, "batch_size=True is not valid: batch_size must be a positive integer"),
    ("loss", "x", "loss='x' is not valid: loss must be one of 'mse', 'huber'"),
    ("n_step", 0, "n_step=0 is not valid: n_step must be a positive integer"),
    ("atoms", 0, "atoms=0 is not valid: atoms must be 1 (off) or an integer >= 2"),
    ("noisy_sigma", -1, "noisy_sigma=-1 is not valid: noisy_sigma must be a number >= 0"),
    ("per_beta", 1.5, "per_beta=1.5 is not valid: per_beta must be a number in [0, 1]"),
    ("max_grad_norm", -1, "max_grad_norm=-1 is not valid: max_grad_norm must be a number >= 0 (0 disables clipping)"),
    ("v_min", "x", "v_min='x', v_max=10.0 are not valid: C51's support needs numbers with v_min < v_max"),
    ("target", "x", "target='x' is not valid: target must be one of 'hard', 'polyak', 'none', 'mcts', 'pqn'"),
    ("target_update_interval", 0,
     "target_update_interval=0 is not valid: target_update_interval must be a positive integer"),
    ("tau", 0, "tau=0 is not valid: tau must be a number in (0, 1]"),
    ("mcts_simulations", 0, "mcts_simulations=0 is not valid: mcts_simulations must be a positive integer"),
    ("mcts_c_puct", -1, "mcts_c_puct=-1 is not valid: mcts_c_puct must be a number >= 0"),
    ("mcts_leaf", "x", "mcts_leaf='x' is not valid: mcts_leaf must be one of 'network', 'rollout'"),
    ("q_lambda", 1.5, "q_lambda=1.5 is not valid: q_lambda must be a number in [0, 1]"),
    ("rollout_len", 0, "rollout_len=0 is not valid: rollout_len must be a positive integer"),
    ("reward_scale", 0, "reward_scale=0 is not valid: reward_scale must be a positive number"),
    ("eps_schedule", "x", "eps_schedule='x' is not valid: eps_schedule must be one of 'linear', 'exponential'"),
    ("eps_decay_steps", -1, "eps_decay_steps=-1 is not valid: eps_decay_steps must be an integer >= 0"),
    ("eval_eps", 1.5, "eval_eps=1.5 is not valid: eval_eps must be a number in [0, 1]"),
    ("eval_opponent", "mcts:1", "eval_opponent='mcts:1' is not valid: eval_opponent must be 'random', 'perfect' or "
                                "'mcts:N' (N simulations, N >= 2)"),
    ("opponent_pool", -1, "opponent_pool=-1 is not valid: opponent_pool must be an integer >= 0"),
    ("eval_episodes", 0, "eval_episodes=0 is not valid: eval_episodes must be a positive integer"),
    ("stop_at_return", "x", "stop_at_return='x' is not valid: use a number or None"),
    ("max_minutes", -1, "max_minutes=-1 is not valid: max_minutes must be a number >= 0 (0: no limit)"),
    ("checkpoint_interval", 1.5, "checkpoint_interval=1.5 is not valid: checkpoint_interval must be an integer >= 0"),
    ("device", "cuda:x", "device='cuda:x' is not valid: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("threads", 0, "threads=0 is not valid: threads must be a positive integer"),
    ("num_actors", -1, "num_actors=-1 is not valid: num_actors must be an integer >= 0"),
    ("actor_eps", "x", "actor_eps='x' is not valid: actor_eps must be one of 'apex', 'schedule'"),
    ("max_in_flight", 0, "max_in_flight=0 is not valid: max_in_flight must be a positive integer"),
]


@pytest.mark.parametrize(("field", "value", "message"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_a_bad_value_gives_the_message_it_always_gave(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        Config(**{field: value}).validate()
    assert str(err.value) == message


def test_the_samples_cover_every_group_and_every_checked_field_rejects_a_value() -> None:
    assert {TAGS[f].group for f, _, _ in MESSAGES} == set(groups())
    for name, t in TAGS.items():
        if t.check is not None:  # a check that accepts everything would be a silent gap
            assert not all(t.check.ok(v) for v in (-1, 0, 1.5, "x", None, True, ())), name


def _bad(**fields: Any) -> str:
    with pytest.raises(ConfigError) as err:
        Config(**fields).validate()
    return str(err.value)


def test_checks_across_fields_keep_their_messages() -> None:
    assert _bad(target="mcts", atoms=51) == (
        "target='mcts' regresses Q toward search values: it does not combine with atoms, noisy, prioritized or "
        "n_step (TD-target features); turn those off")
    assert _bad(v_min=5.0, v_max=1.0) == \
        "v_min=5.0, v_max=1.0 are not valid: C51's support needs numbers with v_min < v_max"
    assert _bad(batch_size=64, buffer_size=32) == ("batch_size=64 is larger than buffer_size=32: a minibatch is "
                                                   "drawn from the replay memory, so use batch_size <= buffer_size")
    assert _bad(stop_at_return=1.0, eval_interval=0) == \
        "stop_at_return needs periodic evaluation: set eval_interval > 0"
    from deepq.training.setup import check  # a game's limits are its env kind's, checked at set-up

    with pytest.raises(ConfigError) as err:
        check(Config(env="openspiel:tic_tac_toe", frame_stack=4))
    assert str(err.value) == (
        "frame_stack=4 does not apply to the two-player game 'openspiel:tic_tac_toe': use 1: a game position is its "
        "own history")


def test_fields_are_checked_group_by_group_and_a_groups_own_checks_come_before_its_cross_checks() -> None:
    # the first failing field in the groups' order (--help's) is the one named
    assert _bad(threads=0, lr=0, total_steps=0).startswith("total_steps=0 ")
    assert _bad(threads=0, lr=0).startswith("lr=0 ")
    # a cross-field check sees fields already checked: a wrong type is named, not a TypeError from `>`
    assert _bad(batch_size="64", buffer_size=32).startswith("batch_size='64' ")
    assert _bad(target="mcts", atoms="51").startswith("atoms='51' ")  # atoms (Rainbow) is checked before target's


def test_help_lists_every_field_under_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping: a heading is a line of its own
    train = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    section, under = "", {}
    for line in train.format_help().splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            section = line[:-1]
        elif m := re.match(r"  --(\w+) ", line):
            under[m.group(1)] = section
    on_cli = {n: t.group for n, t in TAGS.items() if n != "network"}  # network holds code: Python only
    assert {n: s for n, s in under.items() if n in TAGS} == on_cli
    assert "network" not in under
