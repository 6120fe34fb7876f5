"""Export a trained Q-network to ONNX: a file that maps a float32 batch of observations to Q values, for
onnxruntime (or any ONNX runtime) without deepq or torch.

The graph is the agent's online network in eval mode, as `deepq eval` plays it: noisy nets on their mean weights
(no exploration noise), C51 heads reduced to the expected Q value sum_i p_i z_i, dueling heads combined. Pixel
scaling lives inside the graph (the Nature CNN divides by 255), so the input is the observation as the network
sees it, cast to float32. The file's metadata (metadata_props["deepq"], JSON) states that input: dtype, shape,
scaling, frame stack, and how the env's observations become it.

Exporter: torch.export in strict mode (TorchDynamo) captures the network with a symbolic batch dimension, and
torch.onnx's exporter (onnxscript) translates it. The legacy TorchScript exporter needs no onnxscript, but it
bakes the example's batch size into the graph: the networks read the batch size with len(obs), which a tracer
sees as a constant. Before the file is written, onnxruntime runs it on a batch and must agree with the network.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepq.agent import Agent
from deepq.errors import DeepQError
from deepq.files import atomic_write_bytes, first_sentence
from deepq.memory import size_text

FORMATS = ("onnx",)
METADATA_KEY = "deepq"  # metadata_props key of the JSON that states the input
INPUT, OUTPUT = "obs", "q"
OPSET = 18
INSTALL = "pip install 'deepq[export]'"
PACKAGES = ("onnx", "onnxscript", "onnxruntime")  # write, translate, check
VERIFY_BATCH = 5  # observations the exported file and the network must agree on
TOLERANCE = 1e-4  # largest |ΔQ| allowed, relative to max(1, max |Q|)


class ExportError(DeepQError):
    """A network cannot be exported (a package is missing, the graph cannot be captured) or its file written."""


def default_out(path: str | os.PathLike[str], fmt: str = "onnx") -> Path:
    """Where `deepq export PATH` writes: beside the agent file, with the format's suffix (RUN/agent.onnx)."""
    p = Path(path)
    return (p / "agent.pt" if p.is_dir() else p).with_suffix(f".{fmt}")


def require_packages() -> None:
    """ExportError naming the pip command unless onnx, onnxscript and onnxruntime import."""
    import importlib.util

    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}, not installed here: {INSTALL}")


def input_spec(agent: Agent) -> dict[str, Any]:
    """What the exported model takes and returns, in the words and numbers a user needs to feed it."""
    cfg = agent.cfg
    arch = "custom" if cfg.network is not None else agent.arch
    env = cfg.env if isinstance(cfg.env, str) else f"<callable {getattr(cfg.env, '__qualname__', cfg.env)!r}>"
    scaling = ("pixel values 0..255, divided by 255 inside the graph" if arch == "nature_cnn"
               else "as the custom network takes them" if arch == "custom" else "the env's values, not scaled")
    if env.startswith("ALE/") or "NoFrameskip" in env:
        observation = (f"deepq's Atari preprocessing: up to {cfg.noop_max} no-op starts, frame skip {cfg.frame_skip} "
                       f"(max of the last two frames), {cfg.screen_size}x{cfg.screen_size} "
                       f"{'grayscale' if cfg.grayscale else 'RGB'} uint8 frames")
    elif env.startswith("MinAtar/"):
        observation = "MinAtar's (H, W, C) grid moved channels-first to (C, H, W), 0 or 1"
    elif env.startswith(("openspiel:", "pettingzoo:")):
        observation = ("the position as the player to move sees it (deepq's game encoding); mask illegal actions "
                       "before the argmax: the graph does not know the rules")
    else:
        observation = "the env's observation as float32 (a Discrete observation one-hot encoded)"
    if cfg.frame_stack > 1:
        observation += (f"; the last {cfg.frame_stack} of them stacked on the first axis, oldest first (at reset: "
                        "the first repeated)")
    head = ["dueling"] * cfg.dueling + ["noisy (mean weights)"] * cfg.noisy
    if cfg.atoms > 1:
        head.append(f"C51 (expected Q over {cfg.atoms} atoms on [{cfg.v_min:g}, {cfg.v_max:g}])")
    return {"format": "deepq-onnx", "version": 1, "env": env, "arch": arch, "head": " + ".join(head) or "plain",
            "input": {"name": INPUT, "dtype": "float32", "shape": ["batch", *agent.obs_shape]},
            "output": {"name": OUTPUT, "dtype": "float32", "shape": ["batch", agent.n_actions],
                       "meaning": "Q(s, a) for each action; the greedy action is the argmax"},
            "scaling": scaling, "frame_stack": cfg.frame_stack, "observation": observation}


def export_onnx(agent: Agent, out: str | os.PathLike[str]) -> str:
    """Write `agent`'s Q-network to `out` as ONNX (checked against the network by onnxruntime first); return the
    one-line summary `deepq export` prints. Every refusal is one ExportError line."""
    require_packages()
    out = Path(out)
    check_writable(out)
    spec = input_spec(agent)
    data = _with_metadata(_capture(agent), spec).SerializeToString()
    q_net, q_file = _agree(agent, data)
    err = float(np.abs(q_net - q_file).max())
    if err > TOLERANCE * max(1.0, float(np.abs(q_net).max())):
        raise ExportError(f"the exported graph's Q values differ from the network's by up to {err:.3g}; the "
                          f"network does not export faithfully (nothing was written to {out})")
    atomic_write_bytes(data, out)  # temp file, fsync, rename: never a half-written model
    shape = ", ".join(map(str, spec["input"]["shape"]))
    return (f"wrote {out} ({size_text(out.stat().st_size)}; {spec['arch']}, {spec['head']} head): {INPUT} float32 "
            f"[{shape}] ({spec['scaling']}) -> {OUTPUT} float32 [batch, {agent.n_actions}]; onnxruntime agrees with "
            f"the network to {err:.1g}")


def check_writable(out: Path) -> None:
    """ExportError unless a file can be created at `out` (its folder is made if missing), before any work."""
    if out.is_dir():
        raise ExportError(f"{out} is a directory; give a file name, e.g. {out / 'agent.onnx'}")
    if out.suffix == ".pt":  # never over an agent file
        raise ExportError(f"{out}: .pt is the suffix of deepq's agent files; name the ONNX file {out.stem}.onnx")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:  # mkdir over a file
        raise ExportError(f"cannot write {out}: {out.parent} is a file, not a folder") from None
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}") from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporters' warnings, log lines ('torchvision is not installed') and prints (torch.export writes the
    partial graph of a network it cannot capture to stderr) kept from the terminal: the command says one line."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "torch._dynamo")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@contextlib.contextmanager
def _eval_mode(net: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """`net` in eval mode (noisy nets on their mean weights, as evaluation plays them), then as it was."""
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


def _capture(agent: Agent) -> Any:
    """The online network in eval mode as an ONNX ModelProto with a symbolic batch dimension named 'batch'."""
    example = torch.zeros((2, *agent.obs_shape), device=agent.device)  # (2, *obs): a batch of 1 would be fixed at 1
    try:
        with _eval_mode(agent.online) as net, _quiet():
            program = torch.export.export(net, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},),
                                          strict=True)
            onnx_program = torch.onnx.export(program, (), None, input_names=[INPUT], output_names=[OUTPUT],
                                             opset_version=OPSET, verbose=False)
            assert onnx_program is not None  # the dynamo exporter returns its program
            return onnx_program.model_proto
    except Exception as e:  # torch.export and the translation raise many types for what they cannot capture
        why = first_sentence(str(e)) or type(e).__name__
        what = "the custom network" if agent.cfg.network is not None else "the network"
        raise ExportError(f"cannot export {what} to ONNX: torch.export cannot capture it ({why}); a network must "
                          "run without Python branches on tensor values to be exported") from None


def _with_metadata(model: Any, spec: dict[str, Any]) -> Any:
    """The model with its batch dimension named 'batch' and the input stated in metadata_props, checked."""
    import onnx

    symbol = model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # torch.export's name, e.g. 's6'
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param == symbol:
                dim.dim_param = "batch"
    model.doc_string = f"deepq Q-network: {INPUT} {spec['input']['shape']} -> {OUTPUT} {spec['output']['shape']}"
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(spec)})
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the exported graph is not valid ONNX ({first_sentence(str(e)) or 'see onnx.checker'})") \
            from None
    return model


def sample_batch(agent: Agent, n: int, seed: int = 0) -> np.ndarray:
    """(n, *obs_shape) float32 observations like the env's, for checking a file: whole pixel values 0..255 for
    the Nature CNN, 0/1 grids for the small CNN, standard normal values otherwise."""
    rng, shape = np.random.default_rng(seed), (n, *agent.obs_shape)
    arch = None if agent.cfg.network is not None else agent.arch
    if arch == "nature_cnn":
        return rng.integers(0, 256, shape).astype(np.float32)
    if arch == "small_cnn":
        return rng.integers(0, 2, shape).astype(np.float32)
    return rng.standard_normal(shape).astype(np.float32)


def _agree(agent: Agent, model_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(the network's Q values, the exported graph's by onnxruntime) on one batch, both (B, A)."""
    import onnxruntime

    x = sample_batch(agent, VERIFY_BATCH)
    with _eval_mode(agent.online) as net, torch.inference_mode():
        q_net = net(torch.as_tensor(x, device=agent.device)).float().cpu().numpy()  # (B, A)
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    q_file = session.run([OUTPUT], {INPUT: x})[0]  # (B, A)
    return q_net, q_file
