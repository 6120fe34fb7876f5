"""PQN (target='pqn'): λ-returns against hand-computed values, LayerNorm networks, the config's refusals,
same-seed determinism, kill-and-resume equivalence, games, and (slow) CartPole solved."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import deepq
from deepq.agent import Agent
from deepq.core.losses import lambda_returns
from deepq.core.networks import MLP, ChannelNorm, NatureCNN, QNetwork, SmallCNN
from deepq.errors import ConfigError
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path
from deepq.training.pqn import Rollout

SMALL: dict[str, Any] = dict(env="CartPole-v1", target="pqn", layer_norm=True, num_envs=4, rollout_len=16,
                             minibatches=4, epochs=2, learning_starts=0, hidden_sizes=(32, 32), lr=1e-3,
                             optimizer="radam", max_grad_norm=10.0, reward_scale=0.1, eps_decay_steps=1_000,
                             total_steps=2_048, eval_interval=512, eval_episodes=2, checkpoint_interval=512,
                             progress=False)


def small(tmp: Path, name: str, **kw: Any) -> deepq.Config:
    return deepq.Config(**{**SMALL, "run_dir": str(tmp / name), **kw})


def same_weights(a: deepq.Agent, b: deepq.Agent) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.online.state_dict().values(), b.online.state_dict().values(),
                                                 strict=True))


# ---- λ-returns, by hand --------------------------------------------------------------------------------------

def test_lambda_returns_across_a_termination_a_truncation_and_the_rollouts_end() -> None:
    """γ = 0.5, λ = 0.5, T = 4 steps of 2 envs. Env 0 terminates at step 1; env 1 is truncated at step 2; both
    bootstrap at step 3, the rollout's last. G_t = r_t + d_t ((1 − λ) V_t + λ G_{t+1}) where the episode goes on,
    r_t + d_t V_t where it does not:
        env 0: G3 = 4 + .5·40 = 24; G2 = 3 + .5(.5·30 + .5·24) = 16.5; G1 = 2 (terminal); G0 = 1 + .5(.5·10 + .5·2) = 4
        env 1: G3 = 1 + .5·8 = 5; G2 = 1 + .5·6 = 4 (its true final obs, not G3); G1 = 1 + .5(.5·4 + .5·4) = 3;
               G0 = 1 + .5(.5·2 + .5·3) = 2.25"""
    rewards = torch.tensor([[1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0]])
    values = torch.tensor([[10.0, 2.0], [20.0, 4.0], [30.0, 6.0], [40.0, 8.0]])
    terminated = torch.tensor([[False, False], [True, False], [False, False], [False, False]])
    ended = torch.tensor([[False, False], [True, False], [False, True], [False, False]])
    discounts = torch.where(terminated, 0.0, 0.5)
    continues = ~ended
    continues[-1] = False
    g = lambda_returns(rewards, discounts, values, continues, 0.5)
    assert torch.allclose(g, torch.tensor([[4.0, 2.25], [2.0, 3.0], [16.5, 4.0], [24.0, 5.0]]))
    # λ = 0: the one-step target r + d V; λ = 1: discounted rewards to the episode's (rollout's) end, then V
    assert torch.allclose(lambda_returns(rewards, discounts, values, continues, 0.0)[:, 0],
                          torch.tensor([6.0, 2.0, 18.0, 24.0]))
    assert torch.allclose(lambda_returns(rewards, discounts, values, continues, 1.0)[:, 0],
                          torch.tensor([2.0, 2.0, 15.0, 24.0]))


class _Shape:
    """What Rollout reads of a VecEnv: sizes and dtype."""

    def __init__(self, n: int) -> None:
        self.num_envs, self.obs_shape, self.obs_dtype, self.n_actions = n, (1,), np.float32, 2


def _q_values(obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return _q_net()(torch.from_numpy(obs)).numpy()  # (B, 2)


def _q_net() -> nn.Module:
    net = nn.Linear(1, 2, bias=False)  # Q(s) = (s, 2s)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[1.0], [2.0]]))
    return net


def test_a_truncated_step_bootstraps_from_its_true_final_observation() -> None:
    """Env 0 is truncated at step 0: s'_0 is its final obs (5), the next step starts from a reset obs (100).
    γ = λ = 0.5, V(s) = max(s, 2s) = 2s: G1 = 1 + .5·2·7 = 8; G0 = 1 + .5·2·5 = 6 (not from G1, not from 200)."""
    ro = Rollout(2, _Shape(1), legal=False)  # type: ignore[arg-type]
    ro.obs[:, 0, 0] = [1.0, 100.0]
    ro.final_obs[:, 0, 0] = [5.0, 7.0]
    ro.actions[:] = 0
    ro.rewards[:] = 1.0
    ro.terminated[:] = False
    ro.ended[:, 0] = [True, False]
    ro.q[:, 0] = _q_values(ro.obs[:, 0])  # as acting computed them (Q(100) is not s'_0's)
    g = ro.returns(_q_values, torch.device("cpu"), gamma=0.5, lam=0.5)
    assert g.tolist() == [6.0, 8.0]


def test_games_negate_the_opponents_value_and_its_return_and_mask_illegal_moves() -> None:
    """Two-player: d = −γ, V(s') is the max over s' legal moves (only action 0 here: V = s', not 2s').
    γ = λ = 0.5, one game: a ply (r 0) into s'=3, then the winning ply (r 1, terminal):
        G1 = 1; G0 = 0 − .5(.5·3 + .5·1) = −1. A finished game's s' with no legal move is worth 0."""
    ro = Rollout(2, _Shape(1), legal=True)  # type: ignore[arg-type]
    ro.obs[:, 0, 0], ro.final_obs[:, 0, 0] = [1.0, 3.0], [3.0, 9.0]
    ro.actions[:], ro.rewards[:, 0] = 0, [0.0, 1.0]
    ro.terminated[:, 0], ro.ended[:, 0] = [False, True], [False, True]
    assert ro.next_legal is not None
    ro.next_legal[:, 0] = [[True, False], [False, False]]
    ro.q[:, 0] = _q_values(ro.obs[:, 0])  # Q(s_1 = 3), acting's: V(s'_0) reuses it
    g = ro.returns(_q_values, torch.device("cpu"), gamma=-0.5, lam=0.5)
    assert g.tolist() == [-1.0, 1.0]


def test_v_from_actings_q_values_is_v_from_a_pass_over_every_next_observation(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Rollout.returns takes V(s'_t) from the Q values computed to act at t + 1 (θ is fixed within a rollout) and
    runs the network only on episode ends and the rollout's last step. On real CartPole rollouts with truncations
    (a 20-step time limit) and terminations, the returns equal those of V from one forward pass over every true
    s'_t (how they were defined before), to float rounding: 4 envs' Q values in a batch of 4 rows round differently
    from the same rows in a batch of 64 (at the presets' 32 and 128 envs they are the same bits here:
    benchmarks/bit_for_bit.py's PQN cases are identical to before)."""
    import gymnasium as gym

    checked: list[int] = []
    returns = Rollout.returns

    def both(self: Rollout, q_values: Any, device: torch.device, gamma: float, lam: float) -> torch.Tensor:
        got = returns(self, q_values, device, gamma, lam)
        t, n = self.actions.shape
        v = q_values(self.final_obs.reshape(t * n, -1)).max(1).reshape(t, n)  # every s'_t through the network
        continues = ~self.ended
        continues[-1] = False
        want = lambda_returns(torch.from_numpy(self.rewards), torch.from_numpy(np.where(self.terminated, 0.0, gamma)
                              .astype(np.float32)), torch.from_numpy(v), torch.from_numpy(continues), lam).reshape(-1)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
        checked.append(int((self.ended & ~self.terminated).sum()))
        return got

    monkeypatch.setattr(Rollout, "returns", both)
    deepq.train(small(tmp_path, "tl", env=lambda: gym.make("CartPole-v1", max_episode_steps=20), total_steps=1_024,
                      eval_interval=0))
    assert len(checked) == 16 and sum(checked) >= 5  # every rollout checked, truncated episodes among them (12)


# ---- LayerNorm networks ----------------------------------------------------------------------------------------

def _norms(net: nn.Module) -> int:
    return sum(isinstance(m, nn.LayerNorm) for m in net.modules())


def test_layer_norm_goes_before_every_hidden_relu_of_each_network() -> None:
    assert _norms(MLP((4,), 2, (64, 64), layer_norm=True)) == 2
    assert _norms(SmallCNN((4, 10, 10), 3, layer_norm=True)) == 2  # the convolution's channels, the 128 units
    assert _norms(NatureCNN((4, 84, 84), 6, layer_norm=True)) == 4  # three convolutions, the 512 units
    dueling = QNetwork((4,), 2, "mlp", (64, 64), True, False, 1, None, layer_norm=True)
    assert _norms(dueling) == 3  # the body's layer, each stream's hidden layer
    assert _norms(QNetwork((4, 10, 10), 3, "small_cnn", (64,), False, False, 1, None, layer_norm=True)) == 2
    # a hidden layer's output is normalized before its ReLU: mean 0, variance 1 per sample (at init)
    mlp = MLP((4,), 2, (64, 64), layer_norm=True)
    x = mlp.net[2](mlp.net[1](mlp.net[0](torch.randn(8, 4) * 100)))
    assert torch.allclose(x.mean(1), torch.zeros(8), atol=1e-5)
    assert torch.allclose(x.var(1, unbiased=False), torch.ones(8), atol=1e-3)
    # each pixel's channels are normalized, separately per pixel
    y = ChannelNorm(16)(torch.randn(2, 16, 5, 5) * 7 + 3)
    assert torch.allclose(y.mean(1), torch.zeros(2, 5, 5), atol=1e-5)


def test_without_layer_norm_the_networks_and_their_agent_files_are_unchanged() -> None:
    assert list(MLP((4,), 2, (64, 64)).state_dict()) == ["net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias",
                                                          "net.5.weight", "net.5.bias"]
    assert _norms(NatureCNN((4, 84, 84), 6)) == 0 and _norms(SmallCNN((4, 10, 10), 3)) == 0


def test_layer_norm_is_a_flag_of_every_mode_and_takes_the_autograd_update(tmp_path: Path) -> None:
    agent = Agent((4,), 2, deepq.Config(hidden_sizes=(16, 16), layer_norm=True))
    assert _norms(agent.online) == 2 and agent.learner.fast is None  # the NumPy path has no LayerNorm
    dqn = deepq.train(deepq.Config(env="CartPole-v1", layer_norm=True, total_steps=600, learning_starts=100,
                                   batch_size=16, hidden_sizes=(16, 16), eval_interval=0, progress=False,
                                   run_dir=str(tmp_path / "dqn")))
    assert _norms(dqn.online) == 2
    assert _norms(deepq.load(tmp_path / "dqn" / "agent.pt").online) == 2


# ---- the config -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "says"), [
    (dict(prioritized=True), "does not combine with atoms, noisy, prioritized"),
    (dict(double=True), "does not combine"),
    (dict(num_actors=2), "set num_actors=0"),
    (dict(num_envs=3, rollout_len=5, minibatches=4), "15 transitions do not split into minibatches=4"),
])
def test_what_pqn_cannot_do_is_one_line(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        deepq.Config(**{**SMALL, **fields}).validate()


def test_reward_scale_is_refused_outside_pqn_and_the_presets_validate() -> None:
    with pytest.raises(ConfigError, match="applies to target='pqn' only"):
        deepq.Config(reward_scale=0.1).validate()
    for name in ("cartpole-pqn", "minatar-breakout-pqn", "atari-pqn"):
        cfg = deepq.preset(name).validate()
        assert cfg.target == "pqn" and cfg.layer_norm and cfg.optimizer == "radam"
    assert (deepq.preset("minatar-asterix-pqn").num_envs, deepq.preset("minatar-asterix-pqn").q_lambda) == (128, 0.65)
    with pytest.raises(ConfigError, match="opponent_pool=0"):
        deepq.Config(env="openspiel:tic_tac_toe", target="pqn", opponent_pool=2).validate()


# ---- training --------------------------------------------------------------------------------------------------

def test_same_seed_same_run_and_a_rollouts_updates(tmp_path: Path) -> None:
    a, b = deepq.train(small(tmp_path, "a", seed=1)), deepq.train(small(tmp_path, "b", seed=1))
    c = deepq.train(small(tmp_path, "c", seed=2))
    text = (tmp_path / "a" / "metrics.csv").read_text()
    assert text == (tmp_path / "b" / "metrics.csv").read_text() and same_weights(a, b)
    assert text != (tmp_path / "c" / "metrics.csv").read_text() and not same_weights(a, c)
    state = safe_load(checkpoint_path(tmp_path / "a"), CHECKPOINT_FORMAT)
    assert state["loop"]["updates"] == (2_048 // 64) * 2 * 4  # 32 rollouts of 4 × 16, 2 epochs × 4 minibatches
    assert "memory" not in state and a.target is None  # no replay, no target network
    rows = list(csv.DictReader(text.splitlines()))
    assert [int(r["step"]) for r in rows if r["eval_kind"] == "periodic"] == [512, 1_024, 1_536, 2_048]


def test_a_finished_run_extended_equals_one_that_never_stopped(tmp_path: Path) -> None:
    cfg = small(tmp_path, "a")
    deepq.train(cfg.replace(total_steps=1_024))
    resumed = deepq.train(cfg, resume=tmp_path / "a")
    straight = deepq.train(cfg.replace(run_dir=str(tmp_path / "b")))
    assert same_weights(resumed, straight)


def test_killed_and_resumed_run_ends_with_the_same_weights_and_metrics(tmp_path: Path) -> None:
    total = 8_192
    kw = dict(total_steps=total, checkpoint_interval=512, eval_interval=2_048)
    reference = deepq.train(small(tmp_path, "ref", **kw))
    run_dir = tmp_path / "killed"
    args = [sys.executable, "-m", "deepq.cli", "train", "CartPole-v1", "--run_dir", str(run_dir)]
    for k, v in {**SMALL, **kw}.items():
        if k != "env":
            args += [f"--{k}", *(map(str, v) if isinstance(v, tuple) else [str(v)])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    while not checkpoint_path(run_dir).exists():
        assert proc.poll() is None, proc.communicate()[0].decode()
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert not (run_dir / "agent.pt").exists(), "the run finished before it was killed; the test proves nothing"
    stopped_at = safe_load(checkpoint_path(run_dir), CHECKPOINT_FORMAT)["loop"]["step"]
    assert 0 < stopped_at < total
    resumed = deepq.train(small(tmp_path, "killed", **kw), resume=run_dir)
    assert same_weights(reference, resumed)
    assert (run_dir / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()


def test_lr_decay_anneals_each_rollouts_rate_to_0_and_a_stopped_run_resumes_exactly(tmp_path: Path) -> None:
    cfg = small(tmp_path, "a", lr_decay=True)
    deepq.train(cfg, on_evaluation=lambda step, result: step >= 1_024)  # stops halfway, checkpointed
    resumed = deepq.train(cfg, resume=tmp_path / "a")
    straight = deepq.train(cfg.replace(run_dir=str(tmp_path / "b")))
    assert same_weights(resumed, straight)
    # the last rollout's updates (after env step 1,984 of 2,048) ran at 1e-3 × 64 / 2,048
    assert straight.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 64 / 2_048)
    constant = deepq.train(small(tmp_path, "c"))
    assert constant.optimizer.param_groups[0]["lr"] == 1e-3 and not same_weights(constant, straight)


def test_self_play_trains_with_pqn_and_resumes_exactly(tmp_path: Path) -> None:
    cfg = deepq.Config(env="openspiel:tic_tac_toe", target="pqn", layer_norm=True, num_envs=8, rollout_len=8,
                       minibatches=4, epochs=2, learning_starts=0, hidden_sizes=(32, 32), total_steps=1_024,
                       eval_interval=512, eval_episodes=4, checkpoint_interval=256, progress=False,
                       run_dir=str(tmp_path / "a"))
    deepq.train(cfg.replace(total_steps=512))
    resumed = deepq.train(cfg, resume=tmp_path / "a")
    straight = deepq.train(cfg.replace(run_dir=str(tmp_path / "b")))
    assert same_weights(resumed, straight)
    assert resumed.learner.target is None


def test_the_atari_pqn_preset_trains_on_envpool_frames_and_resumes(tmp_path: Path) -> None:
    pytest.importorskip("envpool")
    run = tmp_path / "run"
    cfg = deepq.preset("atari-pqn", env="ALE/Breakout-v5", num_envs=4, rollout_len=8, minibatches=2, total_steps=64,
                       eval_interval=0, eval_episodes=1, max_episode_frames=400, checkpoint_interval=32,
                       progress=False, run_dir=str(run))
    agent = deepq.train(cfg)
    assert agent.obs_shape == (4, 84, 84) and any(isinstance(m, ChannelNorm) for m in agent.online.modules())
    loop = safe_load(checkpoint_path(run), CHECKPOINT_FORMAT)["loop"]
    assert (loop["step"], loop["updates"]) == (64, 2 * 2 * 2)  # 2 rollouts of 4 × 8, 2 epochs × 2 minibatches
    deepq.train(cfg.replace(total_steps=128), resume=run)  # EnvPool's envs restart on resume (new episodes)
    loop = safe_load(checkpoint_path(run), CHECKPOINT_FORMAT)["loop"]
    assert (loop["step"], loop["updates"]) == (128, 16)
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").read_text().splitlines())]
    assert steps == sorted(steps) and steps[-1] == 128  # the final evaluation's row closes one metrics.csv


@pytest.mark.slow
def test_the_cartpole_pqn_preset_solves_cartpole(tmp_path: Path) -> None:
    """Seed 0 of `cartpole-pqn` reaches a 20-episode greedy mean >= 475 within its 500,000 env steps."""
    agent = deepq.train(deepq.preset("cartpole-pqn", progress=False, run_dir=str(tmp_path / "run")))
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").read_text().splitlines()))
    assert any(r["eval_kind"] == "periodic" and float(r["eval_return"]) >= 475 for r in rows)
    assert agent.final_evaluation.mean >= 400
