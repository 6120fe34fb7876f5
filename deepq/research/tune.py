"""deepq tune: Optuna's TPE sampler over RL Zoo's DQN search space (deepq/research/search_space.py), one deepq
training run per trial.

    deepq tune cartpole --trials 50 --storage sqlite:///tune.db --total_steps 20000

Trial n trains the preset with its sampled fields into DIR/trial-<n>/. After each periodic evaluation it reports the
mean of its last K evaluations so far (the measure its value is at the end) to the pruner; a pruned trial stops its
training there. The study lives in the storage, so the same command again, in this terminal or another, continues
it until --trials trials are complete or pruned in all. Ctrl-C marks the running trial failed, keeps its run
directory and queues its parameters: the next run continues that run from its checkpoint as a new trial.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import signal
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from deepq.cli_args import add_config_options, integer
from deepq.errors import ConfigError, RunDirError, RunInterrupted
from deepq.research import checks, interrupt
from deepq.research.search_space import DEFAULT_FIELDS, FIELDS, parse_fields, suggest
from deepq.research.storage import NEW_FILE, check_storage, connect, why
from deepq.signals import noted

if TYPE_CHECKING:  # optuna and the training loop are imported when a study runs: `deepq --help` builds this parser
    import optuna
    from optuna.trial import FrozenTrial, Trial

    from deepq.config import Config

PRUNERS = ("median", "halving", "none")
# Fields that change how a trial runs, not what it learns: workers of one study may differ in them.
NOT_COMPARED = ("run_dir", "progress", "device", "threads")
# The most trials a study may ask for: for every new trial Optuna reads every earlier one from the storage (and
# TPE fits them), so a study's cost grows with the square of its trials; RL Zoo's studies run hundreds.
MAX_TRIALS = 10_000


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "tune", help="tune a preset's hyperparameters with Optuna (TPE over RL Zoo's DQN search space)",
        description="Tune a preset with Optuna: TPE over RL Zoo's DQN search space, a pruner fed by the periodic "
                    "evaluations, the study in a database. The same command again (or in another terminal) "
                    "continues the study. Every `deepq train` option (--total_steps, --eval_interval, ...) fixes that "
                    "field for all trials; --seed is every trial's training seed and seeds the sampler. "
                    "Example: deepq tune cartpole --trials 50 --storage sqlite:///tune.db --total_steps 20000",
        allow_abbrev=False)
    p.add_argument("preset", metavar="PRESET", help="the preset to tune (`deepq presets` lists them)")
    p.add_argument("--trials", type=integer, required=True, metavar="N",
                   help="stop when the study has N trials complete or pruned, counting every run and worker")
    p.add_argument("--storage", metavar="URL", help="Optuna storage, e.g. sqlite:///tune.db (default: "
                   "sqlite:///DIR/study.db)")
    p.add_argument("--study", metavar="NAME", help="the study's name in the storage (default: the preset's)")
    p.add_argument("--dir", metavar="DIR", help="trial n trains into DIR/trial-n (default: runs/tune-STUDY)")
    p.add_argument("--fields", metavar="F1,F2", help=f"the fields to tune (default: {','.join(DEFAULT_FIELDS)}, "
                   f"less those a flag fixes); also {','.join(FIELDS[len(DEFAULT_FIELDS):])}")
    p.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="median (RL Zoo's default), halving (successive halving) or none (default median)")
    p.add_argument("--startup_trials", type=integer, default=5, metavar="N",
                   help="TPE draws the first N trials at random; the median pruner prunes nothing before N trials are "
                        "complete (default 5)")
    p.add_argument("--last", type=integer, default=5, metavar="K",
                   help="a trial's value: the mean of its last K periodic evaluations (default 5)")
    p.add_argument("--best", metavar="FILE", help="the best trial's Config, for deepq train --config FILE "
                   "(default: DIR/best.json)")
    add_config_options(p)


@dataclasses.dataclass(frozen=True)
class Tune:
    """One `deepq tune` command, checked."""

    preset: str
    user: Config  # the preset with the flags: what best.json is made from
    base: Config  # each trial's Config before its sampled fields: no stop when solved, no progress bar
    fields: tuple[str, ...]
    trials: int
    last: int
    startup: int
    pruner: str
    study: str
    storage: str
    dir: Path
    best: Path

    def record(self) -> dict[str, Any]:
        """What every trial of a study shares: stored with it, compared when it is continued."""
        config = {k: v for k, v in self.base.to_dict().items() if k not in NOT_COMPARED}
        return json.loads(json.dumps({"preset": self.preset, "fields": list(self.fields), "last": self.last,
                                      "config": config}))


def run(args: argparse.Namespace) -> int:
    with interrupt.raising(lambda sig: f"deepq tune: stopped by {sig} while checking its settings, before any "
                           "study or trial; nothing was written"):
        t = settings(args)
        optuna = _optuna()
        check_storage(t.storage)
    with interrupt.raising(lambda sig: f"deepq tune: stopped by {sig} between trials; the study is kept in "
                           f"{t.storage}: run the same command again to continue it"):
        with noted() as signals:  # a database's tables are not left half made
            study = open_study(t, optuna)
        if signals:
            interrupt.stop(signals[0], f"deepq tune: stopped by {interrupt.name(signals[0])} before its first trial; "
                           f"the study is kept in {t.storage}: run the same command again to continue it")
        return tune_study(t, study, optuna)


def tune_study(t: Tune, study: optuna.Study, optuna: Any) -> int:
    """Run trials until the study has t.trials finished, then say the best."""
    done = len(_finished(study))
    print(f"study {t.study!r} in {t.storage}: {done} of {t.trials} trials finished (complete or pruned)")
    print(f"tuning {', '.join(t.fields)} of the {t.preset} preset")
    print(f"each trial: {t.base.total_steps:,} env steps into {t.dir}/trial-N; value = the mean of its last {t.last} "
          f"periodic evaluations (every {t.base.eval_interval:,} steps, {t.base.eval_episodes} episodes each); TPE "
          f"sampler (seed {t.base.seed}), {t.pruner} pruner", flush=True)
    while len(_finished(study)) < t.trials:
        run_trial(t, study, optuna)
        if (best := best_trial(study)) is not None:
            write_best(t, best)
    finished = _finished(study)
    pruned = sum(tr.state == optuna.trial.TrialState.PRUNED for tr in finished)
    count = (f"{len(finished)} trials finished, {t.trials} asked (other workers finished the ones they had started)"
             if len(finished) > t.trials else f"{len(finished)} of {t.trials} trials finished")
    print(f"{count}: {len(finished) - pruned} complete, {pruned} pruned")
    best = best_trial(study)
    if best is None:
        print("no trial is complete, so there is no best config; run more trials (raise --trials)")
        return 0
    write_best(t, best)
    print(f"best: trial {best.number}, value {best.value:.2f}: {_shown(best.user_attrs['config'])}")
    print(f"best config: {t.best} (train it: deepq train --config {t.best})")
    return 0


def settings(args: argparse.Namespace) -> Tune:
    """The command's settings, each checked before a study is opened or anything is written."""
    from deepq.config import Config
    from deepq.presets import preset
    from deepq.training.setup import check

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if hasattr(args, f.name)}
    if "run_dir" in overrides:
        raise ConfigError("--run_dir: deepq tune gives each trial its own run directory, DIR/trial-N; "
                          "choose DIR with --dir")
    for flag, value, least, what in (("--trials", args.trials, 1, "a study needs at least one trial"),
                                     ("--last", args.last, 1, "a trial's value is the mean of at least one evaluation"),
                                     ("--startup_trials", args.startup_trials, 0, "a count of trials")):
        if value < least:
            raise ConfigError(f"{flag} {value}: {what}; give {least} or more (e.g. {flag} {max(least, 5)})")
        if flag != "--last":  # a K above a trial's evaluations costs nothing: its value is the mean of them all
            checks.at_most(flag, value, MAX_TRIALS, "Optuna reads every earlier trial for each new one, so a "
                           "study's cost grows with the square of its trials")
    user = preset(args.preset, **overrides)
    # Every trial trains its whole budget: a stop when solved would end trials after different numbers of
    # evaluations, and the pruner would compare them at steps that some never reach.
    base = check(user.replace(stop_at_return=overrides.get("stop_at_return"),
                              progress=overrides.get("progress", False)))
    if not 0 < base.eval_interval <= base.total_steps:
        raise ConfigError(f"eval_interval={base.eval_interval:,} with total_steps={base.total_steps:,}: a trial's "
                          "value and the pruner are made of its periodic evaluations, so set --eval_interval "
                          f"between 1 and total_steps (e.g. --eval_interval {max(base.total_steps // 10, 1)})")
    fields = parse_fields(args.fields, overrides)
    study = args.study or args.preset.lower()
    if not args.dir and ("/" in study or study.startswith(".")):  # the default DIR is runs/tune-STUDY: one folder
        raise ConfigError(f"--study {study!r}: the default --dir, runs/tune-STUDY, must be one folder name; give a "
                          "--study without '/' or a leading '.', or give --dir DIR")
    folder = Path(args.dir) if args.dir else Path("runs") / f"tune-{study}"
    t = Tune(preset=args.preset.lower(), user=user, base=base, fields=fields, trials=args.trials,
             last=args.last, startup=args.startup_trials, pruner=args.pruner, study=study,
             storage=args.storage or f"sqlite:///{folder / 'study.db'}", dir=folder,
             best=Path(args.best) if args.best else folder / "best.json")
    checks.writable_dir("--dir", t.dir)
    checks.writable_file("--best", t.best)
    return t


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError("deepq tune needs Optuna: pip install 'deepq[research]' (or pip install optuna)") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trial lines below are this command's output
    return optuna


def open_study(t: Tune, optuna: Any) -> optuna.Study:
    """The study, created or loaded; a ConfigError when the storage cannot be opened or used, the study was made
    with other settings, or DIR holds trial runs that are not this study's."""
    from sqlalchemy.exc import SQLAlchemyError  # Optuna's RDBStorage is SQLAlchemy's

    from deepq.run.log import make_dir

    make_dir(t.dir)
    storage = connect(t.storage, optuna)
    try:
        return _load_or_create(t, storage, optuna)
    except (optuna.exceptions.StorageInternalError, SQLAlchemyError) as e:  # tables of the same names, not Optuna's
        raise ConfigError(f"--storage {t.storage}: Optuna cannot use it ({why(e)}); {NEW_FILE}") from None


def _load_or_create(t: Tune, storage: Any, optuna: Any) -> optuna.Study:
    where = f"study {t.study!r} in {t.storage}"
    try:
        study: optuna.Study | None = optuna.load_study(study_name=t.study, storage=storage, pruner=_pruner(t, optuna))
    except KeyError:  # no such study yet
        study = None
    # Listed before the study's trials are read: a worker creates its trial before that trial's directory.
    present = sorted(int(p.name[6:]) for p in t.dir.glob("trial-*") if p.name[6:].isdigit())
    numbers = {tr.number for tr in study.get_trials(deepcopy=False)} if study is not None else set()
    foreign = [f"trial-{n}" for n in present if n not in numbers]
    if foreign:
        raise RunDirError(f"{t.dir} holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which {where} "
                          "has no trial for: give another --dir, or the --storage and --study those runs belong to")
    if study is None:  # load_if_exists: another worker may be creating it at this moment
        study = optuna.create_study(storage=storage, study_name=t.study, direction="maximize", load_if_exists=True,
                                    pruner=_pruner(t, optuna))
    record, saved = t.record(), study.user_attrs.get("deepq_tune")
    if saved is None and study.get_trials(deepcopy=False):
        raise ConfigError(f"{where} was not made by deepq tune; give another --study NAME")
    if saved is None:
        study.set_user_attr("deepq_tune", record)
    elif saved != record:
        raise ConfigError(f"{where} was made with other settings ({_differences(saved, record)}): rerun it with its "
                          "settings, or start another study with --study NAME")
    return study


def _differences(saved: dict[str, Any], now: dict[str, Any]) -> str:
    old, new = {**saved["config"], **saved, "config": None}, {**now["config"], **now, "config": None}
    def text(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else repr(v)

    diff = [f"{k} {text(old.get(k))} there, {text(new.get(k))} here" for k in new if old.get(k) != new.get(k)]
    return "; ".join(diff[:3]) + ("; ..." if len(diff) > 3 else "")


def _pruner(t: Tune, optuna: Any) -> optuna.pruners.BasePruner:
    """RL Zoo's pruners, with its steps (evaluations) in env steps."""
    if t.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=t.startup, n_warmup_steps=t.base.total_steps // 3)
    if t.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=t.base.eval_interval, reduction_factor=4,
                                                      min_early_stopping_rate=0)
    return optuna.pruners.NopPruner()


def sampler(t: Tune, number: int, optuna: Any) -> optuna.samplers.BaseSampler:
    """Trial `number`'s TPE sampler, seeded by (--seed, number): parallel workers with one --seed draw different
    trials, and a study run again draws the same ones."""
    import numpy as np

    seed = int(np.random.SeedSequence([t.base.seed, number]).generate_state(1)[0])
    # multivariate as RL Zoo's; the constant liar counts the trials other workers are running (older Optuna: off)
    return optuna.samplers.TPESampler(n_startup_trials=t.startup, seed=seed, multivariate=True, constant_liar=True)


def run_trial(t: Tune, study: optuna.Study, optuna: Any) -> None:
    """Ask the study for a trial, train it (continuing an interrupted trial's run), tell the study, print its line.
    Ctrl-C marks the trial failed and queues it to be continued, then goes on up as KeyboardInterrupt."""
    from deepq.errors import NonFiniteLossError
    from deepq.training.loop import train

    state = optuna.trial.TrialState
    with noted() as asking:  # a trial created is told how it ended, even if a signal came meanwhile
        trial = study.ask()
    run_dir: Path | None = None
    try:
        if asking:
            raise RunInterrupted(asking[0])
        study.sampler = sampler(t, trial.number, optuna)  # a trial samples at its first suggest, with this one
        values = suggest(trial, t.base, t.fields)
        continues = trial.user_attrs.get("continues")
        run_dir = Path(trial.user_attrs.get("run_dir", t.dir / f"trial-{trial.number}"))
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("config", {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()})
        means: list[float] = []
        pruned_at: list[int] = []

        def report(step: int, mean: float) -> None:
            means.append(mean)
            trial.report(statistics.fmean(means[-t.last:]), step)

        def on_evaluation(step: int, result: Any) -> bool:
            report(step, result.mean)
            if step < t.base.total_steps and trial.should_prune():  # at the end, pruning would save nothing
                pruned_at.append(step)
            return bool(pruned_at)

        resume = None
        if continues is not None:  # the evaluations before its checkpoint count as they did for the trial it continues
            for step, mean in periodic_evaluations(run_dir):
                report(step, mean)
            resume = run_dir if (run_dir / "checkpoint" / "checkpoint.pt").is_file() else None
        with interrupt.stderr_without(interrupt.TRAIN_STOP):  # its `deepq train --resume` line: tune says its own
            train(t.base.replace(run_dir=str(run_dir), **values), resume=resume, overwrite=continues is not None,
                  on_evaluation=on_evaluation)
    except NonFiniteLossError as e:  # as RL Zoo: settings that diverge are pruned, so TPE learns to avoid them
        trial.set_user_attr("diverged", str(e))
        _told(study.tell(trial, state=state.PRUNED), "pruned: TD loss diverged")
        return
    except KeyboardInterrupt as e:
        interrupted(t, study, trial, run_dir, optuna, int(getattr(e, "signum", signal.SIGINT)))
    except BaseException:
        study.tell(trial, state=state.FAIL)
        raise
    how = "" if continues is None else f" (continued trial {continues})"
    if not means:  # max_minutes can end a run before its first evaluation: every trial would, so stop here
        study.tell(trial, state=state.FAIL)
        raise ConfigError(f"trial {trial.number} stopped before its first periodic evaluation (max_minutes="
                          f"{t.base.max_minutes:g}), so it has no value; raise --max_minutes or lower --eval_interval")
    if pruned_at:
        _told(study.tell(trial, state=state.PRUNED), f"pruned at step {pruned_at[0]:,}{how}")
    else:
        _told(study.tell(trial, statistics.fmean(means[-t.last:])), f"complete{how}")


def _told(trial: FrozenTrial, status: str) -> None:
    value = "    none" if trial.value is None else f"{trial.value:8.2f}"
    print(f"trial {trial.number:<3} value {value}  {status:<22} {_shown(trial.user_attrs['config'])}", flush=True)


def _shown(config: dict[str, Any]) -> str:
    def text(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, list) else f"{v:.4g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={text(v)}" for k, v in config.items())


def interrupted(t: Tune, study: optuna.Study, trial: Trial, run_dir: Path | None, optuna: Any,
                signum: int) -> NoReturn:
    """After Ctrl-C (or SIGTERM, SIGHUP) in a trial: FAIL is the honest state of a trial that did not finish, and
    one that counts for nothing and blocks nothing; its parameters are queued, so the next run continues its run.
    One line says so, and the command stops (exit 128 + signum)."""
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    resumable = run_dir is not None and (run_dir / "checkpoint" / "checkpoint.pt").is_file()
    if resumable:
        study.enqueue_trial(trial.params, user_attrs={"continues": trial.number, "run_dir": str(run_dir)})
    what = f"its run {run_dir} is kept, and the next run continues it from its checkpoint" if resumable \
        else "the next run starts a new trial"
    interrupt.stop(signum, f"deepq tune: stopped by {interrupt.name(signum)}: trial {trial.number} interrupted and "
                   f"marked failed; {what}. The study is kept in {t.storage} ({len(_finished(study))} of {t.trials} "
                   "trials finished): run the same command again to continue")


def periodic_evaluations(run_dir: Path) -> list[tuple[int, float]]:
    """(step, mean return) of each periodic evaluation in run_dir/metrics.csv (none when there is no file)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [(int(r["step"]), float(r["eval_return"])) for r in csv.DictReader(f) if r["eval_kind"] == "periodic"]


def _finished(study: optuna.Study) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The complete trial with the highest value (a pruned trial's value is from fewer steps: not comparable)."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda tr: float(tr.value or 0.0)) if complete else None  # complete: never None


def write_best(t: Tune, best: FrozenTrial) -> None:
    """best.json: the best trial's Config, a JSON object of Config fields for `deepq train --config`. The preset's
    stop_at_return and progress bar are back (unless a flag set them); run_dir is left out: training it is a new run."""
    from deepq.run.log import atomic_write_text

    fields = t.user.replace(**best.user_attrs["config"]).to_dict()
    fields.pop("run_dir")
    t.best.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(t.best, json.dumps(fields, indent=2) + "\n")
