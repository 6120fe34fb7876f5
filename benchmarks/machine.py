"""What the benchmarks print about the machine they ran on (benchmarks/speed.py, benchmarks/throughput.py)."""

from __future__ import annotations

import platform


def cpu_model() -> str:
    """The CPU's model name (Linux), else the machine type."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return cpu
