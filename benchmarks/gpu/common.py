"""What the GPU check's parts share: where results go, the presets it measures, and what is installed.

Each part (part_*.py, run by run.sh under its own time limit) appends one JSON object per measurement to the
results file (`--results`, JSON lines), as soon as it has it: a part cut off by its limit keeps what it measured,
and summary.py turns the lines into results.json and summary.md.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# The presets the check measures, and the env each needs: name -> (module to import, what is skipped without it)
PRESETS = {"cartpole": ("gymnasium", "CartPole"), "minatar-breakout": ("minatar", "MinAtar"),
           "minatar-breakout-pqn": ("minatar", "MinAtar"), "atari": ("ale_py", "Atari (ale-py)"),
           "atari-pqn": ("envpool", "Atari with EnvPool")}
PACKAGES = ("torch", "numpy", "gymnasium", "ale_py", "envpool", "minatar", "pyspiel", "matplotlib", "tensorboard",
            "rich", "threadpoolctl", "pytest")


def record(path: Path, part: str, **fields: Any) -> dict[str, Any]:
    """Append one result line {"part": part, **fields} to `path` (flushed at once) and echo it."""
    line = {"part": part, **fields}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
    print(f"[{part}] " + ", ".join(f"{k}={v}" for k, v in fields.items()), flush=True)
    return line


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # an ImportError, or a wheel built for another numpy or Python
        return False
    return True


def missing_for(preset: str) -> str | None:
    """Why `preset` cannot run here (its env package does not import), or None."""
    module, what = PRESETS[preset]
    if preset == "atari-pqn" and not importable("ale_py"):
        return f"{what} needs ale-py as well (the game's id and action names); ale_py does not import"
    return None if importable(module) else f"{what} needs {module}, which does not import here"


def usable_cpus() -> int:
    """The CPUs this process may run on: a container's share, which os.cpu_count() (the host's) can exceed, and
    deepq refuses more threads than these."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB)"
    return f"CPU ({usable_cpus()} cores)"


def cpu_threads(preset: str, tiny: bool = False) -> int:
    """CPU threads for a CPU baseline: all cores for the Nature CNN (84x84 convolutions use them), 1 for the MLP
    and MinAtar's small CNN (the presets' own setting: on 10x10 grids more threads cost more than they give; 59
    against 551 updates/s with 2 threads on a busy 2-core machine). The dry run (`tiny`): 1 everywhere."""
    return usable_cpus() if preset.startswith("atari") and not tiny else 1


class Deadline:
    """Seconds left of a part's budget (its time limit less a margin), to end cleanly before run.sh's limit."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def add_benchmarks_to_path() -> None:
    """benchmarks/ on sys.path, for the CPU benchmarks' helpers (updates.py)."""
    here = str(ROOT / "benchmarks")
    if here not in sys.path:
        sys.path.insert(0, here)
