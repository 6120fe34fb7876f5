"""deepq's one compiled swap-in: PQN's regression step (fast_mlp.LambdaUpdate) as a C++ function, and its forward
pass for acting (fast_q.NumpyMLP._batch's batches, fast_q.CompiledQ for the small CNN).

deepq/core/csrc/lambda_update.cpp calls the same ATen kernels as LambdaUpdate, in the same order, so it computes the
same numbers bit for bit (tests/test_compiled.py); what it saves is Python's overhead on each of an update's ~40
kernel calls (benchmarks/updates.py, benchmarks/throughput.py). The optimizers' steps (fast_mlp.radam_step,
rmsprop_step) it writes out as loops, one pass over the flat buffers where torch's kernels take several, each
operation rounded as the kernel it replaces rounds (build_flags: -ffp-contract=off; the square roots stay torch's).
torch.utils.cpp_extension builds it with the machine's C++ compiler the first time it is asked for (about 25 s, once
per machine and source version; `make`'s set-up does it, or `python -m deepq.core.compiled`) and caches it under
torch's extensions folder.

Where it cannot be built (no compiler, no ninja) or `DEEPQ_COMPILED=0` is set, `kernels()` returns None, the reason
is in `unavailable()`, and LambdaUpdate runs its Python body: the same numbers, a little slower.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Protocol

import torch

SOURCE = Path(__file__).parent / "csrc" / "lambda_update.cpp"
_module: ModuleType | None = None
_why_not: str | None = None


class Net(Protocol):
    """csrc/lambda_update.cpp's Net: deepq's MLP or small CNN over the network's own weight tensors."""

    def q(self, obs: torch.Tensor) -> torch.Tensor:
        """Q values (B, A) of obs (B, *obs_shape): the forward pass LambdaStep takes, without what it keeps."""
        ...


class LambdaStep(Protocol):
    """csrc/lambda_update.cpp's LambdaStep: built over one Net and the flat gradient's views like its weights."""

    def grad(self, obs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor) -> tuple[float, torch.Tensor]:
        """The λ-return regression's gradient into the flat buffer, clipped: (loss, |G − Q(s, a)| per sample)."""
        ...


def unavailable() -> str | None:
    """Why kernels() returned None (after it was called), or None."""
    return _why_not


def kernels() -> ModuleType | None:
    """The compiled module (Net, LambdaStep, radam_step), built on first use; None where it cannot be (see
    unavailable())."""
    global _module, _why_not
    if _module is not None or _why_not is not None:
        return _module
    if os.environ.get("DEEPQ_COMPILED", "1") == "0":
        _why_not = "DEEPQ_COMPILED=0"
        return None
    try:
        from torch.utils import cpp_extension

        source = SOURCE.read_bytes()
        flags = build_flags()
        # a new source, or another machine's instruction set, builds a new module
        name = "deepq_lambda_" + hashlib.sha256(source + " ".join(flags).encode()).hexdigest()[:12]
        folder = Path(cpp_extension._get_build_directory(name, verbose=False))
        failed = folder / "deepq-build-failed.txt"  # a build that failed once is not retried on every run
        if failed.exists() and not (folder / f"{name}.so").exists():
            _why_not = f"{failed.read_text().strip()} (delete {failed} to try again)"
            return None
        if not (folder / f"{name}.so").exists():
            print("deepq: compiling its C++ update step (once per machine, about 25 s)", file=sys.stderr, flush=True)
        try:
            _module = cpp_extension.load(name, [str(SOURCE)], extra_cflags=flags, verbose=False)
        except Exception as error:
            failed.write_text(_first_line(error))
            raise
    except Exception as error:  # no compiler or ninja, a failed build: the Python body runs instead
        _why_not = _first_line(error)
    return _module


def build_flags() -> list[str]:
    """The compiler's flags: no fused multiply-adds but the source's own std::fma (-ffp-contract=off: the optimizer
    loops round as torch's kernels do), and the vector instructions torch itself uses on this CPU, so those loops
    are vectorized (without them std::fma is a library call: the same numbers, slower)."""
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
    capability = torch.backends.cpu.get_cpu_capability()
    if capability == "AVX512":
        flags += ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma"]
    elif capability == "AVX2":
        flags += ["-mavx2", "-mfma"]
    return flags


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


if __name__ == "__main__":  # python -m deepq.core.compiled: build it now (the set-up step), say whether it worked
    if kernels() is None:
        print(f"deepq: the compiled update step is unavailable ({unavailable()}); the Python one runs", file=sys.stderr)
    else:
        print("deepq: the compiled update step is ready")
