"""The fast path (deepq/core/fast_path.py) is the same algorithm as the reference update: the NumPy update gives
the same updates to float rounding and acts greedily as the torch forward does; it is chosen in one place
(`supports`) and refuses what it does not do."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepq
from deepq.agent import Agent
from deepq.components import learner_config, network_config
from deepq.core import fast_path
from deepq.core.fast_path import NumpyMLPUpdate
from deepq.core.replay import ReplayMemory

COMBOS = list(itertools.product(["mse", "huber"], ["hard", "polyak", "none"], [False, True], [0.0, 0.5]))


def agents(**kw: object) -> tuple[Agent, Agent]:
    """Two agents with the same initial weights: the autograd reference, and one on the NumPy fast path."""
    made = []
    for fused in (False, True):
        torch.manual_seed(0)
        cfg = deepq.Config(env="CartPole-v1", hidden_sizes=(32, 16), lr=1e-2, fused=fused, **kw)  # type: ignore[arg-type]
        made.append(Agent((4,), 3, cfg))
    plain, fast = made
    assert plain.learner.fast is None and isinstance(fast.learner.fast, NumpyMLPUpdate)
    return plain, fast


def batches(n: int, game: bool = False) -> list[deepq.core.replay.Batch]:
    """Random transitions; game=True: self-play's discount −γ and legal masks of s' (all False at terminals)."""
    rng = np.random.default_rng(0)
    mem = ReplayMemory(256, (4,), gamma=-0.99 if game else 0.99, legal_actions=3 if game else 0)
    for _ in range(256):
        terminal = (rng.random(1) < 0.1).astype(np.float32)
        legal = (rng.random((1, 3)) < 0.5) & (terminal[:, None] == 0) if game else None
        mem.add(rng.normal(size=(1, 4)), rng.integers(3, size=1), rng.normal(size=1) * 3, rng.normal(size=(1, 4)),
                terminal, next_legal=legal)
    return [mem.sample(64, rng) for _ in range(n)]


CASES = [(*c, False) for c in COMBOS] + [("huber", "hard", d, 0.0, True) for d in (False, True)]


def train_side_by_side(plain: Agent, fast: Agent, target: str, game: bool, same: Any) -> None:
    """30 updates on each agent (target synced every 10); `same(a, b, what)` compares every result, the
    per-transition |TD errors| included."""
    for i, batch in enumerate(batches(30, game)):
        a, b = plain.learner.update(batch), fast.learner.update(batch)
        same(a.loss, b.loss, f"loss at update {i}")
        same(a.td_errors, b.td_errors, f"TD errors at update {i}")
        if target == "hard" and i % 10 == 9:
            plain.learner.sync_target()
            fast.learner.sync_target()
    for (name, a), b in zip(plain.online.state_dict().items(), fast.online.state_dict().values(), strict=True):
        same(a, b, name)
    if target != "none":
        assert plain.target is not None and fast.target is not None
        for a, b in zip(plain.target.parameters(), fast.target.parameters(), strict=True):
            same(a, b, "target")
    sp, sf = plain.optimizer.state_dict()["state"], fast.optimizer.state_dict()["state"]
    for k in sp:
        for key in ("step", "exp_avg", "exp_avg_sq"):
            same(sp[k][key], sf[k][key], (k, key))


@pytest.mark.parametrize(("loss", "target", "double", "clip", "game"), CASES)
def test_numpy_update_matches_autograd(loss: str, target: str, double: bool, clip: float, game: bool) -> None:
    """Equal to float rounding after 30 updates at lr 1e-2 (OpenBLAS sums in another order than torch)."""
    plain, fast = agents(loss=loss, target=target, double=double, max_grad_norm=clip)

    def same(a: torch.Tensor, b: torch.Tensor, what: object) -> None:
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5, msg=lambda m: f"{what}: {m}")
    train_side_by_side(plain, fast, target, game, same)


def test_numpy_acting_matches_torch() -> None:
    plain, fused = agents()
    for batch in batches(5):
        fused.learner.update(batch)
        plain.learner.update(batch)
    obs = np.random.default_rng(1).normal(size=(500, 4)).astype(np.float32)
    assert fused.policy._numpy is not None and plain.policy._numpy is None
    np.testing.assert_allclose(fused.q_values(obs), plain.q_values(obs), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.act(obs), plain.act(obs))
    for one in obs[:20]:  # one observation at a time: the matrix-vector path
        np.testing.assert_allclose(fused.q_values(one), plain.q_values(one), rtol=1e-5, atol=1e-5)
        assert fused.act(one) == plain.act(one)
    assert isinstance(fused.act(obs[0]), int) and fused.q_values(obs[0]).shape == (3,)


def test_fused_agent_saves_loads_and_resumes(tmp_path: Path) -> None:
    cfg = deepq.Config(env="CartPole-v1", total_steps=1_500, learning_starts=200, eval_interval=0,
                       checkpoint_interval=500, progress=False, run_dir=str(tmp_path / "a"))
    agent = deepq.train(cfg)
    again = deepq.load(tmp_path / "a")
    obs = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(agent.q_values(obs), again.q_values(obs))
    plain = deepq.load(tmp_path / "a")
    plain.policy._numpy = None  # torch forward on the same weights
    np.testing.assert_allclose(plain.q_values(obs), again.q_values(obs), rtol=1e-5, atol=1e-6)


def test_training_sets_blas_threads(tmp_path: Path) -> None:
    """The NumPy update's BLAS runs on Config.threads threads, as torch does (one by default)."""
    from threadpoolctl import threadpool_info, threadpool_limits

    with threadpool_limits(2, user_api="blas"):  # restored afterwards for the other tests
        deepq.train(deepq.Config(env="CartPole-v1", total_steps=300, learning_starts=100, eval_interval=0,
                                 checkpoint_interval=0, progress=False, run_dir=str(tmp_path / "r"), threads=1))
        blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
        assert blas and all(i["num_threads"] == 1 for i in blas)
        assert torch.get_num_threads() == 1


@pytest.mark.parametrize(("change", "fast"), [
    ({}, True), ({"fused": False}, False), ({"prioritized": True}, False), ({"dueling": True}, False),
    ({"noisy": True}, False), ({"atoms": 51}, False), ({"optimizer": "rmsprop"}, False),
    ({"arch": "small_cnn"}, False), ({"n_step": 3, "double": True, "target": "polyak"}, True)])
def test_the_fast_path_is_chosen_in_one_place(change: dict[str, object], fast: bool) -> None:
    cfg = deepq.Config(env="CartPole-v1", **change)  # type: ignore[arg-type]
    shape = (4, 10, 10) if cfg.arch == "small_cnn" else (4,)
    learn, net = learner_config(cfg), network_config(cfg, "small_cnn" if cfg.arch == "small_cnn" else "mlp")
    assert fast_path.supports(learn, net, torch.device("cpu")) is fast
    assert fast_path.supports(learn, net, torch.device("meta")) is False  # CPU only: elsewhere the reference runs
    agent = Agent(shape, 3, cfg)
    assert (agent.learner.fast is not None) is fast
    # acting skips the module where a fast path runs; the small CNN's TD step is fast_mlp's, and so is its acting
    assert (agent.policy._numpy is not None) is (fast or cfg.arch == "small_cnn")


def test_the_fast_path_refuses_importance_weights_rather_than_ignoring_them() -> None:
    _, fast = agents()
    batch = batches(1)[0]
    assert fast.learner.fast is not None
    with pytest.raises(ValueError, match="does not weight transitions"):
        fast.learner.update(batch, torch.ones(len(batch.actions)))
