"""examples/dqn_single_file.py against the library: its update equals the update `deepq train cartpole` runs (the
NumPy fast path, Learner.update with the defaults) to float rounding, and deepq's reference (autograd) update bit for
bit, on the same batch: loss and new weights; and its training loop runs."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from torch import nn

import deepq
from deepq.agent import Agent
from deepq.core.fast_path import NumpyMLPUpdate
from deepq.core.replay import Batch, discounts

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dqn_single_file.py"
OBS_DIM, N_ACTIONS, GAMMA = 4, 2, 0.99


def load_example() -> ModuleType:
    """The example as a module (examples/ is not a package); registered so its dataclass can resolve itself."""
    spec = importlib.util.spec_from_file_location("dqn_single_file", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ex = load_example()


# ---- the only two places this file touches the library's learning API --------------------------------------------
def library_update(agent: Agent, batch: Batch) -> torch.Tensor:
    """deepq's update on one batch, returning the loss: Learner.update, the one every run calls (on the NumPy fast
    path for the default MLP on CPU; with fused=False the autograd reference)."""
    return agent.learner.update(batch).loss


def library_like_optimizer(agent: Agent, params: Iterator[nn.Parameter]) -> torch.optim.Optimizer:
    """An optimizer of the library's class and settings (fused Adam on CPU today) over `params`."""
    return type(agent.optimizer)(params, **agent.optimizer.defaults)


def make_batch(seed: int, size: int = 32) -> Batch:
    """A CartPole-like batch where every fourth transition is terminal (so a wrong bootstrap shows)."""
    g = torch.Generator().manual_seed(seed)
    terminated = (torch.arange(size) % 4 == 0).float()  # (B,)
    return Batch(obs=torch.randn(size, OBS_DIM, generator=g), actions=torch.randint(N_ACTIONS, (size,), generator=g),
                 rewards=torch.rand(size, generator=g), next_obs=torch.randn(size, OBS_DIM, generator=g),
                 terminated=terminated,
                 # γ, or 0 where terminal, exactly as deepq's replay memory computes it for 1-step transitions
                 discounts=torch.from_numpy(discounts(GAMMA, None, terminated.numpy())))


def as_example_batch(batch: Batch) -> tuple[torch.Tensor, ...]:
    """The example's minibatch layout: (obs, actions, rewards, next_obs, dones)."""
    return batch.obs, batch.actions, batch.rewards, batch.next_obs, batch.terminated


def twins(loss: str, double: bool, seed: int, same_optimizer: bool = True, default_path: bool = False,
          ) -> tuple[Agent, nn.Module, nn.Module, torch.optim.Optimizer]:
    """deepq's agent and the example's nets, starting from the same weights: the example's online and target nets
    get copies of the agent's (the target's moved off the online's first, so they differ).
    same_optimizer: the library's optimizer class and settings; else the example's own (plain Adam).
    default_path: the agent on the path a default run takes (the NumPy fast path); else on the autograd reference."""
    cfg = deepq.Config(env="CartPole-v1", hidden_sizes=(64, 64), lr=1e-3, gamma=GAMMA, loss=loss, double=double,
                       fused=default_path, device="cpu", seed=seed)
    torch.manual_seed(seed)
    agent = Agent((OBS_DIM,), N_ACTIONS, cfg)
    assert isinstance(agent.learner.fast, NumpyMLPUpdate) is default_path
    assert agent.target is not None
    with torch.no_grad():  # make θ⁻ ≠ θ, so a target computed from the wrong network shows
        for p in agent.target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    online, target = ex.q_net(OBS_DIM, N_ACTIONS, (64, 64)), ex.q_net(OBS_DIM, N_ACTIONS, (64, 64))
    copy_weights(agent.online, online)
    copy_weights(agent.target, target)
    optimizer = (library_like_optimizer(agent, online.parameters()) if same_optimizer
                 else torch.optim.Adam(online.parameters(), lr=cfg.lr))
    return agent, online, target, optimizer


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Parameter by parameter, in order: deepq's MLP (Flatten first) and the example's Sequential have the same
    Linear layers under different names."""
    src_params, dst_params = list(src.parameters()), list(dst.parameters())
    assert [p.shape for p in src_params] == [p.shape for p in dst_params]
    with torch.no_grad():
        for s, d in zip(src_params, dst_params, strict=True):
            d.copy_(s)


def assert_equal(got: torch.Tensor, expected: torch.Tensor, exact: bool, rounding: float = 1e-6) -> None:
    """exact: bit for bit; else to float rounding (fused Adam, the library's, and plain Adam round differently; the
    fast path's NumPy matrix products and torch's sum in different orders)."""
    torch.testing.assert_close(got, expected, rtol=0.0 if exact else rounding, atol=0.0 if exact else rounding / 10)


def assert_same_weights(agent_net: nn.Module | None, example_net: nn.Module, exact: bool,
                        rounding: float = 1e-6) -> None:
    assert agent_net is not None
    for a, b in zip(agent_net.parameters(), example_net.parameters(), strict=True):
        assert_equal(b, a, exact, rounding)


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("same_optimizer", [True, False], ids=["library-optimizer", "example-optimizer"])
def test_example_update_equals_the_library_reference_update(loss: str, double: bool, same_optimizer: bool) -> None:
    """Bit for bit with the library's optimizer: the same target, loss and gradients. With the example's own
    plain Adam, equal to float rounding."""
    agent, online, target, optimizer = twins(loss, double, seed=3, same_optimizer=same_optimizer)
    for step in range(3):  # three steps: Adam's moments, not only its first step, must agree
        batch = make_batch(seed=10 + step)
        expected = library_update(agent, batch)
        got = ex.update(online, target, optimizer, as_example_batch(batch), GAMMA, double=double,
                        huber=loss == "huber")
        assert_equal(got, expected, exact=same_optimizer)
        assert_same_weights(agent.online, online, exact=same_optimizer)
    assert_same_weights(agent.target, target, exact=True)  # the update leaves θ⁻ alone (the loop syncs it)


@pytest.mark.parametrize("loss", ["mse", "huber"])
@pytest.mark.parametrize("double", [False, True])
def test_example_update_equals_the_update_a_default_run_takes(loss: str, double: bool) -> None:
    """The path `deepq train cartpole` runs on CPU (fast_path's NumPy update, its target from losses.td_target):
    the example's update, with the library's optimizer, gives the same loss and weights to float rounding."""
    agent, online, target, optimizer = twins(loss, double, seed=3, default_path=True)
    for step in range(3):
        batch = make_batch(seed=10 + step)
        expected = library_update(agent, batch)
        got = ex.update(online, target, optimizer, as_example_batch(batch), GAMMA, double=double,
                        huber=loss == "huber")
        assert_equal(got, expected, exact=False, rounding=1e-5)
        assert_same_weights(agent.online, online, exact=False, rounding=1e-5)
    assert_same_weights(agent.target, target, exact=True)


def test_the_default_path_comparison_can_fail_a_bootstrap_through_terminals() -> None:
    """The default-path test must be able to fail too: bootstrapping through episode ends gives another loss."""
    agent, online, target, optimizer = twins("mse", False, seed=3, default_path=True)
    batch = make_batch(seed=10)
    expected = library_update(agent, batch)
    wrong = batch._replace(terminated=torch.zeros_like(batch.terminated))
    got = ex.update(online, target, optimizer, as_example_batch(wrong), GAMMA)
    assert not torch.allclose(got, expected, rtol=1e-3)


def test_the_comparison_can_fail_a_bootstrap_through_terminals() -> None:
    """The test above must be able to fail: the same update with the terminal flags ignored (bootstrapping
    through episode ends) gives another loss."""
    agent, online, target, optimizer = twins("mse", False, seed=3)
    batch = make_batch(seed=10)
    expected = library_update(agent, batch)
    wrong = batch._replace(terminated=torch.zeros_like(batch.terminated))
    got = ex.update(online, target, optimizer, as_example_batch(wrong), GAMMA)
    assert not torch.allclose(got, expected, rtol=1e-3)


def test_example_replay_stores_terminated_and_wraps_around() -> None:
    rb = ex.ReplayBuffer(3, OBS_DIM, np.random.default_rng(0))
    for i in range(4):  # the 4th transition overwrites the 1st
        rb.add(np.full(OBS_DIM, i, np.float32), i % 2, float(i), np.full(OBS_DIM, i + 0.5, np.float32), i == 3)
    assert (rb.pos, rb.size) == (1, 3)
    assert rb.rewards.tolist() == [3.0, 1.0, 2.0] and rb.dones.tolist() == [1.0, 0.0, 0.0]
    assert rb.next_obs[0].tolist() == [3.5] * OBS_DIM
    obs, actions, rewards, next_obs, dones = rb.sample(5)  # rows stay whole: transition i has obs i, s' i + 0.5
    assert obs.shape == (5, OBS_DIM) and actions.dtype == torch.int64 and dones.dtype == torch.float32
    assert torch.equal(rewards, obs[:, 0]) and torch.equal(next_obs, obs + 0.5)
    assert torch.equal(actions, rewards.long() % 2) and torch.equal(dones, (rewards == 3).float())


def test_example_epsilon_is_linear_then_flat() -> None:
    assert ex.epsilon(0, 1.0, 0.1, 100) == 1.0
    assert ex.epsilon(50, 1.0, 0.1, 100) == pytest.approx(0.55)
    assert ex.epsilon(100, 1.0, 0.1, 100) == ex.epsilon(10_000, 1.0, 0.1, 100) == pytest.approx(0.1)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """As the example's __main__ runs: on a shared machine two threads for a small MLP are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_example_training_loop_runs(one_thread: None) -> None:
    start = time.perf_counter()
    args = ex.Args(total_steps=400, learning_starts=100, buffer_size=300, batch_size=16, target_every=50,
                   eval_every=200, eval_episodes=2, solved_return=1e9)
    q_network, returns, solved_at = ex.train(args)
    assert solved_at is None and len(returns) > 0 and all(r > 0 for r in returns)
    assert q_network(torch.zeros(1, OBS_DIM)).shape == (1, N_ACTIONS)
    assert time.perf_counter() - start < 10


# the example's Args field -> deepq's Config field (docs/guides/single-file.md has the same table)
CONFIG_FIELDS = {"env_id": "env", "seed": "seed", "total_steps": "total_steps", "hidden": "hidden_sizes", "lr": "lr",
                 "gamma": "gamma", "buffer_size": "buffer_size", "batch_size": "batch_size",
                 "learning_starts": "learning_starts", "train_freq": "train_freq",
                 "target_every": "target_update_interval", "eps_start": "eps_start", "eps_end": "eps_end",
                 "eps_decay_steps": "eps_decay_steps", "eval_every": "eval_interval",
                 "eval_episodes": "eval_episodes", "solved_return": "stop_at_return"}


def test_example_defaults_are_the_cartpole_preset() -> None:
    """The example's docstring says so; Double DQN and Huber are Config's double and loss."""
    cfg, args = deepq.preset("cartpole"), ex.Args()
    assert set(CONFIG_FIELDS) | {"double", "huber"} == {f.name for f in ex.dataclasses.fields(ex.Args)}
    assert {k: getattr(args, k) for k in CONFIG_FIELDS} == {k: getattr(cfg, v) for k, v in CONFIG_FIELDS.items()}
    assert (args.double, "huber" if args.huber else "mse") == (cfg.double, cfg.loss)
    # and what the example has no setting for: one gradient step per update, hard sync, linear ε, Adam, 1-step
    # returns, no gradient clipping
    assert (cfg.gradient_steps, cfg.target, cfg.eps_schedule, cfg.optimizer, cfg.n_step, cfg.max_grad_norm) == (
        1, "hard", "linear", "adam", 1, 0.0)


def test_example_command_line_makes_args() -> None:
    args = ex.parse_args(["--seed", "3", "--hidden", "32", "16", "--no-double", "--eps-end", "0.05"])
    assert args == ex.Args(seed=3, hidden=(32, 16), double=False, eps_end=0.05)


def test_example_imports_only_gymnasium_numpy_torch() -> None:
    import ast

    tree = ast.parse(EXAMPLE.read_text())
    roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    roots |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert roots - set(sys.stdlib_module_names) - {"__future__"} == {"gymnasium", "numpy", "torch"}
