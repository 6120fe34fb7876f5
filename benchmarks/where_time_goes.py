"""Where a training run's time goes, by part of the loop: CPU seconds in the env's step, acting, learning and the rest.

    python benchmarks/where_time_goes.py cartpole-pqn --steps 204800
    python benchmarks/where_time_goes.py connect4 --steps 163840 --set target=pqn num_envs=128 rollout_len=32 \
        epochs=2 minibatches=32 layer_norm=true optimizer=radam loss=mse double=false learning_starts=0 q_lambda=0.65
    PYTHONPATH=/tmp/before python benchmarks/where_time_goes.py ...   # the same on another checkout (git worktree)

One run of the preset (with --set overrides), pinned by the caller (`taskset -c 1`), one thread. The training mode's
own methods are wrapped on the run's objects (nothing of deepq changes): `collect` (acting, the env step, storing,
PQN's λ-returns), within it the envs' `step` and the players' `act`; `learn` (one gradient step: the minibatch and
the update). CPU time (time.process_time), so a shared core does not inflate it. Prints one line per part: seconds,
share of the loop, µs per env step; and the loop's env steps per CPU second. Works on every deepq since the
Experience protocol (collect / learn); the rest of a run (set-up, imports, the final evaluation, the plot) is
outside the loop and reported apart.
"""

from __future__ import annotations

import argparse
import ast
import functools
import tempfile
import time
from typing import Any

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("preset")
    ap.add_argument("--steps", type=int, default=204_800, help="total env steps (plies) of the run")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="Config overrides")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import deepq
    from deepq.training import loop

    spent: dict[str, float] = {"collect": 0.0, "env step": 0.0, "act": 0.0, "learn": 0.0}

    def timed(obj: Any, name: str, key: str) -> None:
        fn = getattr(obj, name)

        @functools.wraps(fn)
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.process_time()
            out = fn(*a, **k)
            spent[key] += time.process_time() - t
            return out
        setattr(obj, name, wrapper)

    make = loop.make_experience

    def instrumented(*a: Any, **k: Any) -> Any:
        mode = make(*a, **k)
        timed(mode, "collect", "collect")
        timed(mode, "learn", "learn")
        timed(mode.envs, "step", "env step")
        timed(mode.players, "act", "act")
        return mode

    loop.make_experience = instrumented  # type: ignore[assignment]
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        try:
            overrides[field] = ast.literal_eval(value.replace("true", "True").replace("false", "False"))
        except (ValueError, SyntaxError):
            overrides[field] = value
    with tempfile.TemporaryDirectory() as d:
        cfg = deepq.preset(args.preset, total_steps=args.steps, eval_interval=0, checkpoint_interval=0,
                           progress=False, stop_at_return=None, eval_episodes=2, run_dir=f"{d}/run", threads=1,
                           **overrides)
        start = time.process_time()
        deepq.train(cfg)
        total = time.process_time() - start
    in_loop = spent["collect"] + spent["learn"]
    parts = {"env step": spent["env step"], "act": spent["act"],
             "collect, the rest (storing, bookkeeping, PQN's λ-returns)": spent["collect"] - spent["env step"]
             - spent["act"], "learn (minibatch + update)": spent["learn"]}
    print(f"{args.preset} {' '.join(args.set)}: {args.steps:,} steps, deepq from {deepq.__file__}")
    for name, s in parts.items():
        print(f"  {name:<58} {s:7.2f} s  {100 * s / in_loop:5.1f}%  {1e6 * s / args.steps:7.2f} µs/step")
    print(f"  loop {in_loop:.2f} s: {args.steps / in_loop:,.0f} env steps per CPU second; outside the loop "
          f"(set-up, final evaluation, plot) {total - in_loop:.2f} s")


if __name__ == "__main__":
    main()
