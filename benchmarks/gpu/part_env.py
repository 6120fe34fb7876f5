"""The GPU check's first part: the machine, the device, and which packages import (with their versions and where
they were imported from, so a carried wheel shadowing the machine's own shows).

    python benchmarks/gpu/part_env.py --device cuda --results RESULTS.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from common import PACKAGES, ROOT, record, usable_cpus


def package(name: str) -> dict[str, Any]:
    try:
        module = importlib.import_module(name)
    except Exception as e:  # any failure to import (a wheel built for another numpy, say) is the answer here
        return {"ok": False, "error": f"{type(e).__name__}: {str(e)[:160]}"}
    version = getattr(module, "__version__", None)
    if version is None:  # pyspiel has none of its own; its wheel's metadata does
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as dist_version

        try:
            version = dist_version({"pyspiel": "open_spiel", "ale_py": "ale-py"}.get(name, name))
        except PackageNotFoundError:
            version = "?"
    return {"ok": True, "version": str(version), "from": str(Path(getattr(module, "__file__", "") or "?").parent)}


def source_hash() -> str:
    """A short hash of deepq's sources, so a result can be matched to a commit where git is not there."""
    h = hashlib.sha256()
    for path in sorted((ROOT / "deepq").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def commit() -> str:
    if os.environ.get("DEEPQ_COMMIT"):
        return os.environ["DEEPQ_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty else "") if out.returncode == 0 else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (no git here; pass DEEPQ_COMMIT)"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine())
    except OSError:
        return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--results", type=Path, required=True)
    args = ap.parse_args()
    packages = {name: package(name) for name in (*PACKAGES, "deepq")}
    gpu: dict[str, Any] = {}
    import torch

    gpu["torch_cuda"] = torch.version.cuda
    gpu["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu.update(name=props.name, memory_gib=round(props.total_memory / 2**30, 1), count=torch.cuda.device_count(),
                   capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version(),
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32)
    try:
        mem = next(int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.startswith("MemTotal"))
        ram = f"{mem / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        ram = "?"
    record(args.results, "env", device=args.device, python=platform.python_version(), cpu=cpu_model(),
           cores=usable_cpus(), host_cores=os.cpu_count(), ram=ram, gpu=gpu, packages=packages, commit=commit(),
           deepq_source=source_hash())
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device} but torch sees no CUDA device (torch {torch.__version__})")


if __name__ == "__main__":
    main()
