"""Files written by deepq 0.1.0 (before the core was split into a policy and a learner) still work: agent
files load with the same Q values, and run directories resume to the same weights and metrics that 0.1.0
itself gave (tests/data/files-0.1.0, recorded with benchmarks/bit_for_bit.py's cases on the old code)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import deepq

DATA = Path(__file__).parent / "data" / "files-0.1.0"
RECORDED = json.loads((DATA / "recorded.json").read_text())


@pytest.mark.parametrize("name", sorted(RECORDED["q_values"]))
def test_an_agent_file_from_0_1_0_loads_with_the_same_q_values(name: str) -> None:
    agent = deepq.load(DATA / name)
    obs = np.zeros(agent.obs_shape, dtype=np.float32)
    if agent.obs_shape == (4,):
        obs[:] = [0.01, -0.02, 0.03, 0.04]
    np.testing.assert_allclose(agent.q_values(obs), RECORDED["q_values"][name], rtol=1e-6)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


def _value(x: str) -> float | str:
    try:
        return float(x)
    except ValueError:
        return x  # '' or eval_kind


def _one_row_per_step(rows: list[dict[str, str]], after: int) -> list[dict[str, str]]:
    """0.1.0 wrote one row per episode; today a row holds the episodes one collection finished (one vector step
    here): episodes that ended at the same step after the resumed checkpoint's (`after`) become one row, with
    their mean return and length and the last one's index (the loss, averaged since the previous row, is the
    first one's: none came between). The rows before it are the run's own, kept as 0.1.0 wrote them."""
    out: list[list[dict[str, str]]] = []
    for r in rows:
        if (r["episode_return"] and out and out[-1][0]["episode_return"] and out[-1][0]["step"] == r["step"]
                and int(r["step"]) > after):
            out[-1].append(r)
        else:
            out.append([r])
    merged = []
    for group in out:
        row = dict(group[0], episode=group[-1]["episode"])
        for k in ("episode_return", "episode_length"):
            if len(group) > 1:
                row[k] = str(sum(float(g[k]) for g in group) / len(group))
        merged.append(row)
    return merged


EXACT = ("step", "episode", "episode_return", "episode_length", "epsilon", "eval_return", "eval_std", "eval_kind")


@pytest.mark.parametrize("run", sorted(RECORDED["resumed"]))
def test_a_run_from_0_1_0_resumes_as_0_1_0_resumed_it(run: str, tmp_path: Path) -> None:
    """Against what 0.1.0 wrote when it resumed the same directory: the same episodes and evaluations, byte for
    byte; losses and weights to within the rounding of another CPU's BLAS kernels (bit for bit on one machine is
    benchmarks/bit_for_bit.py's job: floats from two CPUs differ by ~1e-5 here, see recorded.json)."""
    run_dir = tmp_path / run
    shutil.copytree(DATA / run, run_dir)
    cfg = deepq.Config.from_dict({k: v for k, v in json.loads((run_dir / "config.json").read_text()).items()
                                  if k != "run_id"})
    total = RECORDED["resumed"][run]["total_steps"]
    resumed_at = torch.load(run_dir / "checkpoint" / "checkpoint.pt", weights_only=True)["loop"]["step"]
    deepq.train(cfg.replace(total_steps=total, run_dir=str(run_dir), progress=False), resume=run_dir)
    got = _rows(run_dir / "metrics.csv")
    want = _one_row_per_step(_rows(DATA / "resumed-by-0.1.0" / run / "metrics.csv"), after=resumed_at)
    assert [[_value(r[k]) for k in EXACT] for r in got] == [[_value(r[k]) for k in EXACT] for r in want]
    losses = [(float(g["loss"]), float(w["loss"])) for g, w in zip(got, want, strict=True) if w["loss"]]
    np.testing.assert_allclose(*zip(*losses, strict=True), rtol=1e-2)
    weights = torch.load(run_dir / "agent.pt", weights_only=True)["online"]
    for name, value in torch.load(DATA / "resumed-by-0.1.0" / run / "agent.pt", weights_only=True)["online"].items():
        np.testing.assert_allclose(weights[name].numpy(), value.numpy(), atol=1e-3, err_msg=name)
