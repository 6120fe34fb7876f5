"""EnvPool's Atari part as a wheel small enough to carry to the GPU machine (called by fetch_wheels.sh).

    python benchmarks/gpu/slim_envpool.py ENVPOOL_WHEEL ALE_PY_WHEEL OUT_DIR

EnvPool 1.2.5's wheel is 53 MB, almost all of it MuJoCo, ViZDoom, Procgen and other engines, and its Atari ROMs
live in a further 100 MB package (envpool-assets). With the working tree the GPU check may carry 64 MiB, so this
writes `envpool-1.2.5+atari-<same tags>.whl` holding, byte for byte from the official wheel, only what Atari
needs: the Python front end (envpool/python, registration.py), envpool/atari (its C++ extension links only
libc, libm and libpthread) and an entry.py that registers Atari alone. The ROMs come from ale-py's wheel, put
where EnvPool looks first (envpool/atari/roms): every one of the 104 ROMs envpool-assets 0.3.0 ships has the
same MD5 in ale-py 0.12.1. The RECORD is written anew; the METADATA keeps only the requirements Atari imports.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zipfile
from pathlib import Path

KEEP = re.compile(r"envpool/(__init__\.py|registration\.py|py\.typed|python/[^/]+\.py|atari/[^/]+)$")
ENTRY = b'"""Entry point: the Atari registration only (a wheel slimmed by deepq\'s benchmarks/gpu/slim_envpool.py)."""\n\nimport envpool.atari.registration  # noqa: F401\n'  # noqa: E501
ROMS = re.compile(r"ale_py/roms/([a-z0-9_]+\.bin)$")
# What envpool's Python front end imports at `import envpool` (the others, glfw and the assets, are for engines
# this wheel drops).
NEEDS = ("dm-env", "gymnasium", "numpy", "optree", "typing-extensions")
LOCAL = "atari"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def metadata(text: str, version: str) -> str:
    """The official METADATA with the new version, and only the requirements this wheel's code imports."""
    lines = []
    for line in text.split("\n"):
        if line.startswith("Version: "):
            line = f"Version: {version}"
        elif line.startswith("Requires-Dist: ") and not line.split()[1].startswith(NEEDS):
            continue
        lines.append(line)
    return "\n".join(lines)


def slim(envpool_wheel: Path, ale_wheel: Path, out_dir: Path) -> Path:
    name, version, *tags = envpool_wheel.name.removesuffix(".whl").split("-")
    new_version = f"{version}+{LOCAL}"
    old_info, new_info = f"{name}-{version}.dist-info", f"{name}-{new_version}.dist-info"
    files: dict[str, bytes] = {}
    with zipfile.ZipFile(envpool_wheel) as z:
        for entry in z.namelist():
            if KEEP.match(entry):
                files[entry] = z.read(entry)
        files["envpool/entry.py"] = ENTRY
        files[f"{new_info}/METADATA"] = metadata(z.read(f"{old_info}/METADATA").decode(), new_version).encode()
        for extra in ("WHEEL", "top_level.txt"):
            files[f"{new_info}/{extra}"] = z.read(f"{old_info}/{extra}")
    with zipfile.ZipFile(ale_wheel) as z:
        roms = {m.group(1): z.read(entry) for entry in z.namelist() if (m := ROMS.match(entry))}
    if "pong.bin" not in roms or "envpool/atari/atari_envpool.so" not in files:
        raise SystemExit(f"{envpool_wheel.name} or {ale_wheel.name} is not what this script expects")
    for rom, data in roms.items():
        files[f"envpool/atari/roms/{rom}"] = data
    record = f"{new_info}/RECORD"
    files[record] = ("\n".join([*(record_line(n, d) for n, d in files.items()), f"{record},,"]) + "\n").encode()
    out = out_dir / ("-".join([name, new_version, *tags]) + ".whl")
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for entry, data in files.items():
            z.writestr(entry, data)
    return out


def main() -> None:
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    envpool_wheel, ale_wheel, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out = slim(envpool_wheel, ale_wheel, out_dir)
    print(f"{out.name}: {out.stat().st_size / 2**20:.1f} MiB (from {envpool_wheel.name}, "
          f"{envpool_wheel.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
