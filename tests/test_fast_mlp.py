"""PQN's fast path (deepq/core/fast_mlp.py) against the reference: the same λ-return updates as autograd's, step for
step, with LayerNorm, RAdam or Adam, MSE or Huber, the gradient norm clipped; NumPy Q values equal to the network's;
and `supports` choosing it only where it applies."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import deepq
from deepq.agent import Agent
from deepq.components import learner_config, network_config
from deepq.core import fast_mlp, fast_q
from deepq.core.fast_mlp import radam_step
from deepq.core.networks import resolve_arch

CPU = torch.device("cpu")


def _pair(lr: float = 1e-2, **overrides: object) -> tuple[Agent, Agent]:
    """lr 1e-2 (not PQN's 1e-4): steps large against float rounding, so a wrong term shows in the steps taken."""
    cfg = deepq.preset("cartpole-pqn", hidden_sizes=(32, 24), lr=lr, lr_decay=False, **overrides)  # type: ignore[arg-type]
    torch.manual_seed(0)
    fast = Agent((4,), 2, cfg)
    torch.manual_seed(0)
    reference = Agent((4,), 2, cfg.replace(fused=False))
    return fast, reference


def _batch(rng: np.random.Generator, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    obs = torch.from_numpy(rng.normal(size=(64, 4)).astype(np.float32))
    actions = torch.from_numpy(rng.integers(0, 2, 64))
    returns = torch.from_numpy((rng.normal(size=64) * scale).astype(np.float32))
    return obs, actions, returns


@pytest.mark.parametrize(("overrides", "scale"), [
    (dict(), 1.0),  # RAdam, MSE, LayerNorm: PQN's own settings
    (dict(), 300.0),  # large errors: the gradient norm is clipped (max_grad_norm 10)
    (dict(optimizer="adam", loss="huber"), 5.0),
    (dict(layer_norm=False, max_grad_norm=0.0), 5.0),
    (dict(optimizer="rmsprop", lr=1e-3), 1.0),  # deepq's centered RMSProp with momentum, over the flat buffers
], ids=["pqn", "clipped", "adam-huber", "no-layer-norm", "rmsprop"])
def test_the_fast_update_takes_the_reference_steps(overrides: dict[str, object], scale: float) -> None:
    fast, reference = _pair(**overrides)
    assert isinstance(fast.learner.fast_returns, fast_mlp.LambdaUpdate) and reference.learner.fast_returns is None
    start = [p.detach().clone() for p in reference.online.parameters()]
    rng = np.random.default_rng(1)
    for _ in range(30):  # past RAdam's first steps (ρ_t ≤ 5: no adaptive rate yet) into its rectified ones
        batch = _batch(rng, scale)
        got, want = fast.learner.fit_returns(*batch), reference.learner.fit_returns(*batch)
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.td_errors, want.td_errors, rtol=1e-5, atol=1e-5)
    for (name, p), q, p0 in zip(fast.online.named_parameters(), reference.online.parameters(), start, strict=True):
        moved = q.detach() - p0  # what the 30 reference steps changed (~0.1): the fast path's must be that
        torch.testing.assert_close(p.detach() - p0, moved, rtol=1e-3, atol=1e-5, msg=name)
    steps = {float(s["step"]) for s in fast.optimizer.state_dict()["state"].values()}
    assert steps == {30.0}  # the optimizer's own state, in torch's format: checkpoints are unchanged


@pytest.mark.parametrize(("obs_shape", "n_actions", "two_player", "layer_norm"), [
    ((4, 10, 10), 6, False, True),  # MinAtar grids (uint8), the PQN preset's small CNN
    ((3, 6, 7), 7, True, True),  # Connect Four boards
    ((4, 10, 10), 6, False, False),
], ids=["minatar", "connect4", "minatar-no-layer-norm"])
def test_the_small_cnn_takes_the_reference_steps(obs_shape: tuple[int, ...], n_actions: int, two_player: bool,
                                                  layer_norm: bool) -> None:
    cfg = deepq.preset("minatar-breakout-pqn", arch="small_cnn", lr=1e-2, lr_decay=False, layer_norm=layer_norm)
    torch.manual_seed(0)
    fast = Agent(obs_shape, n_actions, cfg)
    torch.manual_seed(0)
    reference = Agent(obs_shape, n_actions, cfg.replace(fused=False))
    assert fast.learner.fast_returns is not None and fast.learner.fast_returns.conv is not None
    assert isinstance(fast.policy._numpy, fast_q.CompiledQ)  # acting: the compiled forward (or the module)
    assert reference.policy._numpy is None and reference.learner.fast_returns is None  # the torch module
    start = [p.detach().clone() for p in reference.online.parameters()]
    rng = np.random.default_rng(5)
    for _ in range(20):
        obs = torch.from_numpy((rng.random((64, *obs_shape)) < 0.3).astype(np.uint8 if not two_player else np.float32))
        batch = (obs, torch.from_numpy(rng.integers(0, n_actions, 64)), torch.from_numpy(rng.normal(size=64)
                                                                                         .astype(np.float32)))
        got, want = fast.learner.fit_returns(*batch), reference.learner.fit_returns(*batch)
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-5, atol=1e-6)
    for (name, p), q, p0 in zip(fast.online.named_parameters(), reference.online.parameters(), start, strict=True):
        torch.testing.assert_close(p.detach() - p0, q.detach() - p0, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize("optimizer", ["radam", "rmsprop"])
def test_a_checkpoint_of_the_fast_path_resumes_on_the_reference_and_back(optimizer: str) -> None:
    fast, reference = _pair(lr=1e-4, optimizer=optimizer)
    rng = np.random.default_rng(2)
    for _ in range(10):
        fast.learner.fit_returns(*_batch(rng, 1.0))
    reference.load_state_dict(copy.deepcopy(fast.state_dict()))  # as a checkpoint file would: no shared tensors
    for _ in range(10):
        batch = _batch(rng, 1.0)
        fast.learner.fit_returns(*batch)
        reference.learner.fit_returns(*batch)
    for p, q in zip(fast.online.parameters(), reference.online.parameters(), strict=True):  # rounding: ~1e-6
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer_norm", [True, False])
def test_numpy_q_values_are_the_networks(layer_norm: bool) -> None:
    """Every path: one observation, a small batch (NumPy for a plain MLP), 128 rows and more (torch's kernels)."""
    fast, _ = _pair(layer_norm=layer_norm)
    assert fast.policy._numpy is not None
    obs = np.random.default_rng(3).normal(size=(200, 4)).astype(np.float32) * 3
    with torch.no_grad():
        want = fast.online(torch.from_numpy(obs)).numpy()
    for rows in (1, 8, 200):
        np.testing.assert_allclose(fast.q_values(obs[:rows]), want[:rows], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fast.q_values(obs[0]), want[0], rtol=1e-5, atol=1e-5)  # one observation, (A,)


def test_radam_step_is_torchs_radam() -> None:
    rng = np.random.default_rng(4)
    param = torch.from_numpy(rng.normal(size=100).astype(np.float32))
    reference = param.clone().requires_grad_(True)
    optimizer = torch.optim.RAdam([reference], lr=1e-2)
    m, v = torch.zeros(100), torch.zeros(100)
    for t in range(1, 13):  # the first steps (ρ_t ≤ 5) and the rectified ones after
        grad = torch.from_numpy(rng.normal(size=100).astype(np.float32))
        reference.grad = grad.clone()
        optimizer.step()
        radam_step(param, grad, m, v, t, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8)
        torch.testing.assert_close(param, reference.detach(), rtol=1e-5, atol=1e-7)


def supports(cfg: deepq.Config, obs_shape: tuple[int, ...], device: torch.device) -> bool:
    """fast_mlp.supports for cfg's own small configs (its arch resolved for the observation shape)."""
    return fast_mlp.supports(learner_config(cfg), network_config(cfg, resolve_arch(obs_shape, cfg.arch)), device)


def test_it_runs_only_where_it_applies() -> None:
    pqn = deepq.preset("cartpole-pqn")
    assert supports(pqn, (4,), CPU)
    assert not supports(pqn.replace(fused=False), (4,), CPU)  # the reference, on request
    assert not supports(pqn, (4,), torch.device("meta"))  # CPU only
    assert not supports(pqn.replace(target="hard"), (4,), CPU)  # DQN: fast_path's TD update
    assert not supports(pqn.replace(optimizer="sgd"), (4,), CPU)
    assert not supports(pqn.replace(dueling=True), (4,), CPU)
    assert supports(deepq.preset("minatar-breakout-pqn"), (4, 10, 10), CPU)  # the small CNN
    assert not supports(deepq.preset("atari-pqn"), (4, 84, 84), CPU)  # the Nature CNN: autograd


@pytest.mark.parametrize(("obs_shape", "n_actions", "two_player", "overrides"), [
    ((3, 6, 7), 7, True, dict(arch="small_cnn")),  # the connect4 preset: masked, negated targets, Double DQN, Huber
    ((4, 10, 10), 6, False, dict(arch="small_cnn", target="polyak", double=False, loss="mse", optimizer="adam")),
    ((4,), 2, False, dict(arch="mlp", hidden_sizes=(32, 24), layer_norm=True, n_step=3)),
    # the minatar-<game> presets' DQN: the paper's centered RMSProp, Huber, a hard target
    ((4, 10, 10), 6, False, dict(arch="small_cnn", target="hard", double=False, optimizer="rmsprop")),
], ids=["connect4", "minatar-polyak", "mlp-layer-norm", "minatar-rmsprop"])
def test_dqns_td_step_on_the_fast_path_takes_the_reference_steps(obs_shape: tuple[int, ...], n_actions: int,
                                                                  two_player: bool,
                                                                  overrides: dict[str, object]) -> None:
    """DQN's update through the regression fast path: y from losses.td_target under no_grad (the games' −γ and
    legal masks included), then the fast step toward it; the same steps as dqn_loss with autograd."""
    from deepq.core.replay import Batch

    cfg = deepq.preset("connect4", lr=1e-2, max_grad_norm=10.0, **overrides)  # type: ignore[arg-type]
    torch.manual_seed(0)
    fast = Agent(obs_shape, n_actions, cfg)
    torch.manual_seed(0)
    reference = Agent(obs_shape, n_actions, cfg.replace(fused=False))
    assert fast.learner.fast_td and fast.learner.fast is None and not reference.learner.fast_td
    start = [p.detach().clone() for p in reference.online.parameters()]
    rng = np.random.default_rng(6)
    for k in range(20):
        def boards() -> torch.Tensor:
            return torch.from_numpy((rng.random((64, *obs_shape)) < 0.3).astype(np.float32))
        legal = torch.from_numpy(rng.random((64, n_actions)) < 0.7) if two_player else None
        discount = -0.99 if two_player else 0.99
        batch = Batch(boards(), torch.from_numpy(rng.integers(0, n_actions, 64)),
                      torch.from_numpy(rng.choice([-1.0, 0.0, 1.0], 64).astype(np.float32)), boards(),
                      torch.zeros(64, dtype=torch.bool),
                      torch.from_numpy(np.where(rng.random(64) < 0.2, 0.0, discount).astype(np.float32)), legal)
        got, want = fast.learner.update(batch), reference.learner.update(batch)
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got.td_errors, want.td_errors, rtol=1e-4, atol=1e-5)
        if k == 9:
            fast.learner.sync_target()
            reference.learner.sync_target()
    for (name, p), q, p0 in zip(fast.online.named_parameters(), reference.online.parameters(), start, strict=True):
        torch.testing.assert_close(p.detach() - p0, q.detach() - p0, rtol=1e-3, atol=1e-5, msg=name)
    if fast.target is not None and reference.target is not None:  # Polyak's averaging, or the hard syncs
        for p, q in zip(fast.target.parameters(), reference.target.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)
