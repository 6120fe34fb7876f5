"""target='mcts': the regression step, the training mode on a game and a clonable env, play-time search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyspiel
import pytest
import torch

import deepq
from deepq.errors import ConfigError
from deepq.games.bot import as_bot
from deepq.training.mcts import TargetMemory

FAST = dict(target="mcts", total_steps=400, learning_starts=50, mcts_simulations=16, mcts_episodes=4,
            train_freq=1, batch_size=32, buffer_size=1_000, hidden_sizes=(32, 32), eval_interval=200,
            eval_episodes=2, checkpoint_interval=100, progress=False)


def fast(tmp: Path, name: str, **kw: Any) -> deepq.Config:
    return deepq.Config(**{**FAST, "env": "openspiel:tic_tac_toe", "run_dir": str(tmp / name), **kw})


def test_regression_moves_searched_q_toward_targets_and_leaves_the_rest() -> None:
    torch.manual_seed(0)
    agent = deepq.Agent((6,), 3, deepq.Config(target="mcts", hidden_sizes=(16,), lr=1e-2))
    obs = torch.randn(32, 6)
    targets = torch.randn(32, 3)
    searched = torch.zeros(32, 3, dtype=torch.bool)
    searched[:, :2] = True  # action 2 was never searched: it must get no target and no gradient
    head_w, head_b = agent.online.net[-1].weight, agent.online.net[-1].bias  # type: ignore[index]
    w2, b2 = head_w[2].detach().clone(), head_b[2].detach().clone()
    losses = [float(agent.learner.fit_targets(obs, targets, searched).loss) for _ in range(100)]
    assert losses[-1] < 0.5 * losses[0]
    assert torch.equal(head_w[2], w2) and torch.equal(head_b[2], b2)
    with torch.no_grad():
        err_before = ((targets[:, :2]) ** 2).mean()
        err_after = ((agent.online(obs)[:, :2] - targets[:, :2]) ** 2).mean()
    assert err_after < err_before


def test_target_memory_keeps_nan_out_of_targets() -> None:
    mem = TargetMemory(4, (2,), 3)
    for i in range(6):  # wraps: the oldest two are overwritten
        mem.add(np.full(2, i, np.float32), np.array([i, np.nan, -i], np.float32))
    assert mem.size == 4 and sorted(mem.obs[:, 0]) == [2, 3, 4, 5]
    assert not mem.searched[:, 1].any() and (mem.targets[:, 1] == 0).all() and mem.searched[:, [0, 2]].all()


def test_mcts_mode_on_a_game_is_deterministic_and_resumes(tmp_path: Path) -> None:
    a = deepq.train(fast(tmp_path, "a"))
    b = deepq.train(fast(tmp_path, "b"))
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    assert a.target is None  # the search gives the targets: no target network
    deepq.train(fast(tmp_path, "c", total_steps=200))
    c = deepq.train(fast(tmp_path, "c"), resume=tmp_path / "c")
    for k, v in a.online.state_dict().items():
        assert torch.equal(v, b.online.state_dict()[k]) and torch.equal(v, c.online.state_dict()[k])


def test_mcts_mode_on_cartpole_and_errors(tmp_path: Path) -> None:
    agent = deepq.train(fast(tmp_path, "cp", env="CartPole-v1", total_steps=300))
    assert deepq.evaluate(agent, episodes=2).mean > 0
    with pytest.raises(ConfigError, match="cannot be cloned"):
        deepq.train(fast(tmp_path, "ll", env="LunarLander-v3"))
    with pytest.raises(ConfigError, match="target='mcts'"):
        fast(tmp_path, "x", atoms=51).validate()


def test_search_augmented_bot_finds_a_one_move_win(tmp_path: Path) -> None:
    agent = deepq.train(fast(tmp_path, "bot", target="hard", total_steps=200, eval_interval=0))
    game = pyspiel.load_game("tic_tac_toe")
    state = game.new_initial_state()
    for a in (0, 3, 1, 4):  # X on 0 and 1, O on 3 and 4; X to move: 2 wins at once
        state.apply_action(a)
    bot = as_bot(agent, mcts_simulations=200)
    assert bot.step(state) == 2
    assert str(state) == str(game.new_initial_state().child(0).child(3).child(1).child(4))  # unchanged


@pytest.mark.parametrize("target", ["hard", "mcts"])
def test_max_minutes_stops_both_loops(tmp_path: Path, target: str) -> None:
    import time

    t = time.monotonic()
    agent = deepq.train(fast(tmp_path, target, target=target, total_steps=10**9, max_minutes=0.02, eval_interval=0,
                             checkpoint_interval=0))
    assert time.monotonic() - t < 30 and (Path(agent.run_dir) / "agent.pt").is_file()  # type: ignore[attr-defined]


def test_mcts_mode_stops_on_a_non_finite_loss_with_the_resume_hint(tmp_path: Path) -> None:
    """The one training loop gives target='mcts' the same NaN handling as the TD mode."""
    # A checkpoint (after the first round of episodes) precedes the first update, so resuming from it can work.
    cfg = fast(tmp_path, "nan", lr=1e12, eval_interval=0, checkpoint_interval=50, total_steps=4_000,
               learning_starts=100)
    with pytest.raises(deepq.NonFiniteLossError, match=r"(?s)MCTS regression loss is (nan|inf).*--resume"):
        deepq.train(cfg)
    assert (tmp_path / "nan" / "config.json").is_file()
