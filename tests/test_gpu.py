"""Every mode on a CUDA device: train a few hundred steps there, save, load on CPU and get the same Q values; stop
and resume there; a real kill and resume. Marked `gpu`.

The device is DEEPQ_TEST_DEVICE (default 'cuda'); when it names CUDA and torch sees none, every test here is
skipped, so CI stays green. benchmarks/gpu/run.sh runs them on the GPU machine, and its dry run (`--device cpu
--tiny`, run by tests/test_gpu_check.py) runs them with DEEPQ_TEST_DEVICE=cpu, so they cannot rot between leases.

What is asserted where: deepq promises a bit-for-bit resume on CPU only (deepq.train's docstring), so on CPU a
resumed run must equal an uninterrupted one (MinAtar's runs excepted, see stop_and_resume). On CUDA a resume must
work (go on from the checkpoint, end at total_steps with finite weights, lose no metrics row); whether it was
also bit for bit is recorded as the junit property `resume_exact`, which the check's summary lists, and not
asserted. Saved weights must come back bit for bit on any device; Q values computed on the GPU must match the
CPU's to float rounding (1e-4 for the MLP; 1e-2 for the CNNs, whose convolutions cuDNN runs in TF32 by default).
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from frame_harness import FRAME, StackingEnvs

import deepq
from deepq.core.frame_replay import FrameReplay
from deepq.files import safe_load
from deepq.training.loop import CHECKPOINT_FORMAT, checkpoint_path

DEVICE = os.environ.get("DEEPQ_TEST_DEVICE", "cuda")
ON_CPU = torch.device(DEVICE).type == "cpu"
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not ON_CPU and not torch.cuda.is_available(),
                                 reason=f"DEEPQ_TEST_DEVICE={DEVICE} and torch sees no CUDA device")]
Record = Callable[[str, object], None]  # pytest's record_property

CARTPOLE: dict[str, Any] = dict(env="CartPole-v1", total_steps=400, learning_starts=100, train_freq=2, batch_size=32,
                                buffer_size=1_000, hidden_sizes=(32, 32), target_update_interval=100,
                                eps_decay_steps=200, eval_interval=0, eval_episodes=2, checkpoint_interval=200,
                                progress=False, lr=1e-3)
FLAGS: dict[str, dict[str, Any]] = {  # each Rainbow flag alone, then all of them (PER with beta fixed: see below)
    "double": dict(double=True), "dueling": dict(dueling=True), "noisy": dict(noisy=True),
    "c51": dict(atoms=11, v_min=0.0, v_max=50.0), "prioritized": dict(prioritized=True, per_beta=1.0),
    "n_step": dict(n_step=3),
    "all": dict(double=True, dueling=True, noisy=True, atoms=11, v_min=0.0, v_max=50.0, prioritized=True,
                per_beta=1.0, n_step=3)}
PQN: dict[str, Any] = dict(target="pqn", layer_norm=True, optimizer="radam", max_grad_norm=10.0, learning_starts=0,
                           num_envs=8, rollout_len=16, minibatches=4, epochs=2, eps_decay_steps=256,
                           total_steps=512, checkpoint_interval=256, eval_interval=0, eval_episodes=1,
                           progress=False, lr=1e-3)


def on_device(**fields: Any) -> deepq.Config:
    return deepq.Config(**{**fields, "device": DEVICE})


def params_device(agent: deepq.Agent) -> str:
    return next(agent.online.parameters()).device.type


def observations(agent: deepq.Agent, n: int = 16) -> np.ndarray:
    """A batch of observations of the agent's shape: floats for vectors, 0/1 planes for grids (MinAtar, boards)."""
    rng = np.random.default_rng(0)
    if len(agent.obs_shape) == 1:
        return rng.normal(size=(n, *agent.obs_shape)).astype(np.float32)
    return rng.integers(0, 2, size=(n, *agent.obs_shape)).astype(np.uint8)


def q_tolerance(agent: deepq.Agent) -> float:
    if ON_CPU:
        return 1e-5
    convs = any(isinstance(m, torch.nn.Conv2d) for m in agent.online.modules())
    return 1e-2 if convs else 1e-4


def check_saved_on_cpu(agent: deepq.Agent, run_dir: Path) -> None:
    """agent.pt loads on CPU with the device's weights bit for bit, and gives the device's Q values."""
    assert params_device(agent) == torch.device(DEVICE).type  # it really trained on the device
    loaded = deepq.load(run_dir / "agent.pt")  # device='cpu' by default
    assert params_device(loaded) == "cpu"
    for name, value in agent.online.state_dict().items():
        assert torch.equal(value.cpu(), loaded.online.state_dict()[name]), name
    agent.online.eval()  # noisy nets: their mean weights, no noise
    loaded.online.eval()
    obs = observations(agent)
    on_dev, on_cpu = agent.q_values(obs), loaded.q_values(obs)  # (B, A) each
    assert np.isfinite(on_dev).all()
    assert np.abs(on_dev - on_cpu).max() <= q_tolerance(agent) * (1 + np.abs(on_cpu).max())
    moved = copy.deepcopy(agent.online).cpu()  # the device's weights, computed on CPU: the loaded net's numbers
    x = torch.as_tensor(obs)
    with torch.no_grad():
        assert torch.equal(moved(x), loaded.online(x))


def stop_and_resume(cfg: deepq.Config, tmp: Path, record_property: Record) -> deepq.Agent:
    """Train to half of total_steps, resume to the end, and compare with an uninterrupted run; returns the
    resumed agent (its run directory is tmp/'resumed'). MinAtar runs are exempt from the CPU assertion: MinAtar's
    Environment keeps `last_action` across reset() (its sticky actions may repeat the previous episode's last
    action), which deepq's restore (reseed, replay the episode's actions) does not bring back."""
    half = cfg.total_steps // 2
    resumed_dir = tmp / "resumed"
    deepq.train(cfg.replace(total_steps=half, run_dir=str(resumed_dir)))
    resumed = deepq.train(cfg.replace(run_dir=str(resumed_dir)), resume=resumed_dir)
    straight = deepq.train(cfg.replace(run_dir=str(tmp / "straight")))
    assert safe_load(checkpoint_path(resumed_dir), CHECKPOINT_FORMAT)["loop"]["step"] >= cfg.total_steps
    assert resumed.learner.params_finite()
    exact = all(torch.equal(x, y) for x, y in zip(resumed.online.state_dict().values(),
                                                  straight.online.state_dict().values(), strict=True))
    record_property("resume_exact", exact)
    if ON_CPU and not str(cfg.env).startswith("MinAtar/"):
        assert exact, "on CPU a resumed run must equal the uninterrupted one bit for bit"
    return resumed


def train_everywhere(cfg: deepq.Config, tmp: Path, record_property: Record) -> deepq.Agent:
    agent = stop_and_resume(cfg, tmp, record_property)
    check_saved_on_cpu(agent, tmp / "resumed")
    return agent


# ---- the modes ---------------------------------------------------------------------------------------------

def test_dqn(tmp_path: Path, record_property: Record) -> None:
    cfg = on_device(**CARTPOLE)
    train_everywhere(cfg, tmp_path, record_property)
    # A run trained on the GPU machine goes on elsewhere: its checkpoint resumes on CPU (device may change).
    more = deepq.train(cfg.replace(device="cpu", total_steps=cfg.total_steps + 200, run_dir=str(tmp_path / "resumed")),
                       resume=tmp_path / "resumed")
    assert params_device(more) == "cpu" and more.learner.params_finite()
    assert safe_load(checkpoint_path(tmp_path / "resumed"), CHECKPOINT_FORMAT)["loop"]["step"] == cfg.total_steps + 200


@pytest.mark.parametrize("flag", list(FLAGS))
def test_rainbow_flag(flag: str, tmp_path: Path, record_property: Record) -> None:
    # per_beta=1.0: a resumed run's longer total_steps would re-spread beta's annealing (tests/test_rainbow.py)
    train_everywhere(on_device(**{**CARTPOLE, **FLAGS[flag]}), tmp_path, record_property)


def test_pqn_cartpole(tmp_path: Path, record_property: Record) -> None:
    train_everywhere(on_device(**{**PQN, "env": "CartPole-v1", "hidden_sizes": (32, 32)}), tmp_path, record_property)


def test_pqn_minatar_small_cnn(tmp_path: Path, record_property: Record) -> None:
    pytest.importorskip("minatar")
    # lr_decay off: the preset anneals lr over total_steps, which the stopped run's shorter total_steps would change
    cfg = deepq.preset("minatar-breakout-pqn", **{**PQN, "device": DEVICE, "lr_decay": False})
    train_everywhere(cfg, tmp_path, record_property)


def test_mcts_targets(tmp_path: Path, record_property: Record) -> None:
    cfg = on_device(env="CartPole-v1", target="mcts", total_steps=200, learning_starts=50, mcts_simulations=8,
                    mcts_episodes=2, train_freq=1, batch_size=32, buffer_size=1_000, hidden_sizes=(32, 32),
                    eval_interval=0, eval_episodes=1, checkpoint_interval=100, progress=False)
    agent = train_everywhere(cfg, tmp_path, record_property)
    assert agent.target is None  # the search gives the targets


def test_self_play_with_legal_move_masks(tmp_path: Path, record_property: Record) -> None:
    pytest.importorskip("pyspiel")
    cfg = on_device(env="openspiel:tic_tac_toe", arch="mlp", total_steps=600, learning_starts=200, train_freq=2,
                    batch_size=32, buffer_size=2_000, hidden_sizes=(32, 32), target_update_interval=200,
                    eps_decay_steps=400, eval_interval=0, eval_episodes=2, checkpoint_interval=300, progress=False,
                    opponent_pool=2)
    agent = train_everywhere(cfg, tmp_path, record_property)
    rng = np.random.default_rng(1)
    legal = rng.random((64, 9)) < 0.3
    legal[np.arange(64), rng.integers(0, 9, 64)] = True  # at least one legal move each
    obs = rng.random((64, 27)).astype(np.float32)
    chosen = agent.act(obs, legal)  # the masked argmax, computed from the device's Q values
    assert legal[np.arange(64), chosen].all()


def test_frame_replay_in_training(tmp_path: Path, record_property: Record) -> None:
    pytest.importorskip("minatar")
    cfg = deepq.preset("minatar-breakout", device=DEVICE, frame_stack=2, total_steps=400, learning_starts=100,
                       batch_size=16, buffer_size=1_000, train_freq=2, target_update_interval=100,
                       eps_decay_steps=200, eval_interval=0, eval_episodes=1, checkpoint_interval=200,
                       progress=False)
    agent = train_everywhere(cfg, tmp_path, record_property)
    assert agent.obs_shape == (2, 4, 10, 10)


@pytest.mark.parametrize("n_step", [1, 3])
def test_frame_replay_samples_on_the_device_equal_the_cpus(n_step: int) -> None:
    """The same adds and the same random draws give the same minibatch on CPU and on the device, there."""
    memories = [FrameReplay(64, (3, *FRAME), num_envs=2, obs_dtype=np.int64, device=d, n_step=n_step, gamma=0.9)
                for d in ("cpu", DEVICE)]

    class Both:
        k, num_envs = 3, 2

        def add(self, *args: Any) -> None:
            for m in memories:
                m.add(*args)

    envs = StackingEnvs(Both(), 3, 2, base=1_000)
    for t in range(100):  # past the wrap of both rings, with episode ends and terminations
        envs.step(terminated=[t % 7 == 6, False], ended=[t % 7 == 6, t % 11 == 10])
    cpu, dev = (m.sample(128, np.random.default_rng(3)) for m in memories)
    for a, b in zip(cpu[:-1], dev[:-1], strict=True):
        assert b.device.type == torch.device(DEVICE).type
        assert torch.equal(a, b.cpu())


# ---- a real kill -------------------------------------------------------------------------------------------

def cli_train(run_dir: Path, total_steps: int) -> list[str]:
    args = [sys.executable, "-m", "deepq.cli", "train", "CartPole-v1", "--run_dir", str(run_dir), "--device", DEVICE,
            "--total_steps", str(total_steps)]
    for k, v in {**CARTPOLE, "checkpoint_interval": 1_000}.items():
        if k not in ("env", "total_steps"):
            args += [f"--{k}", *(map(str, v) if isinstance(v, tuple) else [str(v)])]
    return args


def test_a_killed_run_resumes_on_the_device(tmp_path: Path, record_property: Record) -> None:
    run, reference = tmp_path / "killed", tmp_path / "reference"
    quiet: dict[str, Any] = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uninterrupted = subprocess.Popen(cli_train(reference, 3_000), **quiet)  # alongside: a core each
    proc = subprocess.Popen(cli_train(run, 1_000_000), **quiet)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint_path(run).exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        time.sleep(0.1)  # rows past the checkpoint, which the resume must cut back
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    checkpoint = safe_load(checkpoint_path(run), CHECKPOINT_FORMAT)
    assert checkpoint["loop"]["step"] < 3_000, "killed after step 3,000: the resume would prove nothing"
    rows = (run / "metrics.csv").read_bytes()[:checkpoint["metrics_bytes"]]
    resumed = subprocess.run([sys.executable, "-m", "deepq.cli", "train", "--resume", str(run), "--total_steps",
                              "3000"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "metrics.csv").read_bytes().startswith(rows)  # nothing before the checkpoint was lost
    assert uninterrupted.wait() == 0
    exact = (run / "metrics.csv").read_bytes() == (reference / "metrics.csv").read_bytes()
    record_property("resume_exact", exact)
    if ON_CPU:
        assert exact, "on CPU the killed and resumed run must log what the uninterrupted one logs"
    assert params_device(deepq.load(run / "agent.pt")) == "cpu"
