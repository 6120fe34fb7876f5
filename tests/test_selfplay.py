"""Self-play: sign conventions, masking, game adapters, the loop on games, resume, as_bot, CLI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pyspiel
import pytest
import torch

import deepq
from deepq.cli import main
from deepq.core.explore import masked_epsilon_greedy, random_legal
from deepq.core.losses import td_target
from deepq.errors import ConfigError
from deepq.games.adapters import OpenSpielGame, PettingZooGame, make_game
from deepq.games.bot import as_bot
from deepq.games.vec import GameVecEnv
from deepq.training.loop import make_replay
from deepq.training.setup import game_kind

GAMMA = 0.9
LEARN_STEPS = 100_000  # plies, about 80 s on one CPU core (60k still lost 1-3 games of 400 on seeds 0-1)
TINY = dict(env="openspiel:tic_tac_toe", total_steps=1_500, learning_starts=300, train_freq=2, batch_size=32,
            buffer_size=2_000, hidden_sizes=(32, 32), target_update_interval=200, eps_decay_steps=1_000,
            eval_interval=750, eval_episodes=2, checkpoint_interval=500, progress=False, arch="mlp")


def tiny(tmp: Path, name: str, **kw: Any) -> deepq.Config:
    return deepq.Config(**{**TINY, "run_dir": str(tmp / name), **kw})


def t(x: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


# ---- sign conventions, by hand ----------------------------------------------------------------

def test_one_move_win_is_worth_the_reward() -> None:
    # X completes a line: terminal, discount 0, no legal move for O: y = r = +1 (no NaN from max over ∅).
    y = td_target(t([1.0]), t([0.0]), t([[0.3, -0.2, 0.9]]), next_legal=t([[False] * 3], torch.bool))
    assert y.tolist() == [1.0]


def test_move_that_lets_the_opponent_win_is_negative() -> None:
    # O (to move in s') can win: Q_opp = 0.8 on a legal cell. Discount −γ: y = 0 − 0.9 · 0.8.
    y = td_target(t([0.0]), t([-GAMMA]), t([[0.8, 0.1, 5.0]]), next_legal=t([[True, True, False]], torch.bool))
    assert y.item() == pytest.approx(-0.72)  # the illegal 5.0 (occupied cell) is ignored


def test_forced_loss_position_value() -> None:
    # Every opponent reply wins for them (value +1 each): we get −γ whatever we do.
    y = td_target(t([0.0, 0.0]), t([-GAMMA, -GAMMA]), t([[1.0, 1.0], [1.0, 1.0]]))
    assert y.tolist() == pytest.approx([-0.9, -0.9])


def test_masked_max_with_all_but_one_illegal() -> None:
    q = t([[5.0, -3.0, 7.0]])
    legal = t([[False, True, False]], torch.bool)
    assert td_target(t([0.0]), t([1.0]), q, next_legal=legal).item() == -3.0
    # Double DQN: the online net's choice is masked too, so it can only choose action 1.
    online = t([[9.0, 0.0, 9.0]])
    assert td_target(t([0.0]), t([1.0]), q, online, next_legal=legal).item() == -3.0


def test_no_legal_action_never_gives_nan_or_inf() -> None:
    legal = t([[False, False]], torch.bool)
    for online in (None, t([[1.0, 2.0]])):
        y = td_target(t([0.5]), t([-GAMMA]), t([[1.0, 2.0]]), online, next_legal=legal)
        assert torch.isfinite(y).all() and y.item() == 0.5


# ---- masked acting ------------------------------------------------------------------------------

def test_random_legal_is_uniform_over_legal_actions_only() -> None:
    legal = np.array([[False, True, False, True, True]] * 30_000)
    picks = random_legal(legal, np.random.default_rng(0))
    assert set(np.unique(picks)) == {1, 3, 4}
    freq = np.bincount(picks, minlength=5)[[1, 3, 4]] / len(picks)
    assert np.allclose(freq, 1 / 3, atol=0.015)


def test_masked_epsilon_greedy_is_legal_for_every_epsilon() -> None:
    rng = np.random.default_rng(1)
    legal = np.zeros((64, 9), dtype=bool)
    legal[np.arange(64), rng.integers(0, 9, 64)] = True  # exactly one legal move per row
    greedy_calls = []

    def greedy(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        greedy_calls.append(len(obs))
        return np.where(mask, 0.0, -np.inf).argmax(axis=1)

    for eps in (0.0, 0.5, 1.0):
        a = masked_epsilon_greedy(greedy, np.zeros((64, 3)), legal, eps, rng)
        assert legal[np.arange(64), a].all()


def test_agent_act_never_picks_an_illegal_action() -> None:
    agent = deepq.Agent((27,), 9, deepq.Config(env="openspiel:tic_tac_toe", arch="mlp", hidden_sizes=(8,)))
    obs = np.random.default_rng(0).random((20, 27)).astype(np.float32)
    legal = np.zeros((20, 9), dtype=bool)
    legal[:, 4] = True
    assert (agent.act(obs, legal) == 4).all()
    assert agent.act(obs[0], legal[0]) == 4


# ---- adapters -----------------------------------------------------------------------------------

def test_openspiel_observation_is_from_the_player_to_move() -> None:
    game = OpenSpielGame("tic_tac_toe")
    game.reset(0)
    game.step(4)  # X in the centre; O to move
    obs = game.observation()  # planes: mine, theirs, empty
    assert game.to_move == 1
    assert obs[0].sum() == 0 and obs[1][1, 1] == 1 and obs[2].sum() == 8
    game.step(0)  # O in a corner; X to move: X's own centre is in the first plane
    obs = game.observation()
    assert obs[0][1, 1] == 1 and obs[1][0, 0] == 1


def test_pettingzoo_and_openspiel_see_the_same_position() -> None:
    os_game, pz_game = OpenSpielGame("tic_tac_toe"), make_game("pettingzoo:tictactoe_v3")
    assert isinstance(pz_game, PettingZooGame)
    os_game.reset(0)
    pz_game.reset(0)
    # OpenSpiel cell = 3 * row + col; PettingZoo's action = 3 * col + row (column-major)
    for r, c in [(1, 1), (0, 0), (2, 0)]:
        assert os_game.legal_mask()[3 * r + c] and pz_game.legal_mask()[3 * c + r]
        os_game.step(3 * r + c)
        pz_game.step(3 * c + r)
    a, b = os_game.observation(), pz_game.observation()  # O to move; PettingZoo's grid is [col, row]
    assert np.array_equal(a[:2], b[:2].transpose(0, 2, 1))


def test_rewards_belong_to_the_mover_and_the_game_ends() -> None:
    game = OpenSpielGame("tic_tac_toe")
    game.reset(0)
    rewards = [game.step(a) for a in (0, 3, 1, 4)]  # X: 0, 1; O: 3, 4
    assert rewards == [0.0] * 4 and not game.is_terminal
    assert game.step(2) == 1.0  # X completes the top row
    assert game.is_terminal and not game.legal_mask().any() and game.returns() == [1.0, -1.0]


def test_unsupported_games_fail_clearly() -> None:
    with pytest.raises(ConfigError, match="perfect information"):
        OpenSpielGame("kuhn_poker")
    with pytest.raises(ConfigError, match="has no game 'no_such_game'"):
        OpenSpielGame("no_such_game")
    with pytest.raises(ConfigError, match="no classic game"):
        make_game("pettingzoo:nope")
    game = OpenSpielGame("pig(winscore=5)")  # a player keeps the turn after a roll: not alternating
    game.reset(0)
    with pytest.raises(ConfigError, match="strictly alternating"):
        for _ in range(50):
            game.step(0)  # roll


def test_vec_env_transitions_and_replay_hold_the_negated_discount(tmp_path: Path) -> None:
    cfg = deepq.Config(env="openspiel:tic_tac_toe", gamma=GAMMA, buffer_size=100, batch_size=8)
    envs = GameVecEnv(cfg.env, 1, seed=0)
    kind = game_kind(cfg.env)
    assert kind is not None and kind.two_player
    memory = make_replay(cfg, envs.obs_shape, envs.obs_dtype, torch.device("cpu"), envs.n_actions, kind,
                         kind.arch(cfg, envs.obs_shape))
    obs = envs.reset()
    for a in (0, 3, 1, 4, 2):  # X wins on the fifth ply
        out = envs.step(np.array([a]))
        memory.add(obs, np.array([a]), out.rewards, out.final_obs, out.terminated, out.ended, out.next_legal)
        obs = out.obs
    batch = memory.batch_slots(np.arange(5))
    assert batch.rewards.tolist() == [0, 0, 0, 0, 1]
    assert batch.discounts.tolist() == pytest.approx([-GAMMA] * 4 + [0.0])
    assert batch.next_legal is not None and not batch.next_legal[4].any()
    assert batch.next_legal[0].sum() == 8 and not batch.next_legal[0, 0]
    assert envs.legal[0].all()  # a fresh game after the win


# ---- the loop on games ---------------------------------------------------------------------------

def test_training_on_games_is_deterministic_and_resumes_exactly(tmp_path: Path) -> None:
    a = deepq.train(tiny(tmp_path, "a", opponent_pool=2))
    b = deepq.train(tiny(tmp_path, "b", opponent_pool=2))
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    # Stop after 1,000 steps, then resume to 1,500: the same weights as the uninterrupted run.
    deepq.train(tiny(tmp_path, "c", opponent_pool=2, total_steps=1_000))
    c = deepq.train(tiny(tmp_path, "c", opponent_pool=2), resume=tmp_path / "c")
    for k, v in a.online.state_dict().items():
        assert torch.equal(v, b.online.state_dict()[k]) and torch.equal(v, c.online.state_dict()[k])
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    second = rows[0].split(",").index("eval_second")
    assert any(r.split(",")[second] != "" for r in rows[1:])  # evaluations were logged, from each seat


def test_pettingzoo_game_trains_and_evaluates(tmp_path: Path) -> None:
    agent = deepq.train(tiny(tmp_path, "pz", env="pettingzoo:connect_four_v3", total_steps=600, eval_interval=600))
    result = deepq.evaluate(agent, episodes=2)
    assert len(result.returns) == 4 and set(result.returns) <= {-1.0, 0.0, 1.0}
    assert "as first player" in result.protocol


def test_game_config_errors() -> None:
    """The game kind's checks (deepq/games/kind.py), run at set-up after Config.validate."""
    from deepq.training.setup import check

    with pytest.raises(ConfigError, match="frame_stack"):
        check(deepq.Config(env="openspiel:tic_tac_toe", frame_stack=4))
    with pytest.raises(ConfigError, match="eval_opponent"):
        check(deepq.Config(env="pettingzoo:tictactoe_v3", eval_opponent="perfect"))
    with pytest.raises(ConfigError, match="eval_opponent"):
        check(deepq.Config(env="openspiel:tic_tac_toe", eval_opponent="mcts:x"))
    deepq.Config(env="openspiel:tic_tac_toe", frame_stack=4).validate()  # the Config alone knows no env kinds


# ---- as_bot, eval and play -----------------------------------------------------------------------

def test_as_bot_plays_legal_moves_in_openspiel_tools(tmp_path: Path) -> None:
    from open_spiel.python.algorithms.evaluate_bots import evaluate_bots

    agent = deepq.train(tiny(tmp_path, "bot", total_steps=400, eval_interval=0, checkpoint_interval=0))
    game = pyspiel.load_game("tic_tac_toe")
    for seat in (0, 1):
        bots = [as_bot(agent), pyspiel.make_uniform_random_bot(1 - seat, 3)]
        returns = evaluate_bots(game.new_initial_state(), bots if seat == 0 else bots[::-1], np.random.RandomState(0))
        assert sorted(returns) in ([-1.0, 1.0], [0.0, 0.0])
    sampled = as_bot(agent, temperature=1.0, seed=0)
    state = game.new_initial_state()
    moves = {sampled.step(state) for _ in range(50)}
    assert len(moves) > 1 and moves <= set(range(9))
    with pytest.raises(ConfigError, match="OpenSpiel"):
        as_bot(deepq.Agent((4,), 2, deepq.Config()))


def test_cli_eval_and_play(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    deepq.train(tiny(tmp_path, "run", total_steps=400, eval_interval=0, checkpoint_interval=0))
    assert main(["eval", str(tmp_path / "run"), "--episodes", "3", "--opponent", "perfect"]) == 0
    out = capsys.readouterr().out
    assert "vs perfect: as first player" in out and "0W" in out  # nobody beats the perfect player
    # A person plays first: bad input is re-asked, 'q' ends the session cleanly with a tally.
    monkeypatch.setattr("sys.stdin", io.StringIO("abc\n99\n4\nq\n"))
    assert main(["play", str(tmp_path / "run"), "--seat", "1"]) == 0
    out = capsys.readouterr().out
    assert "Not a legal move" in out and "No move 99" in out and "Tally" in out


# ---- learning ------------------------------------------------------------------------------------

@pytest.mark.slow  # ~100 s on 2 cores: `make test-slow`
def test_tictactoe_agent_never_loses_to_random_from_either_seat(tmp_path: Path) -> None:
    """The tictactoe preset, shortened: no loss in 200 games from each seat against uniform random."""
    from deepq.games.arena import arena, random_opponent

    cfg = deepq.preset("tictactoe", seed=0, total_steps=LEARN_STEPS, eps_decay_steps=LEARN_STEPS // 4,
                       eval_interval=0, checkpoint_interval=0, progress=False, run_dir=str(tmp_path / "ttt"))
    agent = deepq.train(cfg)
    result = arena("tic_tac_toe", lambda player: as_bot(agent), random_opponent("tic_tac_toe", 7), 200, seed=7)
    assert [s.losses for s in result.seats] == [0, 0], str(result)
    assert result.wins > 300, str(result)  # and it wins most games, from both seats


def test_cli_trains_any_openspiel_or_pettingzoo_game(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for env in ("openspiel:connect_four", "pettingzoo:tictactoe_v3"):
        args = ["train", env, "--total_steps", "300", "--learning_starts", "100", "--eval_interval", "300",
                "--eval_episodes", "1", "--progress", "false", "--run_dir", str(tmp_path / env.replace(":", "-"))]
        assert main(args) == 0
        assert "as first player" in capsys.readouterr().out
    assert main(["train", "openspiel:kuhn_poker"]) == 2
    assert "perfect information" in capsys.readouterr().err
