"""What travels to the GPU machine, and whether it fits: the working tree (tracked files and untracked ones git does
not ignore) plus the carried wheel folder, against the 64 MiB the device call allows.

    python benchmarks/gpu/carried_size.py [--wheels benchmarks/gpu/wheels]     # exit 1 when over the limit
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

LIMIT = 64 * 2**20  # bytes: the device call's limit on the tree and the carried paths together
ROOT = Path(__file__).resolve().parents[2]


def tree_bytes(root: Path = ROOT) -> int:
    """Bytes of the files a device call copies: tracked, and untracked but not ignored (deleted ones skipped)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, check=True).stdout
    paths = {root / p for p in out.decode().split("\0") if p}
    return sum(p.stat().st_size for p in paths if p.is_file() and not p.is_symlink())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheels", type=Path, default=ROOT / "benchmarks" / "gpu" / "wheels")
    args = ap.parse_args()
    tree, wheels = tree_bytes(), folder_bytes(args.wheels)
    total = tree + wheels
    for name, size in (("working tree", tree), (f"wheels ({args.wheels})", wheels), ("carried in all", total)):
        print(f"{name:<48} {size / 2**20:7.1f} MiB")
    print(f"{'limit':<48} {LIMIT / 2**20:7.1f} MiB; {(LIMIT - total) / 2**20:.1f} MiB to spare")
    if total > LIMIT:
        sys.exit("over the limit: the device call would refuse this tree; carry fewer wheels")


if __name__ == "__main__":
    main()
