"""The compiled swap-in (deepq/core/compiled.py, deepq/core/csrc/lambda_update.cpp) against LambdaUpdate's Python
body: bit for bit the same losses, TD errors, weights and optimizer state, step after step, on every network and
setting the fast path takes (MLP with and without LayerNorm, the small CNN on MinAtar grids and Connect Four boards,
RAdam and Adam, MSE and Huber, the gradient norm clipped, DQN's TD step); and what happens where it cannot be built."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import deepq
from deepq.agent import Agent
from deepq.core import compiled, fast_mlp, fast_q
from deepq.core.replay import Batch

pytestmark = pytest.mark.skipif(shutil.which("c++") is None or shutil.which("ninja") is None,
                                reason="no C++ compiler or ninja: the Python body runs (tested everywhere else)")


def _pair(cfg: deepq.Config, obs_shape: tuple[int, ...], n_actions: int) -> tuple[Agent, Agent]:
    """Two agents from the same seed: one takes the compiled step, the other LambdaUpdate's Python body."""
    torch.manual_seed(0)
    fast = Agent(obs_shape, n_actions, cfg)
    torch.manual_seed(0)
    python = Agent(obs_shape, n_actions, cfg)
    assert compiled.kernels() is not None, compiled.unavailable()  # this machine has a compiler: it must build
    update = python.learner.fast_returns
    assert update is not None and fast.learner.fast_returns is not None and fast.learner.fast_returns.compiled
    update.compiled, update._radam = None, fast_mlp.radam_step  # the Python body, as on a machine without one
    update._rmsprop_step = fast_mlp.rmsprop_step
    return fast, python


def _same(fast: Agent, python: Agent) -> None:
    for (name, p), q in zip(fast.online.named_parameters(), python.online.parameters(), strict=True):
        assert torch.equal(p, q), name
    state, other = fast.optimizer.state_dict()["state"], python.optimizer.state_dict()["state"]
    for k in state:
        assert state[k].keys() == other[k].keys()
        for key in state[k]:  # exp_avg, exp_avg_sq, step; RMSProp's square_avg, grad_avg, momentum_buffer, step
            assert torch.equal(state[k][key], other[k][key]), (k, key)


@pytest.mark.parametrize(("preset", "obs_shape", "n_actions", "overrides", "scale"), [
    ("cartpole-pqn", (4,), 2, dict(), 1.0),  # PQN's own: RAdam, MSE, LayerNorm
    ("cartpole-pqn", (4,), 2, dict(), 300.0),  # large errors: the gradient norm clipped
    ("cartpole-pqn", (4,), 2, dict(optimizer="adam", loss="huber"), 5.0),
    ("cartpole-pqn", (4,), 2, dict(layer_norm=False, max_grad_norm=0.0), 5.0),
    ("cartpole-pqn", (4,), 2, dict(optimizer="rmsprop"), 5.0),  # the MinAtar presets' centered RMSProp
    ("minatar-breakout-pqn", (4, 10, 10), 6, dict(), 1.0),  # the small CNN on MinAtar grids
    ("minatar-breakout-pqn", (3, 6, 7), 7, dict(), 2.0),  # ... on Connect Four boards
    ("minatar-breakout-pqn", (4, 10, 10), 6, dict(layer_norm=False, loss="huber"), 2.0),
], ids=["pqn", "clipped", "adam-huber", "no-layer-norm", "rmsprop", "cnn-minatar", "cnn-connect4",
        "cnn-no-norm-huber"])
def test_the_compiled_step_is_the_python_step_bit_for_bit(preset: str, obs_shape: tuple[int, ...], n_actions: int,
                                                          overrides: dict[str, object], scale: float) -> None:
    cfg = deepq.preset(preset, lr=1e-2, lr_decay=False, **overrides)  # type: ignore[arg-type]
    fast, python = _pair(cfg, obs_shape, n_actions)
    rng = np.random.default_rng(3)
    for _ in range(25):  # past RAdam's first steps (ρ_t ≤ 5) into its rectified ones
        obs = torch.from_numpy((rng.random((64, *obs_shape)) < 0.3).astype(np.float32) if len(obs_shape) > 1
                               else rng.normal(size=(64, *obs_shape)).astype(np.float32))
        actions = torch.from_numpy(rng.integers(0, n_actions, 64))
        returns = torch.from_numpy((rng.normal(size=64) * scale).astype(np.float32))
        got, want = fast.learner.fit_returns(obs, actions, returns), python.learner.fit_returns(obs, actions, returns)
        assert torch.equal(got.loss, want.loss) and torch.equal(got.td_errors, want.td_errors)
    _same(fast, python)


def test_dqns_td_step_compiled_is_the_python_step() -> None:
    """The connect4 preset's update (masked, negated targets, Double DQN, Huber) through the compiled step."""
    cfg = deepq.preset("connect4", lr=1e-2, max_grad_norm=10.0)
    fast, python = _pair(cfg, (3, 6, 7), 7)
    rng = np.random.default_rng(6)
    for _ in range(15):
        boards = [torch.from_numpy((rng.random((64, 3, 6, 7)) < 0.3).astype(np.float32)) for _ in range(2)]
        batch = Batch(boards[0], torch.from_numpy(rng.integers(0, 7, 64)),
                      torch.from_numpy(rng.choice([-1.0, 0.0, 1.0], 64).astype(np.float32)), boards[1],
                      torch.zeros(64, dtype=torch.bool),
                      torch.from_numpy(np.where(rng.random(64) < 0.2, 0.0, -0.99).astype(np.float32)),
                      torch.from_numpy(rng.random((64, 7)) < 0.7))
        got, want = fast.learner.update(batch), python.learner.update(batch)
        assert torch.equal(got.loss, want.loss) and torch.equal(got.td_errors, want.td_errors)
    _same(fast, python)


@pytest.mark.parametrize(("preset", "obs_shape", "n_actions", "overrides"), [
    ("cartpole-pqn", (4,), 2, dict()),  # 256-256 with LayerNorm
    ("cartpole-pqn", (4,), 2, dict(layer_norm=False)),
    ("connect4-pqn", (3, 6, 7), 7, dict()),  # 512x3 with LayerNorm, on boards
], ids=["layer-norm", "plain", "connect4-boards"])
def test_acting_batches_take_the_compiled_forward_the_same_numbers(
        preset: str, obs_shape: tuple[int, ...], n_actions: int, overrides: dict[str, object]) -> None:
    """The policy's batches (NumpyMLP._batch) through csrc's Net.q: the Q values of the Python loop and of the
    module itself, bit for bit, before and after updates move the weights (Net holds the parameters, not copies)."""
    cfg = deepq.preset(preset, lr=1e-2, lr_decay=False, **overrides)  # type: ignore[arg-type]
    fast, _ = _pair(cfg, obs_shape, n_actions)
    numpy_q = fast.policy._numpy
    assert numpy_q is not None and numpy_q.compiled is not None
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = torch.from_numpy(rng.normal(size=(128, *obs_shape)).astype(np.float32))  # a batch (plain MLPs: 128+)
        rows = x.reshape(len(x), -1)  # (B, D): as q_values hands them over
        got = numpy_q._batch(rows)
        numpy_q.compiled, kept = None, numpy_q.compiled
        python = numpy_q._batch(rows)  # the loop in Python, as on a machine without a compiler
        numpy_q.compiled = kept
        with torch.inference_mode():
            module = fast.online(x)
        assert torch.equal(got, python) and torch.equal(got, module)
        assert np.array_equal(fast.policy.q_values(x.numpy()), got.numpy())
        fast.learner.fit_returns(x, torch.from_numpy(rng.integers(0, n_actions, 128)),
                                 torch.from_numpy(rng.normal(size=128).astype(np.float32)))


@pytest.mark.parametrize(("preset", "obs_shape", "n_actions", "overrides"), [
    ("minatar-breakout-pqn", (4, 10, 10), 6, dict()),  # the small CNN with LayerNorm, MinAtar grids (uint8)
    ("minatar-breakout", (4, 10, 10), 6, dict()),  # DQN's: no LayerNorm, RMSProp, one env (one observation)
    ("minatar-breakout-pqn", (3, 6, 7), 7, dict()),  # on Connect Four boards
], ids=["pqn-minatar", "dqn-minatar", "connect4-boards"])
def test_the_small_cnn_acts_through_the_compiled_forward_the_modules_numbers(
        preset: str, obs_shape: tuple[int, ...], n_actions: int, overrides: dict[str, object]) -> None:
    """CompiledQ (csrc's Net.q over the convolution and the dense layers) against the module itself, bit for bit:
    batches and one observation, before and after updates move the weights; the module where it cannot be built."""
    cfg = deepq.preset(preset, lr=1e-2, lr_decay=False, **overrides)  # type: ignore[arg-type]
    torch.manual_seed(0)
    agent = Agent(obs_shape, n_actions, cfg)
    q = agent.policy._numpy
    assert isinstance(q, fast_q.CompiledQ) and q.compiled is not None
    rng = np.random.default_rng(8)
    for _ in range(3):
        grids = (rng.random((32, *obs_shape)) < 0.3).astype(np.uint8)
        with torch.inference_mode():
            module = agent.online(torch.from_numpy(grids)).numpy()
            one = agent.online(torch.from_numpy(grids[:1])).numpy()[0]  # a batch of one: its own products
        assert np.array_equal(agent.policy.q_values(grids), module)
        assert np.array_equal(agent.policy.q_values(grids[0]), one)  # one observation, (A,)
        q.compiled, kept = None, q.compiled  # as on a machine without a compiler: the module
        assert np.array_equal(agent.policy.q_values(grids), module)
        q.compiled = kept
        obs, actions = torch.from_numpy(grids.astype(np.float32)), torch.from_numpy(rng.integers(0, n_actions, 32))
        if cfg.target == "pqn":
            agent.learner.fit_returns(obs, actions, torch.from_numpy(rng.normal(size=32).astype(np.float32)))
        else:
            agent.learner.update(Batch(obs, actions, torch.ones(32), obs, torch.zeros(32, dtype=torch.bool),
                                       torch.full((32,), 0.99), None))


def test_a_non_finite_loss_raises_and_leaves_the_weights() -> None:
    cfg = deepq.preset("cartpole-pqn")
    fast, _ = _pair(cfg, (4,), 2)
    before = [p.detach().clone() for p in fast.online.parameters()]
    obs, actions = torch.zeros(8, 4), torch.zeros(8, dtype=torch.long)
    with pytest.raises(deepq.errors.NonFiniteLossError, match="λ-return loss is"):
        fast.learner.fit_returns(obs, actions, torch.full((8,), float("nan")))
    assert all(torch.equal(p, q) for p, q in zip(fast.online.parameters(), before, strict=True))


def _run(code: str, env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         timeout=300, check=True)
    return out.stdout.strip()


def test_turned_off_the_python_body_runs() -> None:
    code = ("import deepq; from deepq.agent import Agent; from deepq.core import compiled\n"
            "a = Agent((4,), 2, deepq.preset('cartpole-pqn'))\n"
            "print(a.learner.fast_returns.compiled is None, compiled.unavailable())")
    assert _run(code, {"DEEPQ_COMPILED": "0"}) == "True DEEPQ_COMPILED=0"


def test_a_failed_build_is_said_once_and_not_retried(tmp_path: Path) -> None:
    """A source that does not compile (as on a machine whose compiler cannot build it): None with the reason, and
    the next process does not try again until the marker is deleted."""
    broken = tmp_path / "lambda_update.cpp"
    broken.write_text("#include <torch/extension.h>\nthis is not C++;\n")
    code = ("import pathlib, time; from deepq.core import compiled\n"
            f"compiled.SOURCE = pathlib.Path({str(broken)!r})\n"
            "t = time.perf_counter(); m = compiled.kernels()\n"
            "print(m is None, round(time.perf_counter() - t, 1), compiled.unavailable())")
    env = {"TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    first = _run(code, env).split(" ", 2)
    assert first[0] == "True" and "Error building extension" in first[2]
    second = _run(code, env).split(" ", 2)
    assert second[0] == "True" and float(second[1]) < 1.0 and "delete" in second[2] and "to try again" in second[2]
