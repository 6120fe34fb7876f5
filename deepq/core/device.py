"""The device and the CPU threads a process trains on: resolved and checked once, in one line when they cannot work."""

from __future__ import annotations

import os

import torch
from threadpoolctl import threadpool_limits

from deepq.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """'auto' (CUDA when torch sees a GPU), 'cpu', 'cuda' or 'cuda:N'; a CUDA device torch cannot use is a
    ConfigError here, in one line, rather than a traceback from the first tensor moved there."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            raise ConfigError(f"device={name!r} but torch sees no CUDA device (torch {torch.__version__}, {build}); "
                              "use --device cpu or auto")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device={name!r} but torch sees {count} CUDA device(s), cuda:0 to cuda:{count - 1}; "
                              "use one of those, --device cpu or auto")
    return device


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_threads(n: int) -> None:
    """More threads than CPUs only makes each update wait on the others (and 10^6 of them crashed torch at exit)."""
    if n > (cpus := usable_cpus()):
        raise ConfigError(f"threads={n:,} is more than the {cpus} CPU(s) this process may use; use --threads {cpus} "
                          "or fewer (1 is fastest for small networks)")


def set_cpu_threads(n: int) -> None:
    """CPU threads for torch and for NumPy's BLAS (the NumPy update and acting use it), process-wide."""
    torch.set_num_threads(n)
    threadpool_limits(n, user_api="blas")
