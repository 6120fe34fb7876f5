"""cfg.mirror: PQN self-play also learns from each position's left-right mirror image. The mirror of a real
OpenSpiel game's position is the position of the mirrored game (Connect Four, tic-tac-toe), moves and legal moves
included; a run learns from twice the samples, the same seed gives the same run; where it does not apply, one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import deepq
from deepq.errors import ConfigError
from deepq.games.adapters import OpenSpielGame
from deepq.games.kind import GameKind
from deepq.training import pqn


@pytest.mark.parametrize(("game", "mirrored"), [
    ("connect_four", lambda a: 6 - a),  # moves are columns
    ("tic_tac_toe", lambda a: a - a % 3 + 2 - a % 3),  # moves are cells r·3 + c
])
def test_the_mirror_of_a_position_is_the_position_of_the_mirrored_game(game: str, mirrored: object) -> None:
    kind = GameKind(f"openspiel:{game}")
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = OpenSpielGame(game), OpenSpielGame(game)
        obs, mirror_obs, moves, legal, mirror_legal = [], [], [], [], []
        while not a.is_terminal:
            move = int(rng.choice(np.flatnonzero(a.legal_mask())))
            obs.append(a.observation())
            mirror_obs.append(b.observation())
            legal.append(a.legal_mask())
            mirror_legal.append(b.legal_mask())
            moves.append(move)
            a.step(move)
            b.step(mirrored(move))  # type: ignore[operator]
        assert b.is_terminal and a.returns() == b.returns()  # the mirrored game ends the same way
        got_obs, got_moves = kind.mirror(torch.from_numpy(np.stack(obs)), torch.tensor(moves))
        assert torch.equal(got_obs, torch.from_numpy(np.stack(mirror_obs)))
        assert got_moves.tolist() == [mirrored(m) for m in moves]  # type: ignore[operator]
        every_move = kind.mirror(got_obs, torch.arange(len(legal[0])))[1]  # (A,) each move's mirror
        assert np.array_equal(np.stack(legal)[:, every_move.numpy()], np.stack(mirror_legal))


def _cfg(tmp: Path, name: str, **kw: object) -> deepq.Config:
    return deepq.preset("connect4-pqn", hidden_sizes=(64, 64), num_envs=16, rollout_len=8, minibatches=4,
                        total_steps=1_024, eval_interval=0, eval_episodes=2, checkpoint_interval=512, progress=False,
                        eval_opponent="random", run_dir=str(tmp / name), **kw)  # type: ignore[arg-type]


def test_a_mirrored_run_learns_from_twice_the_samples_and_is_reproducible(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    prepare = pqn.Rollouts._prepare

    def counted(self: pqn.Rollouts) -> None:
        prepare(self)
        assert self.data is not None
        obs, actions, returns = self.data
        sizes.append(len(obs))
        if self.mirror is None:
            return
        half = len(obs) // 2  # the second half: the first's mirror images, moves and returns
        assert torch.equal(obs[half:], obs[:half].flip(-1)) and torch.equal(actions[half:], 6 - actions[:half])
        assert torch.equal(returns[half:], returns[:half])

    monkeypatch.setattr(pqn.Rollouts, "_prepare", counted)
    a = deepq.train(_cfg(tmp_path, "a", mirror=True))
    assert set(sizes) == {2 * 16 * 8}
    b = deepq.train(_cfg(tmp_path, "b", mirror=True))
    assert (tmp_path / "a" / "metrics.csv").read_text() == (tmp_path / "b" / "metrics.csv").read_text()
    assert all(torch.equal(x, y) for x, y in zip(a.online.parameters(), b.online.parameters(), strict=True))
    sizes.clear()
    c = deepq.train(_cfg(tmp_path, "c", mirror=False))
    assert set(sizes) == {16 * 8}
    assert not all(torch.equal(x, y) for x, y in zip(a.online.parameters(), c.online.parameters(), strict=True))


@pytest.mark.parametrize(("fields", "says"), [
    (dict(env="CartPole-v1", target="pqn"), "mirrors two-player board games"),
    (dict(env="openspiel:connect_four", target="hard"), "needs target='pqn'"),
    (dict(env="openspiel:breakthrough", target="pqn"), "needs target='pqn' and one of openspiel:connect_four"),
], ids=["not-a-game", "not-pqn", "no-mirror"])
def test_where_mirror_does_not_apply_it_is_one_line(tmp_path: Path, fields: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        deepq.train(deepq.Config(mirror=True, total_steps=64, progress=False, run_dir=str(tmp_path / "x"),
                                 **fields))  # type: ignore[arg-type]
