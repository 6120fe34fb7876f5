"""deepq's NumPy Connect Four (deepq/games/numpy_connect4.py) against the reference, GameVecEnv over OpenSpiel's
connect_four: the same moves from the same seeds give the same arrays at every ply (observations, rewards, ends,
legal masks, who moved), checkpoints resume on either env, and training picks it for backend 'auto' and 'numpy'."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

import deepq
from deepq.core.explore import random_legal
from deepq.envs.base import Step
from deepq.errors import ConfigError
from deepq.games import numpy_connect4
from deepq.games.kind import GameKind
from deepq.games.numpy_connect4 import Connect4Vec
from deepq.games.vec import GameVecEnv

GAME = "openspiel:connect_four"
Env = Connect4Vec | GameVecEnv
# A game that fills the board with no four in a row (found by random play, checked against OpenSpiel).
DRAW = [0, 1, 1, 5, 4, 3, 2, 6, 2, 3, 2, 1, 5, 2, 4, 0, 0, 5, 0, 2, 3, 3, 2, 0, 3, 3, 4, 6, 1, 1, 6, 6, 5, 4, 1, 0,
        4, 5, 5, 4, 6, 6]


def step_all(envs: list[Env], actions: np.ndarray) -> Step:
    """Step every env with the same moves; every output, and the attributes self-play reads, must be equal."""
    outs = [e.step(actions) for e in envs]
    for env, out in zip(envs[1:], outs[1:], strict=True):
        for name, ref, got in zip(Step._fields, outs[0], out, strict=True):
            assert got is not None and ref is not None, name
            assert got.dtype == ref.dtype and got.shape == ref.shape, name
            np.testing.assert_array_equal(got, ref, err_msg=f"{name} of {type(env).__name__}")
        for name in ("legal", "movers", "to_move"):
            np.testing.assert_array_equal(getattr(env, name), getattr(envs[0], name), err_msg=name)
    return outs[0]


def lines(stones: np.ndarray) -> set[str]:
    """The directions of the four-in-a-rows of one player's stones (6, 7) (row 0 at the bottom)."""
    squares = sliding_window_view(stones, (4, 4))  # (3, 4, 4, 4): every 4x4 square
    found = {"vertical": sliding_window_view(stones, (4, 1)).all(axis=(-2, -1)).any(),
             "horizontal": sliding_window_view(stones, (1, 4)).all(axis=(-2, -1)).any(),
             "rising diagonal": squares.diagonal(axis1=2, axis2=3).all(-1).any(),
             "falling diagonal": squares[..., ::-1].diagonal(axis1=2, axis2=3).all(-1).any()}
    return {name for name, yes in found.items() if yes}


def play_against_reference(num_envs: int, steps: int, seed: int) -> dict[str, int]:
    """Random legal games on both envs from `seed` (env 0's first game is DRAW); the outcomes seen, counted."""
    envs: list[Env] = [GameVecEnv(GAME, num_envs, seed), Connect4Vec(num_envs, seed)]
    first = [e.reset() for e in envs]
    np.testing.assert_array_equal(first[1], first[0])
    assert first[1].dtype == np.float32 and first[1].shape == (num_envs, 3, 6, 7)
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    for t in range(steps):
        np.testing.assert_array_equal(envs[1].legal, envs[0].legal)
        actions = random_legal(envs[0].legal, rng)  # (N,)
        if t < len(DRAW):
            actions[0] = DRAW[t]
        out = step_all(envs, actions)
        for i in np.flatnonzero(out.ended):
            if out.rewards[i] == 0:
                seen["draw"] = seen.get("draw", 0) + 1
                assert not out.final_obs[i, 2].any()  # a full board
                continue
            winner = int(envs[1].movers[i])
            seen[f"player {winner} wins"] = seen.get(f"player {winner} wins", 0) + 1
            for line in lines(out.final_obs[i, 1]):  # the winner's stones, seen by the loser (the next mover)
                seen[line] = seen.get(line, 0) + 1
    return seen


def test_random_games_match_openspiel_at_every_ply() -> None:
    seen = play_against_reference(num_envs=64, steps=600, seed=7)
    assert {"draw", "player 0 wins", "player 1 wins", "vertical", "horizontal", "rising diagonal",
            "falling diagonal"} <= set(seen), seen
    assert seen["draw"] >= 1 and seen["player 0 wins"] + seen["player 1 wins"] > 1_000


@pytest.mark.parametrize("left_out", range(4))
def test_a_missing_win_direction_is_caught(monkeypatch: pytest.MonkeyPatch, left_out: int) -> None:
    """The comparison can fail: with one line direction unchecked, some game goes on where OpenSpiel's ended."""
    directions = tuple(d for i, d in enumerate(numpy_connect4.DIRECTIONS) if i != left_out)
    monkeypatch.setattr(numpy_connect4, "DIRECTIONS", directions)
    with pytest.raises(AssertionError):
        play_against_reference(num_envs=64, steps=600, seed=7)


def test_the_board_as_each_player_sees_it() -> None:
    """By hand: x (the first player) in columns 3 and 4, o on top of column 3; o is to move after x's second."""
    envs = Connect4Vec(1, seed=0)
    envs.reset()
    for a in (3, 3):
        envs.step(np.array([a]))
    out = envs.step(np.array([4]))
    mine, theirs, empty = out.final_obs[0]  # as o, the player to move, sees it
    assert mine[1, 3] == 1 and mine.sum() == 1
    assert theirs[0, 3] == theirs[0, 4] == 1 and theirs.sum() == 2
    assert empty.sum() == 42 - 3 and (out.obs == out.final_obs).all()
    assert envs.to_move.tolist() == [1] and envs.movers.tolist() == [0] and out.rewards.tolist() == [0.0]


def test_a_win_a_reset_and_an_illegal_move() -> None:
    envs = Connect4Vec(2, seed=0)
    envs.reset()
    for a in (0, 1, 0, 1, 0, 1):
        envs.step(np.array([a, 6 - a]))
    out = envs.step(np.array([0, 3]))  # env 0: x's fourth stone in column 0; env 1: no line yet
    assert out.rewards.tolist() == [1.0, 0.0] and out.terminated.tolist() == [True, False]
    assert out.next_legal is not None and not out.next_legal[0].any() and out.next_legal[1].all()
    assert out.final_obs[0, 1, :4, 0].all() and out.obs[0, 2].all()  # the win as o sees it; the new game's empty board
    assert envs.legal[0].all() and envs.to_move.tolist() == [0, 1] and envs.episodes.tolist() == [2, 1]
    for _ in range(6):
        envs.step(np.array([5, 2]))
    with pytest.raises(ValueError, match="env 0: action 5 is illegal"):  # column 5 is full
        envs.step(np.array([5, 2]))
    with pytest.raises(ValueError, match="illegal"):
        envs.step(np.array([0, 7]))
    with pytest.raises(ValueError, match="one action per env"):
        envs.step(np.array([0]))


def test_checkpoints_resume_on_either_env() -> None:
    """state_dict is GameVecEnv's format: a fresh Connect4Vec and a fresh GameVecEnv rebuild the same games and
    continue identically; a GameVecEnv checkpoint loads into Connect4Vec too."""
    n, seed = 16, 3
    ours, ref = Connect4Vec(n, seed), GameVecEnv(GAME, n, seed)
    ours.reset(), ref.reset()
    rng = np.random.default_rng(0)
    obs = None
    for _ in range(50):  # some games over, the others in progress
        obs = step_all([ref, ours], random_legal(ours.legal, rng)).obs
    assert ours.state_dict() == ref.state_dict()
    assert any(0 < len(m) for m in ours.state_dict()["moves"]) and max(ours.state_dict()["episodes"]) > 1
    state = ours.state_dict()
    loaded_ours, loaded_ref, from_ref = Connect4Vec(n, seed), GameVecEnv(GAME, n, seed), Connect4Vec(n, seed)
    for env, loaded in ((loaded_ours, state), (loaded_ref, state), (from_ref, ref.state_dict())):
        np.testing.assert_array_equal(env.load_state_dict(loaded), obs)
        np.testing.assert_array_equal(env.legal, ours.legal)
        np.testing.assert_array_equal(env.to_move, ours.to_move)
    for _ in range(100):
        step_all([ref, ours, loaded_ours, loaded_ref, from_ref], random_legal(ours.legal, rng))
    assert loaded_ours.state_dict() == ref.state_dict() == from_ref.state_dict()


def test_a_checkpoint_with_an_illegal_or_finished_game_is_refused() -> None:
    envs = Connect4Vec(1, seed=0)
    with pytest.raises(ValueError, match="illegal"):
        envs.load_state_dict({"seed": 0, "episodes": [1], "moves": [[0] * 7]})
    with pytest.raises(ValueError, match="is over"):
        envs.load_state_dict({"seed": 0, "episodes": [1], "moves": [[0, 1] * 3 + [0]]})


@pytest.mark.parametrize(("backend", "env"), [("auto", Connect4Vec), ("numpy", Connect4Vec),
                                              ("gymnasium", GameVecEnv)])
def test_the_backend_picks_the_training_env(backend: str, env: type) -> None:
    cfg = deepq.preset("connect4", backend=backend, num_envs=4)
    assert type(GameKind(GAME).make_vec_env(cfg)) is env
    one = GameKind(GAME).make_vec_env(cfg.replace(num_envs=1))  # auto: one game steps faster on OpenSpiel
    assert type(one) is (GameVecEnv if backend != "numpy" else Connect4Vec)
    assert type(GameKind("openspiel:tic_tac_toe").make_vec_env(cfg.replace(env="openspiel:tic_tac_toe",
                                                                           backend="auto"))) is GameVecEnv


def test_numpy_backend_for_a_game_without_one_is_one_line() -> None:
    from deepq.training.setup import check

    with pytest.raises(ConfigError, match=r"no NumPy env for 'openspiel:tic_tac_toe'.*'openspiel:connect_four'"
                                          r".*--backend gymnasium") as err:
        check(deepq.Config(env="openspiel:tic_tac_toe", backend="numpy"))
    assert "\n" not in str(err.value)


def smoke(tmp: Path, **fields: Any) -> deepq.Config:
    small = dict(total_steps=2_000, learning_starts=500, batch_size=32, eval_interval=2_000, eval_episodes=1,
                 checkpoint_interval=1_000, progress=False, run_dir=str(tmp))
    return deepq.preset("connect4", **{**small, **fields})


def test_the_connect4_preset_trains_on_it(tmp_path: Path) -> None:
    cfg = smoke(tmp_path / "dqn", num_envs=4)
    assert cfg.backend == "auto" and type(GameKind(GAME).make_vec_env(cfg)) is Connect4Vec
    agent = deepq.train(cfg)
    assert agent.obs_shape == (3, 6, 7) and (tmp_path / "dqn" / "agent.pt").exists()
    rows = list(csv.DictReader((tmp_path / "dqn" / "metrics.csv").open()))
    assert max(int(r["episode"] or 0) for r in rows) > 50  # games finished and logged (a random one: ~21 plies)


def test_pqn_self_play_trains_on_it_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = smoke(tmp_path / "a", target="pqn", double=False, layer_norm=True, optimizer="radam", loss="mse",
                learning_starts=0, num_envs=16, rollout_len=16, minibatches=4, total_steps=4_096)
    deepq.train(cfg.replace(total_steps=2_048))  # stopped with games in progress, then resumed from its checkpoint
    resumed = deepq.train(cfg, resume=tmp_path / "a")
    straight = deepq.train(cfg.replace(run_dir=str(tmp_path / "b")))
    for name, weights in straight.online.state_dict().items():
        assert torch.equal(weights, resumed.online.state_dict()[name]), name
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert max(int(r["episode"] or 0) for r in rows) > 100  # games finished and logged (a random one: ~21 plies)
