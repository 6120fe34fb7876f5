"""Ray for distributed runs (deepq/training/distributed.py): imported only when num_actors > 0, and checked at
set-up (deepq/training/setup.py), so a missing Ray is one line before anything is written."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deepq.config import Config
from deepq.core.device import usable_cpus
from deepq.errors import ConfigError, DistributedError
from deepq.signals import SIGNALS, Noted, noted

# Ray turns a node address of 127.0.0.1 into the machine's outward-facing one on Linux unless this is "0"; set
# before Ray is imported, it keeps a local Ray's traffic on loopback.
LOOPBACK_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Ray's core worker installs a native handler that answers SIGTERM with a stack dump (8 lines on stderr) and exit
# status 15 when nothing replaced it yet; deepq answers every signal itself (deepq/signals.py), so it is left out.
NO_NATIVE_DUMP = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"


def check_actors_fit(cfg: Config) -> None:
    """A local Ray gives each actor one CPU: more actors than this machine has CPUs would start that many worker
    processes and never place them all (it hung, with 1,000). One line before anything starts."""
    if cfg.num_actors > 0 and not cfg.ray_address and cfg.num_actors > (cpus := usable_cpus()):
        raise ConfigError(f"num_actors={cfg.num_actors:,} is more than this machine can place: a local Ray gives "
                          f"each actor one CPU and this machine has {cpus}; use --num_actors {cpus} or fewer, or "
                          "join a larger cluster with --ray_address")


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
    os.environ.setdefault(NO_NATIVE_DUMP, "1")
    try:
        with _signals_kept(ray, hold=not cfg.ray_address):
            if cfg.ray_address:
                ray.init(address=cfg.ray_address, log_to_driver=False, logging_level="ERROR")
            else:
                ray.init(num_cpus=max(usable_cpus(), cfg.num_actors), include_dashboard=False,
                         _node_ip_address="127.0.0.1", log_to_driver=False, logging_level="ERROR")
        _check_cluster_fits(ray, cfg)
    except Exception as e:  # Ray raises ConnectionError, RuntimeError, ValueError ... with long texts
        ray.shutdown()  # what a start that failed half-way left running
        if isinstance(e, DistributedError):
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        where = f"the Ray cluster at {cfg.ray_address!r}" if cfg.ray_address else "a local Ray"
        raise DistributedError(f"could not start or join {where} ({first[:300]}); check `ray status`, or set "
                               "num_actors=0 to train in one process") from None
    except BaseException:  # a signal (deepq/signals.py) stopped the start: nothing of it may be left running
        ray.shutdown()
        raise
    return True


@contextmanager
def _signals_kept(ray: Any, hold: bool) -> Iterator[None]:
    """ray.init sets SIGTERM handlers of its own (one exits with status 15, one kills the node's processes and
    exits with 1): they are held off for the call, and the handlers found before (deepq's: one line, exit 128 +
    signal, after ray.shutdown) answer. `hold` (a local Ray, whose node this call starts): a signal is held until
    ray.init returns (seconds), then delivered, since stopped part-way ray.init leaves its node's agents running
    with no one to stop them. Joining a cluster starts no process here, so a signal stops it at once (a head that
    answers but is not Ray would keep ray.init retrying for minutes)."""
    before = {s: signal.getsignal(s) for s in SIGNALS}
    utils = ray._private.utils
    setter = utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda handler: None
    try:
        with noted() if hold else contextlib.nullcontext(Noted()) as held:
            yield
    finally:
        utils.set_sigterm_handler = setter
        if threading.current_thread() is threading.main_thread():  # (only it may set handlers)
            for s, handler in before.items():  # also replaces a native handler Ray's core worker put on SIGTERM
                if handler is not None:
                    signal.signal(s, handler)
    if held:
        signal.raise_signal(held[0])


def _check_cluster_fits(ray: Any, cfg: Config) -> None:
    """A cluster with fewer CPUs than num_actors can never place them all: one line, not a wait for ever."""
    total = int(ray.cluster_resources().get("CPU", 0))
    if cfg.num_actors > total:
        where = f"the Ray cluster at {cfg.ray_address!r}" if cfg.ray_address else "the local Ray"
        raise DistributedError(f"num_actors={cfg.num_actors:,} cannot be placed: each actor takes one CPU and "
                               f"{where} has {total}; use --num_actors {total} or fewer, or add nodes")


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
