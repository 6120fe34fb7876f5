"""deepq sweep: every (setting, seed) of a preset or env id trained in its own process, in one sweep directory.

SWEEP/sweep.json says what the sweep is (written first, checked on a rerun); SWEEP/runs/<label>/seed-<S>/ is an
ordinary run directory trained by `deepq train` in a subprocess (or a Ray task running one), output in train.log.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from deepq.cli_args import integer
from deepq.config import Config
from deepq.errors import ConfigError, DistributedError, RunDirError, RunInterrupted
from deepq.files import read_small_text
from deepq.research import checks, interrupt
from deepq.research.sweep_plan import MAX_RUNS, cli_words, extend, plan
from deepq.signals import noted

POLL_S = 0.2  # how often runs are looked at: the bar's refresh, and the most a signal waits to be passed on
STOP_GRACE_S = 30.0  # a run not stopped this long after a signal was passed on is killed (as SLURM's KillWait)
# A run's process asks Linux for SIGTERM when the process that started it (the sweep, or its Ray task) dies, even
# by SIGKILL, so that it checkpoints and stops instead of training on unseen (PR_SET_PDEATHSIG = 1, kept across
# exec); it checks that its parent is still the one that started it, then becomes `python -m deepq.cli ARGV`.
ORPHAN_GUARD = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(1, 15); "
                "os.getppid() == int(sys.argv[1]) or sys.exit(143); "
                "os.execv(sys.executable, [sys.executable, '-m', 'deepq.cli', *sys.argv[2:]])")


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sweep", help="train every (setting, seed) in its own process, in one resumable sweep directory",
        description="Train every (setting, seed) in its own process; the same command again skips finished runs "
                    "and resumes interrupted ones. Example: deepq sweep cartpole --seeds 5 --set lr=1e-3,5e-4 --dir sw",
        allow_abbrev=False)
    p.add_argument("target", metavar="PRESET_OR_ENV_ID", help="a preset (`deepq presets`), a Gymnasium id, or a "
                   "FILE.json of Config fields (deepq tune's best.json)")
    p.add_argument("--seeds", type=integer, required=True, metavar="N", help="seeds per setting")
    p.add_argument("--first-seed", "--first_seed", dest="first_seed", type=integer, default=0, metavar="S",
                   help="the seeds are S .. S+N-1 (default 0)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="FIELD=V1,V2",
                   help="values of a Config field to sweep; the settings are every combination of the --set lists")
    p.add_argument("--common", action="append", default=[], metavar="FIELD=VALUE",
                   help="a Config field set for every run, e.g. --common eval_interval=500")
    p.add_argument("--total_steps", "--total-steps", dest="total_steps", type=integer, metavar="INT",
                   help="training length of every run in env steps (default: the preset's)")
    p.add_argument("--parallel", type=integer, metavar="P",
                   help="runs at a time (default 1; with --ray_address, as many as the cluster's CPUs take)")
    p.add_argument("--ray_address", metavar="ADDRESS",
                   help="run each (setting, seed) as a Ray task: 'auto' or HOST:PORT joins a cluster whose nodes "
                        "share the --dir path; 'local' starts a Ray on this machine (loopback only)")
    p.add_argument("--dir", required=True, metavar="SWEEP", help="the sweep directory (made if missing)")


class Job(NamedTuple):
    label: str
    seed: int
    run_dir: Path


class Handle(Protocol):  # a run being trained: a local subprocess.Popen, or a RayRun
    def poll(self) -> int | None: ...
    def send_signal(self, signum: int) -> None: ...
    def kill(self) -> None: ...


def run(args: argparse.Namespace) -> int:
    check_args(args)
    sweep = Path(args.dir).absolute()
    with interrupt.raising(lambda sig: f"deepq sweep: stopped by {sig} while checking the sweep, before any run or "
                           "file was made; nothing to resume"):
        spec, configs, need = plan(args)  # every field and value checked before anything is written
        if not args.ray_address:
            check_memory(args.parallel, len(spec["settings"]) * args.seeds, need)
    with noted() as signals:  # from here a signal stops the sweep where that is safe: not inside Ray's start
        try:
            with launcher(args.ray_address) as start:
                signals.again()  # ray.init set its own SIGTERM handler
                if signals:  # while Ray started (shut down on the way out): no run has started
                    raise RunInterrupted(signals[0])
                return sweep_into(args, sweep, spec, configs, start, signals)
        except RunInterrupted as e:
            if getattr(e, "reported", False):
                raise
            interrupt.stop(e.signum, f"deepq sweep: stopped by {interrupt.name(e.signum)} before any run started; "
                           f"the same command starts them: {command(args)}")


def sweep_into(args: argparse.Namespace, sweep: Path, spec: dict[str, Any], configs: dict[str, Config],
               start: Callable[[list[str], Path], Handle], signals: list[int]) -> int:
    """The sweep directory made and locked, sweep.json written (or extended), then its runs trained."""
    from deepq.run.log import RunDirLock, make_dir

    try:
        make_dir(sweep)
        lock = RunDirLock(sweep)
    except RunDirError as e:
        if holder := re.search(r"in use by another deepq process \(pid (\S+)\)", str(e)):
            raise RunDirError(f"{sweep} is in use by another deepq sweep (pid {holder.group(1)}); wait for it to "
                              "end or stop it (Ctrl-C checkpoints its runs), or sweep into another --dir") from None
        raise RunDirError(str(e).replace("--run_dir", "--dir")) from None
    try:
        return sweep_runs(args, sweep, extend(sweep / "sweep.json", spec), configs, start, signals)
    finally:
        lock.release()


def check_args(args: argparse.Namespace) -> None:
    """The counts and the folder typed, checked in an instant, before the sweep is planned."""
    for flag, value in (("--seeds", args.seeds), ("--parallel", args.parallel)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} {value}: give 1 or more")
    checks.at_most("--seeds", args.seeds, MAX_RUNS, "a sweep's runs: each is a process of its own, seconds to start "
                   "before it trains")
    checks.seeds("--first-seed", args.first_seed, args.seeds)
    checks.writable_dir("--dir", Path(args.dir))


def check_memory(parallel: int | None, runs: int, need: int) -> None:
    """--parallel runs at a time (at most the sweep's runs) must fit in this machine's memory together."""
    from deepq.memory import available_bytes, size_text

    at_once = min(parallel or 1, runs)
    if at_once > 1 and at_once * need > (room := available_bytes()):
        raise ConfigError(f"--parallel {parallel:,}: {at_once:,} runs at a time need ~{size_text(at_once * need)} "
                          f"(~{size_text(need)} each: a process and what its settings allocate), and this machine has "
                          f"{size_text(room)} available; give --parallel {max(room // need, 1):,} or less")


class Outcome(NamedTuple):
    final: float  # the saved agent's final evaluation: mean return
    std: float
    steps: int  # env steps trained
    solved_at: int | None  # the first periodic evaluation reaching stop_at_return
    stop_at: float | None


def outcome(run_dir: Path) -> Outcome | None:
    """What a finished run (agent.pt and a final evaluation row) reached; None for one not finished."""
    try:
        with (run_dir / "metrics.csv").open(newline="") as f:
            rows = list(csv.DictReader(f))
        stop_at = json.loads(read_small_text(run_dir / "config.json")).get("stop_at_return")
        final = next((r for r in reversed(rows) if r.get("eval_kind") == "final"), None)
        if final is None or not (run_dir / "agent.pt").is_file():
            return None
        solved = next((int(r["step"]) for r in rows if r.get("eval_kind") == "periodic" and stop_at is not None
                       and float(r["eval_return"]) >= stop_at), None)
        return Outcome(float(final["eval_return"]), float(final["eval_std"]), int(final["step"]), solved, stop_at)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, csv.Error):  # damaged: trained again
        return None


def train_argv(job: Job, target: str, fields: dict[str, Any], threads: list[str]) -> list[str]:
    """`deepq train`'s arguments: resume the run from its checkpoint, or start it (--overwrite: over a killed one)."""
    if (job.run_dir / "checkpoint" / "checkpoint.pt").is_file():
        return ["train", "--resume", str(job.run_dir), *threads]
    flags = [w for k, v in fields.items() for w in (f"--{k}", *cli_words(v))]
    start = ["--config", target] if target.endswith(".json") else [target]  # a preset, an env id or a saved config
    return ["train", *start, "--seed", str(job.seed), "--run_dir", str(job.run_dir), "--progress", "false",
            *flags, *threads, "--overwrite"]


def spawn(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m deepq.cli ARGV`, its output appended to `log`. In a session of its own, so a terminal's Ctrl-C
    reaches only the sweep, which passes it on once (a second would stop the run before its checkpoint)."""
    with log.open("a") as out:
        out.write(f"$ deepq {shlex.join(argv)}   # {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        out.flush()
        start = ["-c", ORPHAN_GUARD, str(os.getpid())] if sys.platform.startswith("linux") else ["-m", "deepq.cli"]
        return subprocess.Popen([sys.executable, *start, *argv], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def ray_task(argv: list[str], log: str) -> int:
    """A Ray task: the run's subprocess, on whichever node runs it; a cancel stops it with a checkpoint, and the
    task waits for it (a second cancel passes SIGTERM again, which stops it at once; after STOP_GRACE_S, SIGKILL)."""
    proc, kill_at = spawn(argv, Path(log)), float("inf")
    while True:
        try:  # Ray's cancel is a KeyboardInterrupt raised between bytecodes, never inside a blocking wait: poll
            if (code := proc.poll()) is not None:
                return code
            time.sleep(POLL_S)
            if time.monotonic() > kill_at:
                proc.kill()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGTERM)  # not SIGINT: a Ray worker blocks it, and so does the run it started
            kill_at = min(kill_at, time.monotonic() + STOP_GRACE_S)


class RayRun:
    """A Handle for a Ray task; its result is ready when the task (and so its subprocess) has ended."""

    def __init__(self, ray: Any, task: Any, argv: list[str], log: Path) -> None:
        self.ray, self.log, self.ref = ray, log, task.remote(argv, str(log))

    def poll(self) -> int | None:
        if not self.ray.wait([self.ref], timeout=0)[0]:
            return None
        try:
            return int(self.ray.get(self.ref))
        except self.ray.exceptions.RayError as e:  # cancelled before it started, or its worker or node died
            with self.log.open("a") as out:
                out.write(f"ray: {(str(e).strip().splitlines() or [type(e).__name__])[0][:300]}\n")
            return 1

    def send_signal(self, signum: int) -> None:
        self.ray.cancel(self.ref)

    def kill(self) -> None:  # its task kills the run STOP_GRACE_S after the first cancel: this asks again
        self.ray.cancel(self.ref)


@contextlib.contextmanager
def launcher(ray_address: str | None) -> Iterator[Callable[[list[str], Path], Handle]]:
    """What starts a run: a local subprocess, or with ray_address a Ray task (num_cpus=1) on the cluster joined
    (for 'local': started, loopback only, shut down at the end) by deepq/training/ray_cluster.py."""
    if not ray_address:
        yield spawn
        return
    from deepq.training.ray_cluster import check_address, connect, require_ray

    cfg = Config(ray_address="" if ray_address == "local" else ray_address)
    try:
        check_address(cfg)
        ray = require_ray(cfg)
        started = connect(cfg)
    except DistributedError as e:  # said for distributed training runs: in a sweep's words
        raise DistributedError(str(e).replace("num_actors > 0", "--ray_address").replace(
            "set num_actors=0 to train in one process", "drop --ray_address to train on this machine")) from None
    except SystemExit:  # ray.init's own SIGTERM handler (sys.exit) ran while Ray started: none of it is kept
        ray.shutdown()
        raise RunInterrupted(signal.SIGTERM) from None
    # shipped by value: a worker runs ray_task without importing deepq (torch: seconds and 300 MB per worker)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    task = ray.remote(num_cpus=1, max_retries=0)(ray_task)  # a retry would start the run again, not resume it
    try:
        yield lambda argv, log: RayRun(ray, task, argv, log)
    finally:
        if started:
            ray.shutdown()


class Board:
    """The progress bar over runs (rich, on a terminal) with a line above it per run ended; plain lines otherwise."""

    def __init__(self, total: int, done: int) -> None:
        self.total, self.done, self.bar = total, done, None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.bar.add_task("sweep", total=total, completed=done)
            self.bar.start()

    def line(self, text: str, counted: bool) -> None:
        """A run's line, with [runs ended/all runs] when it `counted` (it finished or failed; a stopped one waits)."""
        self.done += counted
        text = f"[{self.done}/{self.total}] {text}" if counted else text
        if self.bar is None:
            print(text, flush=True)
        else:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
            self.bar.update(self.bar.task_ids[0], completed=self.done)


def sweep_runs(args: argparse.Namespace, sweep: Path, spec: dict[str, Any], configs: dict[str, Config],
               start: Callable[[list[str], Path], Handle], signals: list[int]) -> int:
    """Train the sweep's runs that have not finished, --parallel at a time, a line as each ends; then the table.
    The SIGINT, SIGTERM and SIGHUP noted in `signals` start no more runs and are passed on to the running ones,
    which checkpoint (Ray's calls are not made inside a signal handler); one still running STOP_GRACE_S later is
    killed, keeping its last periodic checkpoint."""
    jobs = [Job(s["label"], seed, sweep / "runs" / s["label"] / f"seed-{seed}")
            for s in spec["settings"] for seed in spec["seeds"]]
    todo = [j for j in jobs if outcome(j.run_dir) is None]
    resume = sum((j.run_dir / "checkpoint" / "checkpoint.pt").is_file() for j in todo)
    parallel = min(args.parallel or (len(todo) if args.ray_address else 1), max(len(todo), 1))
    at = f"{parallel} at a time" if args.parallel or not args.ray_address else "as many at a time as Ray has CPUs"
    print(f"{spec['target']}: {len(spec['settings'])} setting(s) x {len(spec['seeds'])} seed(s) in {sweep}; "
          f"{len(jobs) - len(todo)} finished (skipped), {resume} to resume, {len(todo) - resume} to start, {at}")
    chosen = "threads" in spec["common"] or any("threads" in s["overrides"] for s in spec["settings"])
    threads = ["--threads", "1"] if (parallel > 1 or args.ray_address) and not chosen else []  # a core per run
    fields = {s["label"]: {**spec["common"], **s["overrides"]} for s in spec["settings"]}
    board, failed, passed, kill_at = Board(len(jobs), len(jobs) - len(todo)), list[str](), 0, float("inf")
    queue, running = list(todo), dict[Job, tuple[Handle, float, bool]]()
    try:
        while running or (queue and not signals):
            while queue and len(running) < parallel and not signals:
                job = queue.pop(0)
                job.run_dir.mkdir(parents=True, exist_ok=True)
                argv = train_argv(job, spec["target"], fields[job.label], threads)
                running[job] = (start(argv, job.run_dir / "train.log"), time.perf_counter(), "--resume" in argv)
            for signum in signals[passed:]:
                for handle, _, _ in running.values():
                    handle.send_signal(signum)
                kill_at = min(kill_at, time.monotonic() + STOP_GRACE_S)
            passed = len(signals)
            time.sleep(POLL_S)
            if time.monotonic() > kill_at:  # a run that does not stop (a long step, a stuck env) is not waited for
                for handle, _, _ in running.values():
                    handle.kill()
                kill_at = float("inf")
            for job, (handle, t0, resumed) in list(running.items()):
                if (code := handle.poll()) is not None:
                    del running[job]
                    text, ok = ended(job, code, time.perf_counter() - t0, resumed, bool(signals))
                    board.line(text, counted=ok or not signals)
                    failed += [] if ok or signals else [f"{job.label} seed {job.seed} (exit {code})"]
    finally:
        if board.bar is not None:
            board.bar.stop()
        stop_all([handle for handle, _, _ in running.values()])  # only an error leaves some: none goes on unseen
    if signals:
        print(f"stopped by {interrupt.name(signals[0])}: the runs in training saved checkpoints; run the same "
              f"command again to go on (finished runs are skipped, interrupted ones resumed): {command(args)}",
              file=sys.stderr, flush=True)
        return 128 + signals[0]
    print(table(jobs, spec, configs))
    if failed:
        print(f"failed: {'; '.join(failed)}; each run's train.log says why; the same command again retries them")
    print(f"compare them: deepq compare {shlex.quote(args.dir)}", flush=True)
    return 1 if failed else 0


def stop_all(handles: list[Handle]) -> None:
    """SIGTERM to each run (it checkpoints), and SIGKILL to those still running STOP_GRACE_S later."""
    for handle in handles:
        handle.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    while any(h.poll() is None for h in handles) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for handle in handles:
        if handle.poll() is None:
            handle.kill()


def ended(job: Job, code: int, wall_s: float, resumed: bool, stopping: bool) -> tuple[str, bool]:
    """The line for a run that ended, and whether it finished (also when a signal for the sweep reached it after
    its final evaluation: its run directory is complete, and the next sweep skips it)."""
    who = f"{job.label} seed {job.seed}"
    if (code == 0 or stopping) and (done := outcome(job.run_dir)) is not None:
        solved = "" if done.stop_at is None else \
            f", solved at step {done.solved_at:,}" if done.solved_at is not None else ", not solved"
        return (f"{who}: final eval {done.final:.1f} ± {done.std:.1f}, {done.steps:,} env steps{solved}, "
                f"{wall_s:.1f} s{' (resumed)' if resumed else ''}"), True
    if stopping:
        saved = (job.run_dir / "checkpoint" / "checkpoint.pt").is_file()
        return f"{who}: stopped, {'checkpoint saved' if saved else 'before its first checkpoint'}", False
    last = ((job.run_dir / "train.log").read_text(errors="replace").strip().splitlines() or ["no output"])[-1]
    return f"{who}: failed (exit {code}): {last}", False


def table(jobs: list[Job], spec: dict[str, Any], configs: dict[str, Config]) -> str:
    """Per setting: finished runs, their mean final evaluation and (with stop_at_return) how many solved."""
    rows, n = [("setting", "runs", "mean final eval", "solved")], len(spec["seeds"])
    for s in spec["settings"]:
        done = [o for j in jobs if j.label == s["label"] and (o := outcome(j.run_dir)) is not None]
        mean = f"{sum(o.final for o in done) / len(done):.1f}" if done else "-"
        solved = "-" if configs[s["label"]].stop_at_return is None else \
            f"{sum(o.solved_at is not None for o in done)}/{n}"
        rows.append((s["label"], f"{len(done)}/{n}", mean, solved))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{widths[0]}}  " + "  ".join(f"{c:>{w}}" for c, w in zip(r[1:], widths[1:], strict=True))
                     for r in rows)


def command(args: argparse.Namespace) -> str:
    """This sweep's command, as it continues the sweep."""
    given = [("--seeds", args.seeds), ("--first-seed", args.first_seed), *(("--set", s) for s in args.sets),
             *(("--common", c) for c in args.common), ("--total_steps", args.total_steps),
             ("--parallel", args.parallel), ("--ray_address", args.ray_address), ("--dir", args.dir)]
    return shlex.join(["deepq", "sweep", args.target, *(w for f, v in given if v is not None for w in (f, str(v)))])
