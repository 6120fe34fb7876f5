"""The training loop: determinism, kill-and-resume equivalence, Ctrl-C, NaN losses, episode ends."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

import deepq
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path, crossings

SMALL = dict(env="CartPole-v1", total_steps=3_000, learning_starts=200, train_freq=2, batch_size=32,
             buffer_size=2_000, hidden_sizes=(32, 32), target_update_interval=100, eps_decay_steps=1_000,
             eval_interval=1_000, eval_episodes=2, checkpoint_interval=1_000, progress=False, lr=1e-3)


def small(tmp: Path, name: str, **kw: Any) -> deepq.Config:
    return deepq.Config(**{**SMALL, "run_dir": str(tmp / name), **kw})


def weights(agent: deepq.Agent) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in agent.online.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"weights differ in {k}"


def test_crossings_counts_multiples_in_half_open_interval() -> None:
    assert crossings(0, 1, 1) == 1
    assert crossings(9, 10, 10) == 1 and crossings(10, 11, 10) == 0
    assert crossings(5, 29, 10) == 2  # 10 and 20
    assert crossings(0, 100, 0) == 0  # disabled


def test_same_seed_same_run_different_seed_different_run(tmp_path: Path) -> None:
    a = deepq.train(small(tmp_path, "a", seed=1))
    b = deepq.train(small(tmp_path, "b", seed=1))
    c = deepq.train(small(tmp_path, "c", seed=2))
    metrics = [(tmp_path / n / "metrics.csv").read_text() for n in "abc"]
    assert metrics[0] == metrics[1]
    assert metrics[0] != metrics[2]
    assert_same_weights(weights(a), weights(b))
    assert any(not torch.equal(weights(a)[k], weights(c)[k]) for k in weights(a))


def test_vector_envs_are_deterministic_and_count_env_steps(tmp_path: Path) -> None:
    cfgs = [small(tmp_path, n, num_envs=4, total_steps=2_000) for n in ("v1", "v2")]
    agents = [deepq.train(c) for c in cfgs]
    assert_same_weights(weights(agents[0]), weights(agents[1]))
    text = (tmp_path / "v1" / "metrics.csv").read_text()
    assert text == (tmp_path / "v2" / "metrics.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert all(int(r["step"]) % 4 == 0 for r in rows)  # one vector step = 4 env steps
    assert [int(r["step"]) for r in rows if r["eval_kind"] == "periodic"] == [1_000, 2_000]
    assert [int(r["step"]) for r in rows if r["eval_kind"] == "final"] == [2_000]  # the saved agent, after training


def _train_cli(run_dir: Path, total_steps: int) -> list[str]:
    args = [sys.executable, "-m", "deepq.cli", "train", "CartPole-v1", "--run_dir", str(run_dir),
            "--total_steps", str(total_steps)]
    for k, v in SMALL.items():
        if k in ("env", "total_steps"):
            continue
        args += [f"--{k}", *(map(str, v) if isinstance(v, tuple) else [str(v)])]
    return args


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "training ended before writing a checkpoint"
        assert time.monotonic() < end, f"no {path} after {timeout}s"
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGKILL", "Ctrl-C", "SIGTERM", "SIGHUP"])
def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path: Path, sig: signal.Signals) -> None:
    total = 8_000
    reference = deepq.train(small(tmp_path, "ref", total_steps=total))

    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(_train_cli(run_dir, total), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(checkpoint_path(run_dir), proc)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode()
    if sig != signal.SIGKILL:  # handled: a checkpoint at the current step, then exit 128 + signal, as a shell does
        assert proc.returncode == 128 + sig, out
        assert f"stopped by {sig.name}" in out and "checkpoint saved" in out and "--resume" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "agent.pt").exists(), "the run finished before it was stopped; the test proves nothing"
    stopped_at = safe_load(checkpoint_path(run_dir), CHECKPOINT_FORMAT)["loop"]["step"]
    assert 0 < stopped_at < total

    resumed = deepq.train(small(tmp_path, "killed", total_steps=total), resume=run_dir)
    assert_same_weights(weights(reference), weights(resumed))
    assert (run_dir / "metrics.csv").read_text() == (tmp_path / "ref" / "metrics.csv").read_text()


def test_resume_from_cli_extends_a_finished_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    subprocess.run(_train_cli(run_dir, 1_000), check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "deepq.cli", "train", "--resume", str(run_dir),
                          "--total_steps", "2000"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert max(int(r["step"]) for r in rows) > 1_000
    assert '"total_steps": 2000' in (run_dir / "config.json").read_text()
    reference = deepq.train(small(tmp_path, "ref", total_steps=2_000))
    assert_same_weights(weights(reference), weights(deepq.load(run_dir)))


def test_resume_refuses_a_changed_env_or_seed(tmp_path: Path) -> None:
    deepq.train(small(tmp_path, "r", total_steps=1_000))
    with pytest.raises(deepq.ConfigError, match="seed"):
        deepq.train(small(tmp_path, "r", seed=5), resume=tmp_path / "r")


def test_resume_from_a_corrupt_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    deepq.train(small(tmp_path, "r", total_steps=1_000))
    ckpt = checkpoint_path(tmp_path / "r")
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(deepq.CheckpointError, match="corrupt or truncated"):
        deepq.train(small(tmp_path, "r"), resume=tmp_path / "r")
    assert (tmp_path / "r" / "agent.pt").exists()  # the run directory survives


class ChainEnv(gym.Env[np.ndarray, int]):
    """obs = [t]; reward 1 per step; terminates when action 1 is taken at t >= 3; truncation via TimeLimit."""

    observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)  # type: ignore[assignment]

    def __init__(self, reward: float = 1.0) -> None:
        self.t, self.reward = 0, reward

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action: int) -> Any:
        self.t += 1
        return np.array([self.t], np.float32), self.reward, bool(action == 1 and self.t >= 3), False, {}


def test_truncation_stores_true_final_obs_and_only_termination_stops_bootstrap(tmp_path: Path) -> None:
    def env() -> gym.Env:
        return gym.wrappers.TimeLimit(ChainEnv(), max_episode_steps=5)

    cfg = small(tmp_path, "chain", env=env, total_steps=400, learning_starts=10_000, eval_interval=0,
                checkpoint_interval=0, buffer_size=400)
    deepq.train(cfg)
    mem = safe_load(checkpoint_path(tmp_path / "chain"), CHECKPOINT_FORMAT)["memory"]
    obs, nxt, term, act = mem["obs"][:, 0], mem["next_obs"][:, 0], mem["terminated"], mem["actions"]
    assert torch.equal(nxt - obs, torch.ones_like(obs)), "s' must be the step after s, also at episode ends"
    assert torch.equal(term, ((act == 1) & (nxt >= 3)).float()), "terminated exactly where the env terminated"
    truncated = (nxt == 5) & (act == 0)  # the time limit ended these episodes without termination
    assert truncated.any() and (term[truncated] == 0).all()  # so the target bootstraps from s' = [5]
    # Every episode starts from the reset observation (t=0): one start per finished episode, plus
    # possibly the one in progress. A final observation never leaks into the next episode's s.
    starts, ends = int((obs == 0).sum()), int(((nxt == 5) | (term == 1)).sum())
    assert starts in (ends, ends + 1)


@pytest.mark.filterwarnings("error::RuntimeWarning")  # NumPy's overflow warnings stay inside the loop (one line)
def test_a_diverging_run_stops_and_advises_resuming_only_from_a_checkpoint_that_exists(tmp_path: Path) -> None:
    # lr 1e30: the first update sends the weights to inf. A checkpoint at step 500 precedes it (learning starts
    # at 600): the advice is to resume from it with a lower lr, and doing so works.
    cfg = small(tmp_path, "div", lr=1e30, learning_starts=600, checkpoint_interval=500, eval_interval=0)
    with pytest.raises(deepq.NonFiniteLossError, match=r"(?s)TD loss is (nan|inf).*step 500.*is intact.*--resume"):
        deepq.train(cfg)
    data = safe_load(checkpoint_path(tmp_path / "div"), CHECKPOINT_FORMAT)
    assert data["loop"]["step"] == 500 and data["loop"]["updates"] == 0  # the diverged weights were not saved
    resumed = deepq.train(small(tmp_path, "div", learning_starts=600, checkpoint_interval=500, eval_interval=0,
                                lr=1e-3), resume=tmp_path / "div")
    assert resumed.learner.params_finite()


def test_a_run_that_diverges_before_any_checkpoint_never_advises_a_resume(tmp_path: Path) -> None:
    cfg = small(tmp_path, "div0", lr=1e308, checkpoint_interval=0, eval_interval=0)
    with warnings.catch_warnings(record=True) as seen, \
            pytest.raises(deepq.NonFiniteLossError, match="start the run again with a lower lr") as e:
        warnings.simplefilter("always")
        deepq.train(cfg)
    assert "--resume" not in str(e.value) and not checkpoint_path(tmp_path / "div0").exists()
    # the one-line error says it: NumPy's overflow warnings from the fast path's last steps are not shown
    assert [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)] == []


def test_public_api_round_trip(tmp_path: Path) -> None:
    agent = deepq.train(small(tmp_path, "api", total_steps=1_000))
    obs, _ = gym.make("CartPole-v1").reset(seed=0)
    assert isinstance(agent.act(obs), int)
    batch = np.stack([obs, obs * 0.5])
    assert agent.q_values(obs).shape == (2,) and agent.q_values(batch).shape == (2, 2)
    assert agent.act(batch).shape == (2,)
    agent.save(tmp_path / "a.pt")
    loaded = deepq.load(tmp_path / "a.pt")
    np.testing.assert_array_equal(loaded.q_values(batch), agent.q_values(batch))
    result = deepq.evaluate(loaded, env="CartPole-v1", episodes=3)
    assert len(result.returns) == 3 and result.mean == pytest.approx(np.mean(result.returns))
    assert result.std == pytest.approx(np.std(result.returns))
    assert deepq.evaluate(loaded, episodes=3).returns == result.returns  # same default seed, same episodes


@pytest.mark.parametrize("target", ["polyak", "none"])
def test_target_modes_train(tmp_path: Path, target: str) -> None:
    agent = deepq.train(small(tmp_path, target, target=target, total_steps=1_000, double=True))
    assert agent.learner.params_finite()
    assert (agent.target is None) == (target == "none")


def test_cartpole_preset_solves(tmp_path: Path) -> None:
    """Learning threshold: the cartpole preset reaches a greedy mean >= 475 over 10 fresh episodes."""
    agent = deepq.train(deepq.preset("cartpole", seed=0, progress=False, run_dir=str(tmp_path / "cp")))
    result = deepq.evaluate(agent, episodes=10, seed=12_345)
    assert result.mean >= 475, result



def test_resume_a_solved_run_with_a_new_threshold_keeps_training(tmp_path: Path) -> None:
    first = deepq.train(small(tmp_path, "s", total_steps=2_000, stop_at_return=0.0))  # "solved" at 1st eval
    ckpt = safe_load(checkpoint_path(tmp_path / "s"), CHECKPOINT_FORMAT)["loop"]
    assert ckpt["solved_at"] == ckpt["step"] == 1_000
    again = deepq.train(small(tmp_path, "s", total_steps=2_000, stop_at_return=0.0), resume=tmp_path / "s")
    assert_same_weights(weights(first), weights(again))  # still solved: nothing more to do
    deepq.train(small(tmp_path, "s", total_steps=2_000, stop_at_return=None), resume=tmp_path / "s")
    assert safe_load(checkpoint_path(tmp_path / "s"), CHECKPOINT_FORMAT)["loop"]["step"] == 2_000


def test_evaluation_episodes_do_not_depend_on_batching(tmp_path: Path) -> None:
    agent = deepq.train(small(tmp_path, "e", total_steps=1_500))
    ten = deepq.evaluate(agent, episodes=10, seed=7)
    forty = deepq.evaluate(agent, episodes=40, seed=7)  # two batches of side-by-side episodes
    assert forty.returns[:10] == ten.returns
    assert len(set(forty.returns)) > 1  # different reset seeds give different episodes
    noisy = deepq.evaluate(agent, episodes=10, seed=7, eps=1.0)
    assert noisy.returns != ten.returns and noisy.returns == deepq.evaluate(agent, episodes=10, seed=7, eps=1.0).returns


def test_discrete_observations_are_one_hot_encoded(tmp_path: Path) -> None:
    cfg = small(tmp_path, "fl", env="FrozenLake-v1", total_steps=600, learning_starts=100, eval_interval=300)
    agent = deepq.train(cfg)
    assert agent.obs_shape == (16,)
    one_hot = np.eye(16, dtype=np.float32)
    assert agent.q_values(one_hot).shape == (16, 4)


def test_on_evaluation_sees_each_periodic_evaluation_and_can_stop_the_run(tmp_path: Path) -> None:
    seen: list[tuple[int, float]] = []

    def pruner(step: int, result: deepq.EvalResult) -> bool:
        seen.append((step, result.mean))
        return step >= 2_000  # stop at the second evaluation, as a tuner's pruner would

    agent = deepq.train(small(tmp_path, "p", total_steps=3_000, checkpoint_interval=0), on_evaluation=pruner)
    with (tmp_path / "p" / "metrics.csv").open(newline="") as f:
        evals = [(int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_kind"] == "periodic"]
    assert seen == evals and [s for s, _ in seen] == [1_000, 2_000]
    assert safe_load(checkpoint_path(tmp_path / "p"), CHECKPOINT_FORMAT)["loop"]["step"] == 2_000
    assert (tmp_path / "p" / "agent.pt").is_file() and agent.final_evaluation is not None
    deepq.train(small(tmp_path, "p", total_steps=3_000, checkpoint_interval=0), resume=tmp_path / "p")
    assert safe_load(checkpoint_path(tmp_path / "p"), CHECKPOINT_FORMAT)["loop"]["step"] == 3_000  # not stopped again
