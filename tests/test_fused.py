"""The fast path (deepq/fused.py) is the same algorithm: bit-identical updates, same greedy actions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import deepq
from deepq.agent import Agent
from deepq.replay import ReplayMemory

COMBOS = list(itertools.product(["mse", "huber"], ["hard", "polyak", "none"], [False, True], [0.0, 0.5]))


def agents(**kw: object) -> tuple[Agent, Agent]:
    made = []
    for fused in (False, True):
        torch.manual_seed(0)
        cfg = deepq.Config(env="CartPole-v1", hidden_sizes=(32, 16), lr=1e-2, fused=fused, **kw)  # type: ignore[arg-type]
        made.append(Agent((4,), 3, cfg))
    return made[0], made[1]


def batches(n: int, game: bool = False) -> list[deepq.replay.Batch]:
    """Random transitions; game=True: self-play's discount −γ and legal masks of s' (all False at terminals)."""
    rng = np.random.default_rng(0)
    mem = ReplayMemory(256, (4,), gamma=-0.99 if game else 0.99, legal_actions=3 if game else 0)
    for _ in range(256):
        terminal = (rng.random(1) < 0.1).astype(np.float32)
        legal = (rng.random((1, 3)) < 0.5) & (terminal[:, None] == 0) if game else None
        mem.add(rng.normal(size=(1, 4)), rng.integers(3, size=1), rng.normal(size=1) * 3, rng.normal(size=(1, 4)),
                terminal, next_legal=legal)
    return [mem.sample(64, rng) for _ in range(n)]


@pytest.mark.parametrize(("loss", "target", "double", "clip", "game"),
                         [(*c, False) for c in COMBOS] + [("huber", "hard", d, 0.0, True) for d in (False, True)])
def test_fused_update_is_bit_identical_to_autograd(loss: str, target: str, double: bool, clip: float,
                                                   game: bool) -> None:
    plain, fused = agents(loss=loss, target=target, double=double, max_grad_norm=clip)
    assert fused._fused is not None and plain._fused is None
    for i, batch in enumerate(batches(30, game)):
        lp, lf = plain.update(batch), fused.update(batch)
        assert torch.equal(lp, lf), f"loss differs at update {i}"
        if target == "hard" and i % 10 == 9:
            plain.sync_target()
            fused.sync_target()
    for (name, a), b in zip(plain.online.state_dict().items(), fused.online.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    if target != "none":
        assert plain.target is not None and fused.target is not None
        for a, b in zip(plain.target.parameters(), fused.target.parameters(), strict=True):
            assert torch.equal(a, b)
    sp, sf = plain.optimizer.state_dict()["state"], fused.optimizer.state_dict()["state"]
    for k in sp:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sp[k][key], sf[k][key]), (k, key)


def test_numpy_acting_matches_torch() -> None:
    plain, fused = agents()
    for batch in batches(5):
        fused.update(batch)
        plain.update(batch)
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    assert fused._numpy is not None
    np.testing.assert_allclose(fused.q_values(obs), plain.q_values(obs), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.act(obs), plain.act(obs))
    assert isinstance(fused.act(obs[0]), int) and fused.q_values(obs[0]).shape == (3,)


def test_fused_agent_saves_loads_and_resumes(tmp_path: Path) -> None:
    cfg = deepq.Config(env="CartPole-v1", total_steps=1_500, learning_starts=200, eval_interval=0,
                       checkpoint_interval=500, progress=False, run_dir=str(tmp_path / "a"))
    agent = deepq.train(cfg)
    again = deepq.load(tmp_path / "a")
    obs = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.q_values(obs), again.q_values(obs))
    plain = deepq.load(tmp_path / "a")
    plain._numpy = None  # torch forward on the same weights
    np.testing.assert_allclose(plain.q_values(obs), again.q_values(obs), rtol=1e-5, atol=1e-6)
