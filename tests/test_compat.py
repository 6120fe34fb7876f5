"""Files written by deepq 0.1.0 (before the core was split into a policy and a learner) still work: agent
files load with the same Q values, and run directories resume to the same weights and metrics that 0.1.0
itself gave (tests/data/files-0.1.0, recorded with benchmarks/bit_for_bit.py's cases on the old code)."""

from __future__ import annotations

import hashlib
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


def _digest(x: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(x):
        h.update(k.encode())
        h.update(x[k].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("run", sorted(RECORDED["resumed"]))
def test_a_run_from_0_1_0_resumes_as_0_1_0_resumed_it(run: str, tmp_path: Path) -> None:
    run_dir = tmp_path / run
    shutil.copytree(DATA / run, run_dir)
    want = RECORDED["resumed"][run]
    cfg = deepq.Config.from_dict({k: v for k, v in json.loads((run_dir / "config.json").read_text()).items()
                                  if k != "run_id"})
    deepq.train(cfg.replace(total_steps=want["total_steps"], run_dir=str(run_dir), progress=False), resume=run_dir)
    assert hashlib.sha256((run_dir / "metrics.csv").read_bytes()).hexdigest()[:16] == want["metrics.csv"]
    assert _digest(torch.load(run_dir / "agent.pt", weights_only=True)["online"]) == want["weights"]
