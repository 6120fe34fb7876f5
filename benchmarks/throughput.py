"""Env steps per second of deepq beside rejax (JAX, compiled), one core each, with FLOPs and the core's matmul peak.

    python benchmarks/throughput.py                                   # all, 3 repeats: ~10 minutes, a free core
    python benchmarks/throughput.py --steps-scale 0.1 --repeats 1     # a quick check
    python benchmarks/throughput.py --workloads pqn-cartpole,dqn-cartpole --json out.json
    make bench-peers                                                  # builds .venv-jax first (peer_env.md)

Workloads (deepq's settings; rejax_peer.py maps them onto rejax's and says what cannot be matched):
  pqn-cartpole      deepq.preset('cartpole-pqn'): 32 envs x 64 steps, 4 epochs x 16 minibatches, MLP 256-256 with
                    LayerNorm, RAdam, lr 1e-4 decayed to 0, γ 0.99, λ 0.95, ε 1 → 0.2 over 100k; 500k steps.
                    Peer: rejax.PQN on gymnax CartPole-v1.
  pqn-breakout-mlp  deepq.preset('minatar-breakout-pqn', arch='mlp', hidden_sizes=(256, 256)): 128 envs x 32,
                    2 epochs x 32 minibatches, λ 0.65, lr 5e-4 decayed, ε 1 → 0.05 over 500k (so ε ends near 0.5);
                    250k steps. Peer: rejax.PQN on gymnax 'Breakout-MinAtar' (rejax has no CNN).
  pqn-breakout-cnn  the preset as it is (the MinAtar paper's small CNN with LayerNorm); deepq only; 100k steps.
  dqn-cartpole      benchmarks/speed.py's workload (b): CartPole-v1, 1 env, one gradient step per env step, batch
                    128, MLP 120-84, replay 10k, hard target copy every 500 env steps, learning_starts 1000, Adam
                    2.5e-4, ε 1 → 0.05 over 5000 steps; 30k steps. Peer: rejax.DQN on gymnax CartPole-v1.
  c4-dqn            deepq.preset('connect4'), self-play, one update per ply; deepq only; 20k plies (its window
                    starts at learning_starts, 5k).
  c4-pqn-preset     deepq.preset('connect4-pqn') as #33's runs train it: MLP 512x3 with LayerNorm, 128 envs x 32
                    plies, 2 epochs x 32 minibatches, RAdam; deepq only; 160k plies.
  c4-pqn            'connect4' with target='pqn' and the PQN fields of 'minatar-breakout-pqn' (128 envs x 32
                    plies, 2 epochs x 32 minibatches, λ 0.65, LayerNorm, RAdam, lr 5e-4 decayed, grad norm 10);
                    deepq only; 160k plies.
  c4-acting         acting only: benchmarks/selfplay_speed.py's acting_rate(backend, 128 envs, 20 s), when that
                    file exists (else the row says so); deepq only.
(deepq's envs are its defaults, backend 'auto', as users get them: a string env id, no wrapper.)

Files: this one (the plan, the runs, the table), throughput_worker.py (what runs in a deepq-side process: deepq.train
timed, acting, the sgemm peak; the configs and FLOPs), rejax_peer.py (a rejax run, in the peer's virtualenv).

How a rate is measured. Every run is a fresh process (deepq: this interpreter; rejax: .venv-jax's) pinned to one
core with `taskset -c CORE` (--core, default 1) when taskset exists, with one thread: torch.set_num_threads(1),
deepq's threads=1, OMP/MKL_NUM_THREADS=1; JAX with XLA_FLAGS='--xla_cpu_multi_thread_eigen=false
intra_op_parallelism_threads=1'. Each run reports its CPU seconds per wall second over the window (cpu/wall ≤ 1 on
one core; well below 1 means another process shared the core) and its affinity (1 core). deepq and rejax
alternate workload by workload, repeat by repeat (seeds 0, 1, ...); the table shows medians (min–max) over the
repeats and the median of the per-repeat ratio deepq/rejax.
The rate is steady-state env steps (plies for games) per second over the window (S, N] of one N-step run, N
rounded up to whole rollouts, S = N/5 or learning_starts if later (then N >= 2S): imports, set-up, compilation,
the first fifth (warm-up, the steps before learning starts, most of a short ε decay) and the final evaluation are
outside it, everything the loop does per step inside it.
  deepq: deepq.train(cfg) with eval_interval 0, checkpoint_interval 0, progress False, stop_at_return None, a run
    directory in a temp dir, eval_episodes 10 (the final evaluation, after the window). The clock is read after
    the Experience's `collect` (deepq/training/loop.py's make_experience, wrapped) that brings the env step count
    to S and to N: the window holds the collection and the updates of the same number of whole iterations.
  rejax: rejax's own train_iteration in a jitted fori_loop (its train() without the periodic evaluations),
    compiled first (jax.jit(...).lower(...).compile(); its seconds get their own column); the compiled call runs
    to S (block_until_ready), then the timed call of the same function runs to N. Its final evaluation
    (128 episodes, ε 0.005) comes after.
  acting: selfplay_speed.acting_rate's own rate, in a pinned process like the others.
Final returns (JSON and the last column): deepq's greedy final evaluation (games: mean score against random),
rejax's eval_callback; they are there to show a broken config (an agent that does not learn), not to compare
learning: the runs are short and several settings differ (rejax_peer.py).

FLOPs per env step, from the config (multiply-adds x 2 of the network's Linear and Conv2d layers; biases,
LayerNorm, activations and the optimizer left out): F = one forward pass for one observation, backward ≈ 2F, so
    PQN:  F (act) + epochs x 3F (each transition trains `epochs` times; twice with mirror=true); V(s') of the
          λ-returns is the next step's acting pass (deepq since 26845aa, purejaxql and rejax alike). Tables
          before 2026-12-07's last (2026-12-07-c4preset.json) counted a second F for it: % peak 1/(2 + 3 x
          epochs) higher than this count gives.
    DQN:  F (act) + gradient_steps / train_freq x batch_size x (F target pass [+ F online pass if double] + 3F)
    acting: F.
Every step counts its acting pass, though ε-greedy may skip it (deepq skips the pass when every env explores).
F is checked against the network deepq trained (forward hooks on its Linear and Conv2d layers). % of peak =
steps/s x FLOPs per step / peak, where peak = torch sgemm of 2048x2048 float32 matrices on one thread, pinned to
the same core, best of 3 per second of its thread's CPU time (robust to a shared core), measured at the start and
at the end of the invocation (the larger is used).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from machine import cpu_model
from throughput_worker import deepq_config, flops_per_step, forward_flops

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
# deepq.Config fields the peer needs (rejax_peer.rejax_config maps them).
PEER_FIELDS = ("num_envs", "rollout_len", "epochs", "minibatches", "q_lambda", "gamma", "eps_start", "eps_end",
               "eps_decay_steps", "lr", "lr_decay", "max_grad_norm", "hidden_sizes", "train_freq", "gradient_steps",
               "batch_size", "buffer_size", "learning_starts", "target_update_interval", "double", "layer_norm",
               "reward_scale", "optimizer", "loss", "max_episode_frames")


@dataclass(frozen=True)
class Workload:
    title: str
    steps: int  # N at --steps-scale 1
    obs_shape: tuple[int, ...]  # as deepq's network takes it (for the FLOPs)
    n_actions: int
    peer: dict[str, Any] | None = None  # rejax_peer's algo/env part of the spec
    kind: str = "train"  # "train" (deepq.train) or "acting" (selfplay_speed.acting_rate)


MINATAR_PEER = {"env": "Breakout-MinAtar", "env_kwargs": {"use_minimal_action_set": False}}
WORKLOADS = {
    "pqn-cartpole": Workload("PQN CartPole, MLP 256-256", 500_000, (4,), 2, {"algo": "pqn", "env": "CartPole-v1"}),
    "pqn-breakout-mlp": Workload("PQN MinAtar Breakout, MLP 256-256", 250_000, (4, 10, 10), 6,
                                 {"algo": "pqn", **MINATAR_PEER}),
    "pqn-breakout-cnn": Workload("PQN MinAtar Breakout, small CNN", 100_000, (4, 10, 10), 6),
    "dqn-cartpole": Workload("DQN CartPole (speed.py b)", 30_000, (4,), 2, {"algo": "dqn", "env": "CartPole-v1"}),
    "c4-dqn": Workload("Connect Four self-play, DQN (plies)", 20_000, (3, 6, 7), 7),
    "c4-pqn": Workload("Connect Four self-play, PQN 128 envs (plies)", 160_000, (3, 6, 7), 7),
    "c4-pqn-preset": Workload("Connect Four self-play, connect4-pqn preset, MLP 512x3 (plies)", 160_000,
                              (3, 6, 7), 7),
    "c4-acting": Workload("Connect Four acting only, 128 envs (plies)", 0, (3, 6, 7), 7, kind="acting"),
}
ACTING_SECONDS = 20.0  # at --steps-scale 1


def pinned(cmd: list[str], core: int | None) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if core is not None else cmd


def run_process(cmd: list[str], what: str, pythonpath: str | None = None) -> dict[str, Any]:
    """Run one measuring process; its last `RESULT {json}` line, or exit with its stderr. `pythonpath`: a deepq
    checkout to import instead of this one (--baseline)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "XLA_FLAGS": XLA_FLAGS, "PYTHONWARNINGS": "ignore", **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.exit(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)[:300]}\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def self_worker(python: str, spec: dict[str, Any], core: int | None, pythonpath: str | None = None) -> dict[str, Any]:
    """A deepq-side run (train, acting or peak) in a fresh pinned process of `python`."""
    return run_process(pinned([python, str(HERE / "throughput_worker.py"), json.dumps(spec)], core),
                       f"{spec['kind']} run {spec.get('workload', '')}", pythonpath)


def round_steps(steps: int, unit: int) -> int:
    """Round up to a multiple of 5 units (so N/5 and N end whole iterations), at least 5 units."""
    return max(5 * unit, -(-steps // (5 * unit)) * 5 * unit)


def iteration_steps(cfg: Any) -> int:
    """Env steps per loop iteration: a rollout (PQN), or the vector steps of one update period (DQN)."""
    if cfg.target == "pqn":
        return int(cfg.num_envs * cfg.rollout_len)
    return math.lcm(cfg.num_envs, cfg.train_freq)


def fmt_rate(xs: list[float]) -> str:
    if not xs:
        return "–"
    return f"{statistics.median(xs):,.0f}" + (f" ({min(xs):,.0f}–{max(xs):,.0f})" if len(xs) > 1 else "")


def fmt_ratio(xs: list[float]) -> str:
    if not xs:
        return "–"
    return f"**{statistics.median(xs):.2f}×**" + (f" ({min(xs):.2f}–{max(xs):.2f})" if len(xs) > 1 else "")


def fmt_flops(x: float) -> str:
    return f"{x / 1e6:,.2f} M" if x >= 1e5 else f"{x / 1e3:,.1f} k"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, cwd=ROOT, check=True).stdout.strip()
        return head + (" with uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def deepq_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "numpy", "deepq"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def machine_line(cmd: str, v: dict[str, str], core: int | None, loads: tuple[float, float], peaks: list[float],
                 seconds: float) -> str:
    """One line: the command, the machine, the versions, the commit and the measured peak."""
    cpu = cpu_model()
    vs = ", ".join(f"{k} {v[k]}" for k in ("torch", "numpy", "deepq", "jax", "rejax", "gymnax", "flax", "optax")
                   if k in v)
    pin = f"each run pinned to core {core} (taskset)" if core is not None else "runs not pinned (no taskset)"
    return (f"`{cmd}` on {cpu}, nproc {os.cpu_count()}, {pin}, 1 thread (1-min load average {loads[0]:.2f} at "
            f"start, {loads[1]:.2f} at end), Python {v['python']}, {vs}; commit {commit()}; one-thread sgemm peak "
            f"{' / '.join(f'{p:.0f}' for p in peaks)} GFLOP/s (start / end); took {seconds:.0f} s.")


def make_plan(keys: list[str], scale: float) -> dict[str, dict[str, Any]]:
    """Each workload's N, window start, FLOPs, deepq settings and the peer's spec (deepq is imported here only to
    read the configs)."""
    plan: dict[str, dict[str, Any]] = {}
    for key in keys:
        w = WORKLOADS[key]
        cfg = deepq_config(key, 1, 0, "")
        fwd = forward_flops(cfg, w.obs_shape, w.n_actions)
        entry: dict[str, Any] = {"title": w.title, "fwd_flops": fwd, "flops_per_step": flops_per_step(cfg, fwd, w.kind)}
        if w.kind == "acting":
            plan[key] = {**entry, "seconds": ACTING_SECONDS * scale}
            continue
        unit = iteration_steps(cfg)
        n = round_steps(int(w.steps * scale), unit)
        first = max(n // 5, -(-cfg.learning_starts // unit) * unit)  # the window holds learning steps only
        n = max(n, 2 * first)
        settings = {f: getattr(cfg, f) for f in PEER_FIELDS}
        entry.update(total_steps=n, window_start=first, settings=settings, config=cfg.replace(total_steps=n).to_dict())
        if w.peer is not None:
            minatar = "MinAtar" in w.peer["env"]
            entry["peer_spec"] = {**w.peer, "total_steps": n, "window_start": first,
                                  "max_steps_in_episode": cfg.max_episode_frames if minatar else None,
                                  "settings": {**settings, "hidden_sizes": list(cfg.hidden_sizes)}}
        plan[key] = entry
    return plan


def measure(args: argparse.Namespace, keys: list[str], plan: dict[str, dict[str, Any]], core: int | None,
            peer_ok: bool, acting_ok: bool) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], dict[str, str]]:
    """Every run, deepq then rejax per workload, workload by workload, repeat by repeat; and the versions seen."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    v = deepq_versions()
    for rep in range(args.repeats):
        for key in keys:
            w, p = WORKLOADS[key], plan[key]
            if w.kind == "acting":
                if not acting_ok:
                    continue
                r = self_worker(args.python, {"kind": "acting", "backend": args.acting_backend, "num_envs": 128,
                                              "seconds": p["seconds"]}, core)
            else:
                r = self_worker(args.python, {"kind": "train", "workload": key, "seed": rep,
                                              "total_steps": p["total_steps"], "window_start": p["window_start"]},
                                core)
                r["rate"] = r["steps"] / r["seconds"]
            runs[key, "deepq"].append(r)
            print(f"  repeat {rep + 1}/{args.repeats} {w.title:<46} deepq {r['rate']:>9,.0f} /s", file=sys.stderr,
                  flush=True)
            if args.baseline and w.kind != "acting":  # the same run on the baseline checkout's deepq
                r = self_worker(args.python, {"kind": "train", "workload": key, "seed": rep,
                                              "total_steps": p["total_steps"], "window_start": p["window_start"],
                                              "baseline": True}, core, args.baseline)
                r["rate"] = r["steps"] / r["seconds"]
                runs[key, "before"].append(r)
                print(f"  repeat {rep + 1}/{args.repeats} {w.title:<46} before {r['rate']:>8,.0f} /s",
                      file=sys.stderr, flush=True)
            if "peer_spec" in p and peer_ok:
                spec = {**p["peer_spec"], "seed": rep}
                r = run_process(pinned([args.peer_python, str(HERE / "rejax_peer.py"), json.dumps(spec)], core),
                                f"rejax run {key}")
                r["rate"] = r["steps"] / r["seconds"]
                v.update(r.get("versions", {}))
                runs[key, "rejax"].append(r)
                print(f"  repeat {rep + 1}/{args.repeats} {w.title:<46} rejax {r['rate']:>9,.0f} /s "
                      f"(compile {r['compile_s']:.1f} s)", file=sys.stderr, flush=True)
    return runs, v


def table(keys: list[str], plan: dict[str, dict[str, Any]], runs: dict[tuple[str, str], list[dict[str, Any]]],
          peak: float) -> list[str]:
    before = any(runs[key, "before"] for key in keys)
    head = ["workload", "N", "deepq steps/s", "rejax steps/s", "deepq/rejax", "rejax compile s", "FLOPs/step",
            "deepq % peak", "rejax % peak", "final return deepq / rejax"]
    head += ["before steps/s", "deepq/before"] if before else []
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        p, dq, rj, old = plan[key], runs[key, "deepq"], runs[key, "rejax"], runs[key, "before"]
        if not dq:
            continue
        d_rates, r_rates, o_rates = [r["rate"] for r in dq], [r["rate"] for r in rj], [r["rate"] for r in old]
        ratios = [a / b for a, b in zip(d_rates, r_rates, strict=False)] if rj else []
        gains = [a / b for a, b in zip(d_rates, o_rates, strict=False)] if old else []
        pct = [f"{100 * statistics.median(xs) * p['flops_per_step'] / peak:.2f}%" if xs else "–"
               for xs in (d_rates, r_rates)]
        rets = [f"{statistics.median(r['final_return'] for r in rs):.1f}" if rs and "final_return" in rs[0]
                else "–" for rs in (dq, rj)]
        size = f"{p['total_steps']:,}" if "total_steps" in p else f"{p['seconds']:g} s"
        rows.append("| " + " | ".join([
            p["title"], size, fmt_rate(d_rates), fmt_rate(r_rates), fmt_ratio(ratios),
            f"{statistics.median(r['compile_s'] for r in rj):.1f}" if rj else "–", fmt_flops(p["flops_per_step"]),
            *pct, " / ".join(rets), *([fmt_rate(o_rates), fmt_ratio(gains)] if before else [])]) + " |")
    return rows


def checks(keys: list[str], plan: dict[str, dict[str, Any]],
           runs: dict[tuple[str, str], list[dict[str, Any]]]) -> list[str]:
    """Notes: F against deepq's own network; a shared core; more than one core used."""
    notes = []
    for key in keys:
        for r in runs[key, "deepq"]:
            m = r.get("fwd_flops_measured")
            if isinstance(m, int) and m != plan[key]["fwd_flops"]:
                notes.append(f"{key}: F from the config is {plan[key]['fwd_flops']:,}, deepq's network has "
                             f"{m:,} (obs {r.get('obs_shape')}, {r.get('n_actions')} actions): FLOPs use the config's")
                break
    shared = sorted({f"{key} {loop} {r['cpu_per_wall']:.2f}" for (key, loop), rs in runs.items() for r in rs
                     if r.get("cpu_per_wall", 1.0) < 0.9})
    if shared:
        notes.append("a window's CPU seconds per wall second fell below 0.9 (another process shared the core, or "
                     "the run waited): " + ", ".join(shared))
    over = sorted({f"{key} {loop}" for (key, loop), rs in runs.items() for r in rs
                   if r.get("cpu_per_wall", 0.0) > 1.05 or (r.get("affinity") or 1) > 1})
    if over:
        notes.append("more than one core was used by: " + ", ".join(over))
    return notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps-scale", type=float, default=1.0,
                    help="multiply every workload's steps (and the acting seconds) by this, e.g. 0.1 for a check")
    ap.add_argument("--repeats", type=int, default=3, help="runs per loop and workload, seeds 0.. (default 3)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help=f"comma-separated subset of {','.join(WORKLOADS)}")
    ap.add_argument("--json", metavar="OUT", help="also write every run's measurements and the settings here")
    ap.add_argument("--core", type=int, default=1, help="the core every run is pinned to (default 1)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with deepq for the deepq runs")
    ap.add_argument("--peer-python", default=str(ROOT / ".venv-jax" / "bin" / "python"),
                    help="interpreter with jax, rejax and gymnax (default .venv-jax; see benchmarks/peer_env.md)")
    ap.add_argument("--baseline", metavar="DIR", help="also run every training workload on the deepq of this "
                    "checkout (e.g. `git worktree add /tmp/before REV`), alternating: the 'before' columns")
    ap.add_argument("--acting-backend", default="auto", help="the backend passed to acting_rate (default auto)")
    args = ap.parse_args()
    keys = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in keys if w not in WORKLOADS]
    if bad or not keys or args.repeats < 1 or args.steps_scale <= 0:
        ap.error(f"unknown or empty workloads {bad} (choose from {','.join(WORKLOADS)}); --repeats >= 1, "
                 "--steps-scale > 0")
    core: int | None = args.core
    if shutil.which("taskset") is None or not hasattr(os, "sched_getaffinity") \
            or args.core not in os.sched_getaffinity(0):
        print(f"note: runs are not pinned (no taskset, or core {args.core} is not available here)", file=sys.stderr)
        core = None
    peer_ok = Path(args.peer_python).exists() and subprocess.run(
        [args.peer_python, "-c", "import rejax, gymnax"], capture_output=True, check=False).returncode == 0
    notes: list[str] = []
    if not peer_ok:
        notes.append(f"rejax is not importable by {args.peer_python}: no peer figures. Build the peer's virtualenv "
                     "as benchmarks/peer_env.md says (make bench-peers does).")
    acting_ok = (HERE / "selfplay_speed.py").exists()
    if "c4-acting" in keys and not acting_ok:
        notes.append("c4-acting skipped: benchmarks/selfplay_speed.py (acting_rate) does not exist yet.")

    load, start = os.getloadavg()[0], time.perf_counter()
    peaks = [self_worker(args.python, {"kind": "peak"}, core)["gflops"]]
    print(f"  sgemm peak {peaks[0]:.0f} GFLOP/s", file=sys.stderr, flush=True)
    plan = make_plan(keys, args.steps_scale)
    runs, v = measure(args, keys, plan, core, peer_ok, acting_ok)
    peaks.append(self_worker(args.python, {"kind": "peak"}, core)["gflops"])
    notes += checks(keys, plan, runs)

    cmd = " ".join(["python benchmarks/throughput.py", *sys.argv[1:]])
    machine = machine_line(cmd, v, core, (load, os.getloadavg()[0]), peaks, time.perf_counter() - start)
    print("\n" + machine)
    print("\nSteady-state env steps/s (plies/s for games) over the window (S, N] of N-step runs (S = N/5, or "
          f"learning_starts if later), median (min–max) of {args.repeats} repeat(s); deepq/rejax = median of "
          "per-repeat ratios, > 1 means deepq is faster. FLOPs per env step: network matmuls (act, target or "
          "λ-return pass, updates at 3x forward); % of peak = steps/s x FLOPs / the one-thread sgemm peak "
          f"({max(peaks):.0f} GFLOP/s). Final return: deepq's greedy evaluation / rejax's (ε 0.005), median over "
          "repeats, a learning check only.\n")
    print("\n".join(table(keys, plan, runs, max(peaks) * 1e9)))
    for note in notes:
        print(f"\nNote: {note}")
    if args.json:
        out = {"machine": machine, "peak_gflops": peaks, "core": core, "repeats": args.repeats,
               "steps_scale": args.steps_scale, "notes": notes,
               "workloads": {key: {**plan[key], "deepq": runs[key, "deepq"], "rejax": runs[key, "rejax"]}
                             for key in keys}}
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
