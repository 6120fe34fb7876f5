"""The Rainbow flags on the one training loop: each trains, composes, checkpoints and resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import deepq
from deepq.agent import Agent
from deepq.core.networks import NoisyLinear, QNetwork
from deepq.core.replay import ReplayMemory

SMALL: dict[str, Any] = dict(env="CartPole-v1", total_steps=1_200, learning_starts=200, train_freq=2, batch_size=16,
                             buffer_size=1_000, hidden_sizes=(16, 16), eps_decay_steps=500, eval_interval=0,
                             checkpoint_interval=600, progress=False, lr=1e-3)
ALL: dict[str, Any] = dict(double=True, dueling=True, noisy=True, atoms=11, v_min=0.0, v_max=50.0, prioritized=True,
                           n_step=3)


@pytest.mark.parametrize("flags", [dict(dueling=True), dict(noisy=True), dict(atoms=11, v_min=0.0, v_max=50.0),
                                   dict(prioritized=True), dict(n_step=3), ALL], ids=str)
def test_each_flag_trains_and_resumes_exactly(tmp_path: Path, flags: dict[str, Any]) -> None:
    # extending a run to a larger total_steps re-spreads beta's annealing, so keep beta fixed here
    fixed_beta = {"per_beta": 1.0} if flags.get("prioritized") else {}
    cfg = deepq.Config(**{**SMALL, **flags, **fixed_beta, "run_dir": str(tmp_path / "a")})
    deepq.train(cfg.replace(total_steps=600))
    resumed = deepq.train(cfg, resume=tmp_path / "a")
    straight = deepq.train(cfg.replace(run_dir=str(tmp_path / "b")))
    for x, y in zip(resumed.online.state_dict().values(), straight.online.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    # n-step only changes the batch, so the fast path keeps it; the other pieces run on autograd
    assert (resumed.learner.fast is None) == (flags.keys() != {"n_step"})
    if flags.get("dueling") or flags.get("noisy") or flags.get("atoms", 1) > 1:
        assert isinstance(resumed.online, QNetwork)


def test_pixels_compose_with_n_step_and_prioritized_replay(tmp_path: Path) -> None:
    cfg = deepq.preset("minatar-breakout", total_steps=400, learning_starts=100, batch_size=8, buffer_size=500,
                       eval_interval=0, checkpoint_interval=0, progress=False, run_dir=str(tmp_path / "m"),
                       frame_stack=2, **ALL)
    agent = deepq.train(cfg)
    assert isinstance(agent.online, QNetwork) and agent.obs_shape == (2, 4, 10, 10)


def test_noisy_nets_replace_epsilon(tmp_path: Path) -> None:
    deepq.train(deepq.Config(**{**SMALL, "noisy": True, "total_steps": 300, "run_dir": str(tmp_path / "n")}))
    rows = [r.split(",") for r in (tmp_path / "n" / "metrics.csv").read_text().splitlines()[1:]]
    # uniform actions until learning starts (step 200), then no epsilon: the noise explores
    assert {r[4] for r in rows if r[4] and int(r[0]) < 200} == {"1.0"}
    assert {r[4] for r in rows if r[4] and int(r[0]) > 200} == {"0.0"}
    agent = Agent((4,), 2, deepq.Config(noisy=True))
    assert any(isinstance(m, NoisyLinear) for m in agent.online.modules())


def test_eps_with_noisy_keeps_the_epsilon_schedule(tmp_path: Path) -> None:
    cfg = deepq.Config(**{**SMALL, "noisy": True, "eps_with_noisy": True, "total_steps": 600, "eps_end": 0.1,
                          "run_dir": str(tmp_path / "n")})
    deepq.train(cfg)
    rows = [r.split(",") for r in (tmp_path / "n" / "metrics.csv").read_text().splitlines()[1:]]
    logged = [(int(r[0]), float(r[4])) for r in rows if r[4]]
    # linear 1 -> 0.1 over 500 steps, past learning_starts (200) too, then 0.1: the noise explores beside it
    assert logged and all(eps == pytest.approx(max(1.0 - 0.9 * step / 500, 0.1), abs=0.01) for step, eps in logged)
    assert any(200 < step < 500 for step, _ in logged) and any(step > 500 for step, _ in logged)


def fixed_batch(memory_rows: int = 64) -> Any:
    rng = np.random.default_rng(0)
    mem = ReplayMemory(memory_rows, (4,))
    mem.add(rng.normal(size=(memory_rows, 4)).astype(np.float32), rng.integers(2, size=memory_rows),
            rng.normal(size=memory_rows).astype(np.float32), rng.normal(size=(memory_rows, 4)).astype(np.float32),
            (rng.random(memory_rows) < 0.2))
    return mem.batch_slots(np.arange(memory_rows))


@pytest.mark.parametrize("flags", [dict(), dict(atoms=11, v_min=-3.0, v_max=3.0), dict(dueling=True)], ids=str)
def test_updates_on_a_fixed_batch_reduce_the_loss(flags: dict[str, Any]) -> None:
    torch.manual_seed(0)
    agent = Agent((4,), 2, deepq.Config(hidden_sizes=(32, 32), lr=1e-2, fused=False, **flags))  # target frozen
    batch = fixed_batch()
    first = float(agent.learner.update(batch).loss)
    for _ in range(200):
        last = float(agent.learner.update(batch).loss)
    # C51's cross-entropy bottoms out at the target distributions' entropy, so it falls less than a squared error
    assert last < (0.8 if agent.cfg.atoms > 1 else 0.5) * first


def test_importance_weights_scale_each_transitions_gradient() -> None:
    """With weights w, the loss is mean(w * per-transition loss): weights 2 on every row double the
    gradient step of plain SGD, and td_errors are |y - Q| per row."""
    batch = fixed_batch(8)
    grads = []
    for w in (None, torch.full((8,), 2.0)):
        torch.manual_seed(0)
        agent = Agent((4,), 2, deepq.Config(hidden_sizes=(8,), fused=False, prioritized=True))
        before = [p.clone() for p in agent.online.parameters()]
        agent.learner.optimizer = torch.optim.SGD(agent.online.parameters(), lr=0.1)
        td_errors = agent.learner.update(batch, w).td_errors
        grads.append([b - p.detach() for b, p in zip(before, agent.online.parameters(), strict=True)])
        assert td_errors.shape == (8,) and (td_errors >= 0).all()
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g2, 2 * g1)


@pytest.mark.slow  # ~45 s on 2 cores: `make test-slow`
def test_rainbow_preset_solves_cartpole(tmp_path: Path) -> None:
    """Learning threshold: the rainbow preset (all six components) reaches an evaluation of 475 within
    30,000 env steps on seed 1 (measured: 8,000; the cartpole preset: 14,000). Its agents are less steady
    on fresh episodes than the cartpole preset's (README: 358-500 across seeds), so that check is >= 400."""
    cfg = deepq.preset("rainbow", seed=1, total_steps=30_000, progress=False, checkpoint_interval=0,
                       run_dir=str(tmp_path / "r"))
    agent = deepq.train(cfg)
    rows = [r.split(",") for r in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]]
    assert any(r[6] and float(r[6]) >= 475 for r in rows)
    assert deepq.evaluate(agent, episodes=10, seed=12_345).mean >= 400
