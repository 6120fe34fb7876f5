"""Fingerprints of short training runs, to check that a change to the code keeps every run bit for bit.

Each case trains fresh, and again in two legs (a run to half the steps, then `resume` extending it to the
whole), and records SHA-256 digests of metrics.csv, of the final weights (agent.pt's tensors) and of the
checkpoint's agent state (online and target nets, optimizer). Record before a change, compare after:

    python benchmarks/bit_for_bit.py --out /tmp/before.json           # on the old code
    python benchmarks/bit_for_bit.py --compare /tmp/before.json       # on the new code: exit 1 on a difference

`--keep DIR` keeps the run directories (their agent.pt and checkpoint/ are files written by that code, to
check that later code still loads and resumes them). CPU only: a GPU's kernels are not bit-reproducible.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import deepq

SHORT = dict(eval_episodes=3, checkpoint_interval=500, progress=False, device="cpu")
CASES: dict[str, Any] = {
    # plain DQN: the default MLP's NumPy update
    "dqn-cartpole": lambda: deepq.preset("cartpole", total_steps=2_000, learning_starts=300, eval_interval=1_000),
    # prioritized replay (the autograd update with importance weights), 3-step returns, 4 envs
    "per-nstep-4envs": lambda: deepq.Config(env="CartPole-v1", total_steps=2_000, num_envs=4, prioritized=True,
                                            n_step=3, learning_starts=300, batch_size=32, train_freq=4,
                                            buffer_size=1_000, eval_interval=1_000),
    # the autograd update for the MLP, Polyak averaging, no Double DQN
    "autograd-polyak": lambda: deepq.preset("cartpole", fused=False, target="polyak", double=False, total_steps=2_000,
                                            learning_starts=300, eval_interval=1_000),
    "rainbow": lambda: deepq.preset("rainbow", total_steps=2_000, learning_starts=300, eval_interval=1_000),
    # the small CNN with centered RMSProp
    "minatar-breakout": lambda: deepq.preset("minatar-breakout", total_steps=1_200, learning_starts=300,
                                             buffer_size=2_000, eval_interval=600),
    # frame histories stored once (FrameReplay), Nature CNN, ale-py
    "atari-frames": lambda: deepq.preset("pong", total_steps=400, learning_starts=100, buffer_size=1_000,
                                         eval_interval=0, max_episode_frames=2_000, stop_at_return=None),
    # self-play with an opponent pool; evaluated against the perfect player
    "selfplay-tictactoe-pool": lambda: deepq.preset("tictactoe", total_steps=3_000, learning_starts=500,
                                                    opponent_pool=3, target_update_interval=250,
                                                    eval_interval=1_500, buffer_size=5_000),
    "mcts-tictactoe": lambda: deepq.preset("tictactoe", target="mcts", mcts_simulations=8, mcts_episodes=4,
                                           total_steps=600, learning_starts=100, eval_interval=300),
    "mcts-cartpole": lambda: deepq.preset("cartpole", target="mcts", mcts_simulations=4, mcts_episodes=2,
                                          total_steps=1_000, learning_starts=200, eval_interval=500),
    # PQN's regression step (fast_mlp.LambdaUpdate, compiled where it can be): the LayerNorm MLP, RAdam
    # (lr_decay off: its schedule spans total_steps, which the two-leg run changes)
    "pqn-cartpole": lambda: deepq.preset("cartpole-pqn", total_steps=8_192, eval_interval=4_096, lr_decay=False),
    # ... the small CNN on MinAtar grids, and self-play Connect Four (PQN; DQN's TD step on the same path)
    "pqn-minatar": lambda: deepq.preset("minatar-breakout-pqn", total_steps=12_288, eval_interval=8_192,
                                        lr_decay=False),
    "pqn-connect4": lambda: deepq.preset("connect4-pqn", total_steps=12_288, eval_interval=8_192, lr_decay=False,
                                         eps_decay_steps=3_000_000, mirror=False),  # as recorded before the 60M preset
    "pqn-connect4-mirror": lambda: deepq.preset("connect4-pqn", total_steps=12_288, eval_interval=8_192,
                                                lr_decay=False),  # the preset since 40M plies with mirror images
    "dqn-connect4": lambda: deepq.preset("connect4", total_steps=1_500, learning_starts=300, eval_interval=750),
}


def digest_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def digest_tensors(obj: Any) -> str:
    """A digest of every tensor and number in a nested dict/list, in key order."""
    h = hashlib.sha256()

    def walk(x: Any, key: str) -> None:
        if isinstance(x, torch.Tensor):
            h.update(key.encode())
            h.update(x.detach().cpu().contiguous().numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                walk(x[k], f"{key}/{k}")
        elif isinstance(x, list | tuple):
            for i, v in enumerate(x):
                walk(v, f"{key}/{i}")
        elif isinstance(x, int | float | bool | str) or x is None:
            h.update(f"{key}={x!r}".encode())
    walk(obj, "")
    return h.hexdigest()[:16]


def fingerprint(run_dir: Path) -> dict[str, str]:
    agent = torch.load(run_dir / "agent.pt", weights_only=True)
    ckpt = torch.load(run_dir / "checkpoint" / "checkpoint.pt", weights_only=True)
    return {"metrics.csv": digest_file(run_dir / "metrics.csv"), "weights": digest_tensors(agent["online"]),
            "checkpoint agent": digest_tensors(ckpt["agent"])}


def run_case(name: str, root: Path) -> dict[str, Any]:
    cfg = CASES[name]().replace(seed=1, **SHORT)
    out: dict[str, Any] = {}
    fresh = root / f"{name}-fresh"
    deepq.train(cfg.replace(run_dir=str(fresh)))
    out["fresh"] = fingerprint(fresh)
    legs = root / f"{name}-resumed"
    deepq.train(cfg.replace(run_dir=str(legs), total_steps=cfg.total_steps // 2))
    deepq.train(cfg.replace(run_dir=str(legs)), resume=legs)
    out["resumed"] = fingerprint(legs)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="write the fingerprints to this JSON file")
    p.add_argument("--compare", help="compare with fingerprints recorded in this JSON file; exit 1 if any differ")
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    p.add_argument("--keep", help="keep the run directories under this folder")
    args = p.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bit-for-bit-"))
    root.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name in args.cases.split(","):
        t = time.perf_counter()
        results[name] = run_case(name, root)
        print(f"{name}: {results[name]} ({time.perf_counter() - t:.0f} s)", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    if not args.keep:
        shutil.rmtree(root)
    if args.compare:
        before = json.loads(Path(args.compare).read_text())
        bad = [f"{case} {leg} {what}: {before[case][leg][what]} before, {digest} now"
               for case, legs in results.items() for leg, digests in legs.items() for what, digest in digests.items()
               if before.get(case, {}).get(leg, {}).get(what) != digest]
        print("\n".join(bad) if bad else f"all {len(results)} cases identical, fresh and resumed")
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
