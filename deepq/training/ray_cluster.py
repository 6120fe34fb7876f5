"""Ray for distributed runs (deepq/training/distributed.py): imported only when num_actors > 0, and checked at
set-up (deepq/training/setup.py), so a missing Ray is one line before anything is written."""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from deepq.config import Config
from deepq.errors import DistributedError

# Ray turns a node address of 127.0.0.1 into the machine's outward-facing one on Linux unless this is "0"; set
# before Ray is imported, it keeps a local Ray's traffic on loopback.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray(cfg: Config | None = None) -> Any:
    """Import Ray, or one line naming the extra to install. For a local Ray (no cfg.ray_address), first ask Ray
    to keep to loopback (it only can if this is the first import of Ray in the process)."""
    if cfg is not None and not cfg.ray_address and "ray" not in sys.modules:
        os.environ.setdefault(LOOPBACK_ONLY, "0")
    try:
        import ray
    except ImportError:
        raise DistributedError("num_actors > 0 needs Ray: pip install 'deepq[distributed]' (or pip install "
                               "'ray[default]'), or set num_actors=0 to train in one process") from None
    return ray


def connect(cfg: Config) -> bool:
    """Join cfg.ray_address, or start a local Ray sized to this machine (traffic on loopback only); True when
    this call started it (and so shuts it down at the end). A Ray already initialised in this process is used."""
    ray = require_ray(cfg)
    if ray.is_initialized():
        return False
    try:
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, log_to_driver=False, logging_level="ERROR")
        else:
            ray.init(num_cpus=max(os.cpu_count() or 1, cfg.num_actors), include_dashboard=False,
                     _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError ... with long texts
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"the Ray cluster at {cfg.ray_address!r}" if cfg.ray_address else "a local Ray"
        raise DistributedError(f"could not start or join {where} ({first[:300]}); check `ray status`, or set "
                               "num_actors=0 to train in one process") from None
    return True


def check_address(cfg: Config) -> None:
    """A cluster address that nothing answers at is one line at set-up, in seconds (Ray itself retries for
    minutes). 'auto' is left to Ray, which says at once when it finds no running Ray."""
    address = cfg.ray_address
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise DistributedError(f"ray_address={address!r} is not valid: use 'auto' (a Ray started on this machine "
                               "with `ray start --head`) or HOST:PORT of the cluster's head, e.g. 10.0.0.1:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as e:
        raise DistributedError(f"nothing answers at ray_address {address!r} ({type(e).__name__}: {e.strerror or e}): "
                               f"start the cluster's head there (`ray start --head --port={port}`), check the "
                               "address, or set num_actors=0 to train in one process") from None
