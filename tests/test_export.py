"""`deepq export`: the ONNX file gives the agent's Q values under onnxruntime (MLP, small CNN on real MinAtar
observations, Nature CNN on stacked 84x84 frames, dueling, C51's expected Q, noisy nets' mean weights), states its
input in its metadata, and every refusal is one `deepq: error:` line with exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch
from torch import nn

import deepq
from deepq.agent import Agent
from deepq.cli import main

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

# name: (obs_shape, n_actions, arch, Config fields); the env ids only label the file (no env is made)
CASES: dict[str, tuple[tuple[int, ...], int, str | None, dict[str, Any]]] = {
    "mlp": ((4,), 2, None, dict(env="CartPole-v1", hidden_sizes=(32, 32))),
    "small_cnn": ((4, 10, 10), 3, "small_cnn", dict(env="MinAtar/Breakout-v1")),
    "nature_cnn": ((4, 84, 84), 6, "nature_cnn", dict(env="ALE/Pong-v5", frame_stack=4)),
    "dueling": ((8,), 4, None, dict(env="LunarLander-v3", dueling=True)),
    "c51": ((8,), 4, None, dict(env="LunarLander-v3", atoms=11, v_min=0.0, v_max=10.0)),
    "rainbow_small_cnn": ((4, 10, 10), 3, "small_cnn",
                          dict(env="MinAtar/Breakout-v1", dueling=True, noisy=True, atoms=11, v_min=-5.0, v_max=15.0)),
}


class Exported(NamedTuple):
    name: str
    agent: Agent  # in eval mode: what `deepq eval` acts with (noisy nets: the mean weights)
    onnx: Path
    summary: str  # what `deepq export` printed


def saved_agent(run_dir: Path, name: str) -> Agent:
    """A fresh agent of CASES[name], saved as a run saves it (RUN/agent.pt)."""
    obs_shape, n_actions, arch, fields = CASES[name]
    torch.manual_seed(0)
    agent = Agent(obs_shape, n_actions, deepq.Config(seed=0, **fields), arch=arch)
    agent.save(run_dir / "agent.pt")
    agent.online.eval()
    return agent


@pytest.fixture(scope="module", params=list(CASES))
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    run_dir = tmp_path_factory.mktemp(request.param)
    agent = saved_agent(run_dir, request.param)
    return Exported(request.param, agent, run_dir / "agent.onnx", export_in_process(run_dir))


def export_in_process(run_dir: Path) -> str:
    """`deepq export RUN_DIR` through deepq.cli.main; what it printed (a module fixture cannot use capsys)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["export", str(run_dir)])
    assert code == 0 and stderr.getvalue() == "", stderr.getvalue()
    return stdout.getvalue()


def observations(name: str, n: int) -> np.ndarray:
    """(n, *obs_shape) observations as the agent's env gives them: real MinAtar Breakout frames for the small CNN
    (uint8 0/1, channels first, through deepq's own env wrappers), uint8 pixels for the Nature CNN, float32 else."""
    obs_shape = CASES[name][0]
    rng = np.random.default_rng(1)
    if CASES[name][2] == "small_cnn":
        from deepq.envs.gym import make_env

        env = make_env("MinAtar/Breakout-v1")
        env.action_space.seed(0)
        obs, _ = env.reset(seed=0)
        frames = [obs]
        while len(frames) < n:
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            frames.append(env.reset()[0] if terminated or truncated else obs)
        env.close()
        assert frames[0].shape == obs_shape and frames[0].dtype == np.uint8, (frames[0].shape, frames[0].dtype)
        return np.stack(frames)
    if CASES[name][2] == "nature_cnn":
        return rng.integers(0, 256, (n, *obs_shape), dtype=np.uint8)
    return rng.standard_normal((n, *obs_shape)).astype(np.float32)


def onnx_q(path: Path, obs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["q"], {"obs": obs.astype(np.float32)})[0]  # the documented input: float32, unscaled


def test_onnxruntime_gives_the_agents_q_values(exported: Exported) -> None:
    obs = observations(exported.name, 7)
    want = exported.agent.q_values(obs)  # (7, A)
    assert want.shape == (7, CASES[exported.name][1])
    np.testing.assert_allclose(onnx_q(exported.onnx, obs), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(onnx_q(exported.onnx, obs[:1]), want[:1], rtol=1e-5, atol=1e-5)  # a batch of one
    assert (onnx_q(exported.onnx, obs).argmax(1) == exported.agent.act(obs)).all()


def test_the_file_states_its_input(exported: Exported) -> None:
    obs_shape, n_actions, arch, fields = CASES[exported.name]
    session = ort.InferenceSession(str(exported.onnx), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.type, inp.shape) == ("obs", "tensor(float)", ["batch", *obs_shape])
    assert (out.name, out.type, out.shape) == ("q", "tensor(float)", ["batch", n_actions])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["deepq"])
    assert meta["input"] == {"name": "obs", "dtype": "float32", "shape": ["batch", *obs_shape]}
    assert meta["arch"] == (arch or "mlp") and meta["env"] == fields["env"]
    assert meta["frame_stack"] == fields.get("frame_stack", 1)
    assert ("divided by 255" in meta["scaling"]) == (arch == "nature_cnn"), meta["scaling"]
    if fields.get("atoms", 1) > 1:
        assert "expected Q" in meta["head"], meta["head"]
    assert exported.summary.count("\n") == 1 and exported.summary.startswith(f"wrote {exported.onnx} ")
    assert f"[batch, {', '.join(map(str, obs_shape))}]" in exported.summary, exported.summary


def test_the_real_command_exports_beside_a_chosen_path(tmp_path: Path) -> None:
    agent = saved_agent(tmp_path / "run", "mlp")
    out = tmp_path / "models" / "cartpole.onnx"  # a folder that does not exist yet
    proc = subprocess.run([sys.executable, "-m", "deepq.cli", "export", str(tmp_path / "run" / "agent.pt"),
                           "--out", str(out)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "" and proc.stdout.count("\n") == 1 and proc.stdout.startswith(f"wrote {out} ")
    obs = observations("mlp", 5)
    np.testing.assert_allclose(onnx_q(out, obs), agent.q_values(obs), rtol=1e-5, atol=1e-5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["cartpole.onnx"]  # no temp file left


# ---- refusals: one line, exit code 2, nothing written ------------------------------------------------------------

def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of a refused `deepq` command (exit code 2, nothing on stdout, no traceback)."""
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's refusals exit from the parser
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    assert err.count("\n") == 1 and err.startswith("deepq: error: ") and "Traceback" not in err, err
    return err


def custom_net(obs_shape: tuple[int, ...], n_actions: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(obs_shape)), n_actions))


class Branchy(nn.Module):
    """A network with a Python branch on a tensor's value: torch.export cannot capture it."""

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int) -> None:
        super().__init__()
        self.linear = nn.Linear(obs_shape[0], n_actions)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        q = self.linear(obs)
        return q if float(obs.sum()) > 0 else -q


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("refusals")
    saved_agent(path, "mlp")
    return path


@pytest.mark.parametrize(("args", "says"), [
    (["{empty}"], "agent.pt does not exist (expected a deepq agent file)"),
    (["{run}/notes.txt"], "cannot load"),
    (["{run}", "--format", "torchscript"], "--format: invalid choice: 'torchscript' (choose from "),
    (["{run}", "--out", "{run}/notes.txt/agent.onnx"], "notes.txt is a file, not a folder"),
    (["{run}", "--out", "{run}"], "is a directory; give a file name"),
    (["{run}", "--out", "{run}/agent.pt"], ".pt is the suffix of deepq's agent files"),
])
def test_what_cannot_be_exported_is_one_line(args: list[str], says: str, run_dir: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    (run_dir / "notes.txt").write_text("not an agent\n")
    argv = ["export", *(a.format(run=run_dir, empty=tmp_path) for a in args)]
    err = refused(argv, capsys)
    assert says in err, err
    assert not list(run_dir.rglob("*.onnx")) and not list(tmp_path.rglob("*.onnx"))
    assert sorted(p.name for p in run_dir.iterdir()) == ["agent.pt", "notes.txt"]  # no temp file left


def test_without_onnx_packages_it_names_the_pip_command(run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript -> ImportError, as if not installed
    err = refused(["export", str(run_dir)], capsys)
    assert "needs onnxscript" in err and "pip install 'deepq[export]'" in err, err
    assert not (run_dir / "agent.onnx").exists()


def test_a_custom_network_file_is_refused_by_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Agent((4,), 2, deepq.Config(network=custom_net)).save(tmp_path / "agent.pt")
    err = refused(["export", str(tmp_path)], capsys)
    assert "was trained with a custom network" in err and "network=factory" in err, err


def test_a_custom_network_exports_from_python_unless_torch_export_cannot_capture_it(tmp_path: Path) -> None:
    from deepq.export import ExportError, export_onnx

    agent = Agent((4,), 2, deepq.Config(network=custom_net))
    line = export_onnx(agent, tmp_path / "custom.onnx")
    assert line.startswith(f"wrote {tmp_path / 'custom.onnx'} ") and "custom" in line, line
    obs = observations("mlp", 3)
    np.testing.assert_allclose(onnx_q(tmp_path / "custom.onnx", obs), agent.q_values(obs), rtol=1e-5, atol=1e-5)
    assert agent.online.training  # the export put the network back in the mode it found it in

    branchy = Agent((4,), 2, deepq.Config(network=Branchy))
    with pytest.raises(ExportError) as caught:
        export_onnx(branchy, tmp_path / "branchy.onnx")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("cannot export the custom network to ONNX"), message
    assert not (tmp_path / "branchy.onnx").exists()
