"""What the signal tests of deepq sweep, compare and tune read of real processes, from /proc (Linux): whether a
process has set its own handler for a signal yet, and which processes are still running a test's command."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def handles(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler of its own for `signum` (the SigCgt mask of /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(mask, 16) >> (signum - 1) & 1)


def wait_until_handled(proc: subprocess.Popen[str], signum: int, timeout: float = 60.0) -> bool:
    """Wait until `proc` handles `signum` itself (deepq's command has started: Python handles only SIGINT on its
    own, and deepq sets its handlers once its imports are done); False if it ended or `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if handles(proc.pid, signum):
            return True
        time.sleep(0.02)
    return False


def processes_with(text: str) -> list[int]:
    """Pids of the running processes whose command line holds `text` (a test's tmp path)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:  # it ended meanwhile
                continue
    return found



def wait_until_loaded(proc: subprocess.Popen[str], library: str, timeout: float = 60.0) -> bool:
    """Wait until `proc` has mapped a shared library whose path holds `library`: it has reached the stage that
    imports it (scipy: deepq compare's statistics); False if it ended or `timeout` passed first."""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if library in Path(f"/proc/{proc.pid}/maps").read_text():
                return True
        except OSError:  # it ended meanwhile
            pass
        time.sleep(0.02)
    return False


def stop_with(proc: subprocess.Popen[str], signum: int, timeout: float) -> tuple[str, str]:
    """Send `signum` to proc and wait for it to end: (stdout, stderr). Killed if it outlives `timeout` (the test
    then fails on subprocess.TimeoutExpired) or the test fails before it ends."""
    try:
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=timeout)
        return out, err
    finally:
        proc.kill()
