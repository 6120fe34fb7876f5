"""The env kind, resolved once from cfg.env (deepq/envs/kinds.py), and the VecEnv protocol every vector env
implements (deepq/envs/base.py)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import deepq
from deepq.envs import kinds
from deepq.envs.base import VecEnv
from deepq.envs.kinds import AtariKind, EnvKind, EnvPoolKind, MinAtarKind
from deepq.errors import ConfigError
from deepq.games.kind import GAME_KINDS, GameKind
from deepq.training.setup import check, env_kind, game_kind


@pytest.mark.parametrize(("env", "backend", "kind", "name"), [
    ("CartPole-v1", "gymnasium", EnvKind, "gymnasium"),
    ("LunarLander-v3", "gymnasium", EnvKind, "gymnasium"),
    ("MinAtar/Breakout-v1", "gymnasium", MinAtarKind, "minatar"),
    ("ALE/Pong-v5", "gymnasium", AtariKind, "atari"),
    ("PongNoFrameskip-v4", "gymnasium", AtariKind, "atari"),
    ("ALE/Pong-v5", "envpool", EnvPoolKind, "envpool"),
    ("openspiel:tic_tac_toe", "gymnasium", GameKind, "openspiel"),
    ("pettingzoo:tictactoe_v3", "gymnasium", GameKind, "pettingzoo"),
])
def test_each_kind_from_its_id(env: str, backend: str, kind: type, name: str) -> None:
    resolved = env_kind(deepq.Config(env=env, backend=backend))
    assert type(resolved) is kind and resolved.name == name and resolved.spec == env
    assert resolved.two_player == (kind is GameKind)
    assert resolved.return_label == ("1st-player return" if kind is GameKind else "return")


def test_a_factory_is_a_gymnasium_kind() -> None:
    def factory() -> gym.Env:
        return gym.make("CartPole-v1")

    kind = env_kind(deepq.Config(env=factory))
    assert type(kind) is EnvKind and not kind.two_player
    with pytest.raises(ConfigError, match="not an env factory"):
        kind.make_search_env(deepq.Config(env=factory, target="mcts"))


def test_the_game_kind_is_named_by_the_games_table() -> None:
    """deepq/games/kind.py names its prefixes (GAME_KINDS, passed to kinds by set-up); deepq.envs never imports
    deepq.games."""
    import ast
    from pathlib import Path

    assert isinstance(kinds.by_prefix("openspiel:connect_four", GAME_KINDS), GameKind)
    assert kinds.by_prefix("CartPole-v1", GAME_KINDS) is None and kinds.by_prefix(lambda: None, GAME_KINDS) is None
    assert isinstance(game_kind("openspiel:connect_four"), GameKind)
    assert game_kind("CartPole-v1") is None and game_kind(lambda: None) is None
    envs_dir = Path(kinds.__file__).parent
    for path in envs_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n.startswith("deepq.games") for n in names), f"{path.name} imports {names}"


def test_a_prefix_passed_to_resolve_resolves_to_its_kind() -> None:
    class Toy(EnvKind):
        name = "toy"

    kind = kinds.resolve(deepq.Config(env="toy:anything"), {"toy:": Toy})
    assert isinstance(kind, Toy) and kind.spec == "toy:anything"


def test_an_unknown_id_keeps_its_message() -> None:
    cfg = deepq.Config(env="CartPol-v1")
    kind = env_kind(cfg)  # resolving does not refuse it: building its env does, with the close ids
    with pytest.raises(ConfigError, match=r"unknown environment id 'CartPol-v1': it is neither a deepq preset nor "
                                          r"a registered Gymnasium id\. Did you mean CartPole-v1"):
        kind.make_vec_env(cfg)


def test_game_checks_run_at_set_up_with_their_messages() -> None:
    with pytest.raises(ConfigError, match=r"^frame_stack=4 does not apply to the two-player game "
                                          r"'openspiel:tic_tac_toe': use 1: a game position is its own history$"):
        check(deepq.Config(env="openspiel:tic_tac_toe", frame_stack=4))
    with pytest.raises(ConfigError, match=r"^clip_rewards=True does not apply"):
        check(deepq.Config(env="openspiel:tic_tac_toe", clip_rewards=True))
    with pytest.raises(ConfigError, match="needs an OpenSpiel game"):
        check(deepq.Config(env="pettingzoo:tictactoe_v3", eval_opponent="mcts:10"))
    check(deepq.Config(env="CartPole-v1", frame_stack=4, clip_rewards=True))  # not a game: nothing to check


def test_a_game_error_comes_before_the_run_directory_is_made(tmp_path: Any) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match="episodic_life=True does not apply"):
        deepq.train(deepq.Config(env="openspiel:tic_tac_toe", episodic_life=True, run_dir=str(run_dir),
                                 progress=False))
    assert not run_dir.exists()


def test_atari_evaluations_state_their_protocol() -> None:
    cfg = deepq.Config(env="ALE/Pong-v5")
    assert env_kind(cfg).eval_protocol(cfg, 0.0).startswith("eps=0, raw score, up to 30 no-op starts")
    assert env_kind(deepq.Config()).eval_protocol(cfg, 0.05) == "eps=0.05, raw score"


@pytest.mark.parametrize("cfg", [
    deepq.Config(env="CartPole-v1", num_envs=2),
    deepq.Config(env="MinAtar/Breakout-v1"),
    deepq.Config(env="openspiel:tic_tac_toe", num_envs=2),
    deepq.Config(env="pettingzoo:tictactoe_v3"),
], ids=lambda c: c.env)
def test_every_vector_env_is_a_VecEnv(cfg: deepq.Config) -> None:
    envs = env_kind(cfg).make_vec_env(cfg)
    try:
        assert isinstance(envs, VecEnv)
        obs = envs.reset()
        assert obs.shape == (cfg.num_envs, *envs.obs_shape) and envs.num_envs == cfg.num_envs
        assert envs.env_label == cfg.env
        # games say which moves are legal; the others give no masks (every action legal)
        assert (envs.legal is not None) == cfg.env.startswith(("openspiel:", "pettingzoo:"))
        legal = envs.legal if envs.legal is not None else np.ones((cfg.num_envs, envs.n_actions), bool)
        assert legal.shape == (cfg.num_envs, envs.n_actions)
        step = envs.step(legal.argmax(axis=1))
        assert step.obs.shape == obs.shape and step.rewards.shape == (cfg.num_envs,)
        assert envs.load_state_dict(envs.state_dict()).shape == obs.shape
    finally:
        envs.close()


def test_envpool_vec_env_is_a_VecEnv() -> None:
    """Structurally (EnvPool itself may not be installed)."""
    from deepq.envs.atari import EnvPoolVecEnv

    probe = EnvPoolVecEnv.__new__(EnvPoolVecEnv)
    probe.obs_shape, probe.n_actions, probe.obs_dtype = (4, 84, 84), 6, np.uint8
    probe.env_label, probe.num_envs = "ALE/Pong-v5", 2
    assert isinstance(probe, VecEnv)  # runtime_checkable: every member is there
    del probe.env_label
    assert not isinstance(probe, VecEnv)


def test_a_minatar_resume_keeps_the_action_sticky_actions_repeat_across_a_reset() -> None:
    """MinAtar repeats its last action with probability 0.1, the last one of the previous episode included (its
    Environment keeps it across reset): a resume rebuilds it too, so the envs go on exactly as they would have."""
    cfg = deepq.Config(env="MinAtar/Breakout-v1", num_envs=4, seed=3, backend="gymnasium")  # the reference env's
    rng = np.random.default_rng(0)
    envs = env_kind(cfg).make_vec_env(cfg)
    copies = []
    try:
        envs.reset()
        checked = 0
        while checked < 5:  # resumes just after an episode ended with an action other than 0
            if not envs.step(rng.integers(1, envs.n_actions, size=4)).ended.any():
                continue
            copy = env_kind(cfg).make_vec_env(cfg)
            copies.append(copy)
            copy.load_state_dict(envs.state_dict())
            carried = [[e.unwrapped.game.last_action for e in v.envs] for v in (envs, copy)]
            assert carried[0] == carried[1]
            checked += 1
        for _ in range(200):  # and every later step matches
            actions = rng.integers(envs.n_actions, size=4)
            np.testing.assert_array_equal(envs.step(actions).obs, copy.step(actions).obs)
    finally:
        for v in [envs, *copies]:
            v.close()
