"""The GPU check (benchmarks/gpu) cannot rot between leases: its dry run, `bash benchmarks/gpu/run.sh --device cpu
--tiny`, runs every part on CPU here (the tests of tests/test_gpu.py among them, with DEEPQ_TEST_DEVICE=cpu), and
what a GPU machine's call would carry fits its 64 MiB."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

FILES = {"summary.md", "results.json", "run.log", "pytest.log", "profile.txt", "pong-metrics.csv", "pong-curve.png"}
PARTS = ["wheels", "env", "tests", "updates", "runs", "profile-cartpole", "profile-atari-pqn", "pong"]
PRESETS = {"cartpole", "minatar-breakout", "minatar-breakout-pqn", "atari", "atari-pqn"}


def test_the_dry_run_runs_every_part(tmp_path: Path) -> None:
    """One test, so that pytest-xdist never runs the dry run twice (a module fixture runs once per worker)."""
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "DEEPQ_TEST_DEVICE")}
    result = subprocess.run(["bash", "benchmarks/gpu/run.sh", "--device", "cpu", "--tiny", "--out", str(out),
                             "--python", sys.executable], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    results, summary = json.loads((out / "results.json").read_text()), (out / "summary.md").read_text()
    check_files(out)
    check_parts(results, summary)
    check_tests(results["tests"])
    check_measurements(results["results"])


def check_files(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert names == FILES  # a device call brings back at most 8 files, named in letters, digits, '.', '_', '-'
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", n) for n in names)
    assert (out / "pong-curve.png").read_bytes().startswith(b"\x89PNG")


def check_parts(results: dict[str, Any], summary: str) -> None:
    parts = {p["name"]: p for p in results["parts"]}
    assert list(parts) == PARTS
    for name, p in parts.items():
        assert p.get("rc") == 0, f"{name}: {p}"
        assert f"| {name} | ran |" in summary
    for heading in ("Every mode on the device", "Gradient updates per second", "Whole runs", "Where the time goes",
                    "Pong"):
        assert f"## {heading}" in summary


def check_tests(tests: list[dict[str, Any]]) -> None:
    """Every test of tests/test_gpu.py ran on CPU, and passed."""
    listed = subprocess.run([sys.executable, "-m", "pytest", "tests/test_gpu.py", "--collect-only", "-q", "-m", "gpu",
                             "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "DEEPQ_TEST_DEVICE": "cpu"})
    collected = [ln for ln in listed.stdout.splitlines() if ln.startswith("tests/test_gpu.py::")]
    assert len(tests) == len(collected) > 10
    assert {t["outcome"] for t in tests} == {"passed"}, [t for t in tests if t["outcome"] != "passed"]


def check_measurements(rows: list[dict[str, Any]]) -> None:
    env = next(r for r in rows if r["part"] == "env")
    assert env["packages"]["deepq"]["ok"] and env["packages"]["torch"]["ok"]
    rates = {r["preset"] for r in rows if r["part"] == "updates" and r["variant"] == "deepq" and r["updates_per_s"] > 0}
    assert rates == PRESETS
    assert {r["preset"] for r in rows if r["part"] == "updates" and r["variant"] == "graph"} == PRESETS  # ran eagerly
    runs = {r["preset"] for r in rows if r["part"] == "runs" and r.get("env_steps_per_s", 0) > 0}
    assert runs == {"cartpole", "minatar-breakout-pqn", "atari-pqn"}
    assert {r["preset"] for r in rows if r["part"] == "profile" and "percent_of_loop" in r} == {"cartpole", "atari-pqn"}
    pong = next(r for r in rows if r["part"] == "pong")
    assert pong["outcome"] == "finished" and pong["steps"] > 0
    assert any(r["part"] == "pong_eval" for r in rows)


def test_what_a_device_call_carries_fits() -> None:
    """The working tree and the wheel folder (if fetch_wheels.sh filled it here) under the device call's 64 MiB."""
    spec = importlib.util.spec_from_file_location("carried_size", ROOT / "benchmarks" / "gpu" / "carried_size.py")
    assert spec is not None and spec.loader is not None
    sizes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sizes)
    carried = sizes.tree_bytes() + sizes.folder_bytes(ROOT / "benchmarks" / "gpu" / "wheels")
    assert carried < sizes.LIMIT, f"{carried / 2**20:.1f} MiB would travel; the limit is 64 MiB"
