"""A real filesystem for the tests of full and read-only disks (tmpfs; mounting needs root, as CI and the
development machines have)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def tmpfs(tmp_path: Path, size: str) -> Iterator[Path]:
    """A real filesystem of `size` (tmpfs) at tmp_path/disk, for a fixture to yield from; needs root, as CI and the
    development machines have."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
