"""deepq's files on disk: written atomically with the umask's permissions, read without running code.

A save goes to a temp file beside its target, is fsynced, then renamed over it, so a reader (or a run
killed mid-save) sees the old file or the new one, never half of one. A full disk is one DiskFullError
line with the old file intact; a process killed mid-write leaves a `.NAME.XXXXXXXX.tmp` that
remove_stale_temp_files clears. Loading is torch.load(weights_only=True): a file holding anything but
tensors and plain containers is refused before any of it is built, in one CheckpointError line.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from deepq.errors import CheckpointError, DiskFullError

FORMAT_VERSION = 1
SMALL_FILE_BYTES = 10_000_000  # config.json, sweep.json, best.json are kilobytes: far more than any, and bounded


def read_small_text(path: Path, limit: int = SMALL_FILE_BYTES) -> str:
    """A small text file (a JSON of Config fields) read whole as UTF-8; an OSError saying why not when it is not a
    regular file (a FIFO blocks its reader, /dev/zero never ends: neither answers a signal while read) or holds
    more than `limit` bytes, and UnicodeDecodeError for bytes that are not UTF-8."""
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(errno.EINVAL, "not a regular file, but a FIFO, a device or a socket", str(path))
    with path.open("rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes, far more than a config holds", str(path))
    return data.decode("utf-8")


def short_repr(v: object, limit: int = 60) -> str:
    """repr(v), shortened to `limit` characters for a message."""
    text = repr(v)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence of an error message, whole, or '' when it is longer than `limit` (never cut mid-way)."""
    first = text.strip().split("\n", 1)[0]
    first = re.split(r"(?<=[.!?])\s", first, maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else ""


def current_umask() -> int:
    """The process's umask. Linux: read from /proc/self/status, so no other thread ever sees it change;
    elsewhere set and restored, and in that moment another thread creating a file gets 0o077 (never looser)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename: never a half-written file.

    The file gets the permissions open() would give it (0o666 less the umask, not mkstemp's 0o600). On any
    failure the temp file is removed and the previous `path` is left as it was; a full disk (or quota) is a
    DiskFullError (an OSError with its errno) in one line naming the path.
    """
    import torch  # here, not at the top: the command line reads small files through this module before torch loads

    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_bytes(data: bytes, path: str | os.PathLike[str]) -> None:
    """`data` written as atomic_save writes (temp file, fsync, rename; a full disk is one DiskFullError line)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """`write(f)` into a temp file beside `path`, then fsync and rename (atomic_save's contract)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _open_permissions(f.fileno())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        full = _disk_full(e)
        if full is None:
            raise
        kept = f"the previous {path.name} is intact" if path.exists() else "no earlier version of it existed"
        err = DiskFullError(f"{full.strerror or 'no space left on device'} writing {path}; {kept} and the partial "
                            "file was removed; free space on that disk, then save again")
        err.errno, err.strerror, err.filename = full.errno, full.strerror, str(path)
        raise err from None
    _fsync_folder(path.parent)  # the rename itself survives a power cut


def _open_permissions(fd: int) -> None:
    """0o666 less the umask, as open() creates files; where a filesystem refuses chmod, mkstemp's 0o600 stays."""
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except (OSError, AttributeError):  # AttributeError: no os.fchmod (Windows before Python 3.13)
        pass


def _disk_full(e: BaseException | None) -> OSError | None:
    """The ENOSPC/EDQUOT OSError behind `e`: torch.save reports a failed write as a RuntimeError whose context
    is the OSError, and closing the file may raise a second one."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return e
        e = e.__cause__ or e.__context__
    return None


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the file itself is already on disk
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # atomic_save's: "." + the file's name + mkstemp's 8 characters


def remove_stale_temp_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete the temp files atomic_save leaves in `folder` when its process dies mid-write (SIGKILL, the OOM
    killer, a power cut): `.NAME.XXXXXXXX.tmp`. Call it only where no other process is saving into `folder`
    (a run directory its run holds): a save in progress has the same kind of file. Returns the paths removed;
    a missing folder has none. Subfolders are left alone."""
    try:
        entries = sorted(Path(folder).iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for entry in entries:
        if _TEMP_NAME.match(entry.name) and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _why_unloadable(path: Path, e: Exception) -> str:
    """Why torch.load(weights_only=True) refused a file, in words: objects it would not build, or damage."""
    text = str(e)
    try:
        with path.open("rb") as f:
            head = f.read(2)
    except OSError:
        head = b""
    found = re.search(r"GLOBAL ([\w.]+)", text)  # the weights-only unpickler met a class or function to call
    if found:
        return (f"it holds pickled Python objects ({found.group(1)}), which deepq never writes; it was refused "
                "without running anything")
    if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5 and "Weights only load failed" in text:
        return ("it is a plain Python pickle, not a file torch.save writes; deepq never writes those, and it was "
                "refused without running anything")
    if not head:
        return "it is empty (0 bytes): corrupt or truncated, e.g. by a copy or save that did not finish"
    if "Weights only load failed" in text:  # not a pickle torch can parse: random bytes, another format
        found = re.search(r"Unsupported operand \d+", text)
        detail = f"torch cannot parse it: {found.group(0)}" if found else "torch cannot parse it"
    else:
        detail = first_sentence(text)
    return f"it is corrupt or truncated ({type(e).__name__}" + (f": {detail})" if detail else ")")


def safe_load(path: Path, expected_format: str) -> dict[str, Any]:
    """torch.load with weights_only=True (nothing in the file is run), turning every failure into one clear
    CheckpointError."""
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"  # /dev/zero, a FIFO: never read
        raise CheckpointError(f"{path} {what} (expected a deepq {expected_format.split('-')[1]} file)")
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's warnings about an odd file would print before our one line
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (PermissionError, IsADirectoryError) as e:  # other OSErrors (EINVAL seeking past the end) are damage
        raise CheckpointError(f"cannot read {path}: {e.strerror}") from None
    except Exception as e:  # torch raises several types for truncated/corrupt/unsafe files
        raise CheckpointError(f"cannot load {path}: {_why_unloadable(path, e)}. Use a file written by deepq, "
                              "or train again to produce one.") from None
    if not isinstance(data, dict) or data.get("format") != expected_format:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a {expected_format} file (found format {short_repr(found)}); "
                              f"it was not written by deepq or is a different kind of deepq file")
    if data.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} has {expected_format} version {short_repr(data.get('version'))}; this deepq "
                              f"reads version {FORMAT_VERSION}")
    return data
