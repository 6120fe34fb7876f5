"""The GPU check's report: results.json (everything measured) and summary.md (the same, as tables).

    python benchmarks/gpu/summary.py --work WORK --out OUT --command "bash benchmarks/gpu/run.sh ..."

WORK holds what run.sh and the parts wrote: parts.jsonl (one line per part: its exit status, seconds and time
limit), results.jsonl (the parts' measurements) and junit.xml (pytest's report of tests/test_gpu.py).
"""

from __future__ import annotations

import argparse
import json
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

VARIANTS = ("deepq", "resident", "graph", "compiled", "cpu")


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut off by a killed part
            continue
    return out


def read_junit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            node = case.find(tag)
            if node is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = (node.get("message") or "").splitlines()[0][:200] if node.get("message") else ""
        props = {str(p.get("name")): p.get("value") for p in case.iter("property")}
        tests.append({"test": case.get("name"), "outcome": outcome, "seconds": float(case.get("time") or 0),
                      "message": message, **props})
    return tests


def part_rows(parts: list[dict[str, Any]]) -> list[str]:
    rows = ["| part | status | seconds | limit |", "|---|---|---|---|"]
    for p in parts:
        if p.get("skipped"):
            status = f"skipped: {p['skipped']}"
        elif p.get("timed_out"):
            status = f"stopped at its limit (exit {p['rc']})"
        else:
            status = "ran" if p["rc"] == 0 else f"failed (exit {p['rc']})"
        rows.append(f"| {p['name']} | {status} | {p.get('seconds', 0)} | {p.get('limit', '')} |")
    return rows


def test_rows(tests: list[dict[str, Any]]) -> list[str]:
    counts: dict[str, int] = defaultdict(int)
    for t in tests:
        counts[t["outcome"]] += 1
    rows = [", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no test ran", "",
            "| test | outcome | seconds | resume bit-for-bit | note |", "|---|---|---|---|---|"]
    for t in tests:
        exact = {"True": "yes", "False": "no"}.get(t.get("resume_exact", ""), "–")
        rows.append(f"| {t['test']} | {t['outcome']} | {t['seconds']:.1f} | {exact} | {t['message']} |")
    return rows


def cell(r: dict[str, Any] | None) -> str:
    """One measurement's rate, or why there is none."""
    if r is None:
        return "–"
    if "updates_per_s" in r:
        return f"{r['updates_per_s']:,.0f}"
    return "error" if "error" in r else "skipped"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def update_rows(results: list[dict[str, Any]]) -> list[str]:
    table: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in results:
        if r["part"] == "updates":
            table[r["preset"]][r["variant"]] = r
    rows = ["| preset | batch | " + " | ".join(f"{v} updates/s" for v in VARIANTS)
            + " | best device path / deepq | deepq / cpu |", "|---" * (4 + len(VARIANTS)) + "|"]
    for preset, by in table.items():

        rate = {v: by[v]["updates_per_s"] for v in VARIANTS if "updates_per_s" in by.get(v, {})}
        base, cpu = rate.get("deepq"), rate.get("cpu")
        best = max((rate[v] for v in ("resident", "graph", "compiled") if v in rate), default=None)
        batch = next((r["batch"] for r in by.values() if "batch" in r), "")
        rows.append(f"| {preset} | {batch} | " + " | ".join(cell(by.get(v)) for v in VARIANTS)
                    + f" | {ratio(best, base)} | {ratio(base, cpu)} |")
    notes = sorted({f"{p} {v}: {r.get('error') or r.get('skipped')}" for p, by in table.items()
                    for v, r in by.items() if "updates_per_s" not in r})
    notes += [f"{p} compiled: compiling and the warm-up took {by['compiled']['setup_s']} s" for p, by in table.items()
              if "updates_per_s" in by.get("compiled", {})]
    return rows + ([""] + [f"- {n}" for n in notes] if notes else [])


def run_rows(results: list[dict[str, Any]]) -> list[str]:
    rows = ["| preset | device | threads | env steps/s | measured over | note |", "|---|---|---|---|---|---|"]
    rates: dict[str, dict[str, float]] = defaultdict(dict)
    for r in results:
        if r["part"] != "runs":
            continue
        if "env_steps_per_s" in r:
            rates[r["preset"]][r["on"]] = r["env_steps_per_s"]
            rows.append(f"| {r['preset']} | {r['device']} | {r['threads']} | {r['env_steps_per_s']:,.0f} | "
                        f"{r['window_steps']:,} steps in {r['window_s']} s | {r['num_envs']} envs |")
        else:
            rows.append(f"| {r['preset']} | {r['device']} | – | – | – | {r.get('error') or r.get('skipped')} |")
    ratios = [f"- {p}: device / CPU = {ratio(by.get(d), by.get('cpu'))}" for p, by in rates.items()
              for d in by if d != "cpu"]
    return rows + (["", *ratios] if ratios else [])


def pong_rows(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for r in results:
        if r["part"] == "pong":
            if "skipped" in r:
                return [f"Skipped: {r['skipped']}."]
            rows.append(f"{r['outcome']}: {r['steps']:,} env steps in {r['seconds']} s ({r['env_steps_per_s']:,.0f} "
                        f"env steps/s, {r['num_envs']} envs); final evaluation "
                        f"{r.get('final_mean', '–')} {r.get('final_returns', '')}")
    evals = [r for r in results if r["part"] == "pong_eval"]
    if evals:
        rows += ["", "| seconds | env steps | evaluation mean | returns |", "|---|---|---|---|"]
        rows += [f"| {e['seconds']} | {e['step']:,} | {e['mean']} | {e['returns']} |" for e in evals]
    return rows or ["No result (the part did not run or did not finish)."]


def env_lines(env: dict[str, Any] | None) -> list[str]:
    if env is None:
        return ["(the env part recorded nothing)"]
    gpu = env.get("gpu", {})
    missing = [f"{k} ({v['error']})" for k, v in env["packages"].items() if not v["ok"]]
    versions = ", ".join(f"{k} {v['version']}" for k, v in env["packages"].items() if v["ok"])
    card = (f"{gpu['name']} ({gpu['memory_gib']} GiB, compute capability {gpu['capability']}), torch built for "
            f"CUDA {gpu['torch_cuda']}, cuDNN {gpu['cudnn']}, TF32 matmul {gpu['tf32_matmul']}, TF32 convolutions "
            f"{gpu['tf32_cudnn']}" if "name" in gpu else f"none seen by torch (built for CUDA {gpu.get('torch_cuda')})")
    return [f"- device: {env['device']}; GPU: {card}",
            f"- machine: {env['cpu']}, {env['cores']} cores, {env['ram']}; Python {env['python']}",
            f"- commit: {env['commit']}; deepq sources hash {env['deepq_source']}",
            f"- packages: {versions}",
            f"- missing: {', '.join(missing) if missing else 'none'}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--command", default="bash benchmarks/gpu/run.sh")
    ap.add_argument("--seconds", type=float, default=0.0, help="run.sh's total seconds")
    args = ap.parse_args()
    parts = read_lines(args.work / "parts.jsonl")
    results = read_lines(args.work / "results.jsonl")
    tests = read_junit(args.work / "junit.xml")
    env = next((r for r in results if r["part"] == "env"), None)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (args.out / "results.json").write_text(json.dumps(
        {"when": when, "command": args.command, "seconds": args.seconds, "parts": parts, "tests": tests,
         "results": results}, indent=1) + "\n")
    profile = [f"- {r['preset']}: {r.get('skipped') or ', '.join(f'{k} {v}%' for k, v in r['percent_of_loop'].items())}"
               for r in results if r["part"] == "profile"]
    lines = [f"# deepq GPU check, {when}", "", f"`{args.command}`, {args.seconds:.0f} s in all.", "",
             *env_lines(env), "", "## Parts", "", *part_rows(parts), "",
             "## Every mode on the device (tests/test_gpu.py)", "", *test_rows(tests), "",
             "## Gradient updates per second (part_updates.py)", "", *update_rows(results), "",
             "## Whole runs, env steps per second (part_runs.py)", "", *run_rows(results), "",
             "## Where the time goes (part_profile.py; tables in profile.txt)", "",
             *(profile or ["No profile recorded."]), "",
             "## Pong, atari-pqn (part_pong.py; pong-metrics.csv, pong-curve.png)", "", *pong_rows(results), ""]
    (args.out / "summary.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
