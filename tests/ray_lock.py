"""One Ray at a time on this machine, across pytest workers (and test runs).

Ray's address 'auto' finds any Ray running on the machine by its processes, and a test's Ray can be found and
joined by another test's 'auto' on the other worker, then vanish under it. Every test that starts a Ray holds this
lock while its Ray runs (a module-scoped Ray: for the module), so no two of them overlap; the other worker meanwhile
runs the tests that start none. (xdist's xdist_group would do this by scheduling, but under pytest 9 it does not
group: the test ids it renames keep their old names.)
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK = Path(tempfile.gettempdir()) / "deepq-tests-one-ray.lock"
_held: list[int] = []  # the open lock file while this process holds it, once per nested hold


@contextmanager
def one_ray_at_a_time() -> Iterator[None]:
    """Hold the machine's Ray lock (re-entrant within this process: a test inside a module that holds it)."""
    if not _held:
        fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits while another test's Ray runs
        _held.append(fd)
    else:
        _held.append(_held[-1])
    try:
        yield
    finally:
        fd = _held.pop()
        if not _held:
            os.close(fd)  # closing the last descriptor releases the lock
