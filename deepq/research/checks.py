"""The checks that deepq sweep, compare and tune make of what a user types, before anything starts: counts held to
what they cost, seeds that training takes, and the paths written to. Each refusal is one ConfigError line naming
the flag and what would fit."""

from __future__ import annotations

import tempfile
from pathlib import Path

from deepq.config_checks import SEED_MAX as MAX_SEED  # Config.seed's bound: the seeds training takes
from deepq.errors import ConfigError

__all__ = ["MAX_SEED", "at_most", "seeds", "writable_dir", "writable_file"]


def at_most(flag: str, value: int, most: int, why: str) -> None:
    """ConfigError when a count is above what it may cost; `why` says what the bound is made of."""
    if value > most:
        raise ConfigError(f"{flag} {value:,}: at most {most:,} ({why}); give a smaller {flag}")


def seeds(flag: str, first: int, count: int) -> None:
    """The seeds first .. first + count - 1 must all be seeds training takes (Config.seed: 0 to MAX_SEED)."""
    last = first + count - 1
    if first < 0 or last > MAX_SEED:
        raise ConfigError(f"{flag} {first:,}: the seeds {first:,} to {last:,} must lie in 0 to {MAX_SEED:,} (a "
                          f"training seed is 32-bit); give {flag} between 0 and {max(MAX_SEED - count + 1, 0):,}")


def writable_dir(flag: str, path: Path, given: Path | None = None) -> None:
    """ConfigError unless `path` is a folder this process can write in, or one it can make: its nearest existing
    ancestor must be a folder that takes a new file (tried with a temporary one: permissions, a read-only disk and
    root's rights all answer for themselves). `given`: the path the flag named, when `path` is its folder."""
    at, given = path, given or path
    try:
        while not at.exists() and at != at.parent:
            at = at.parent
        if not at.is_dir():
            where = "it is" if at == given else f"{at} is"
            raise ConfigError(f"{flag} {given}: {where} a file, not a folder; choose another {flag}")
        with tempfile.TemporaryFile(dir=at):
            pass
    except OSError as e:
        raise ConfigError(f"{flag} {given}: cannot write in {at} ({e.strerror or e}); choose another {flag}") from None


def writable_file(flag: str, path: Path) -> None:
    """ConfigError unless `path` can be written as a file: not a folder, in a folder that can be written or made."""
    if path.is_dir():
        raise ConfigError(f"{flag} {path}: it is a folder; give a file name (e.g. {flag} {path / 'best.json'})")
    writable_dir(flag, path.parent, given=path)
