"""The training loop. It reads like the algorithm:

    initialise replay D and Q-network θ (and target θ⁻)
    for each step:
        a  = ε-greedy(Q(s; θ))
        s', r, terminated, truncated = env.step(a)
        D.add(s, a, r, s', terminated)
        every k steps: sample a minibatch from D, g gradient steps on the TD loss
        every C steps: θ⁻ ← θ
        s = reset() if the episode ended else s'

One loop serves every env and both ways of getting targets. What differs is an `Experience`
(deepq/training/experience.py): how experience is collected and what one gradient step fits. `Transitions`
(deepq/training/dqn.py) is DQN's: env steps into replay, TD updates; for two-player games with self-play
deciding who moves (deepq/games/selfplay.py). target='mcts' uses deepq/training/mcts.py's `SearchedEpisodes`:
episodes played with tree search, Q regressed toward the search's values. target='pqn' uses deepq/training/pqn.py's
`Rollouts`: a rollout of every env, then epochs of minibatches regressed toward its λ-returns (no replay, no
target network); `mode.updates` says how many gradient steps are due, the one place the modes differ in it.
The env kind (deepq/envs/kinds.py) is resolved once, at set-up, and picks the mode with cfg.target.

Progress, logging and checkpoints are side channels called from here; the core
(agent, loss, replay, networks) never imports them.
"""

from __future__ import annotations

import errno
import sys
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deepq.agent import Agent
from deepq.config import RESUME_FIXED, Config
from deepq.core.device import resolve_device, set_cpu_threads
from deepq.core.results import EvalResult
from deepq.envs.base import VecEnv
from deepq.envs.kinds import EnvKind
from deepq.errors import CheckpointError, ConfigError, DiskFullError, NonFiniteLossError, RunDirError, RunInterrupted
from deepq.files import atomic_save, first_sentence, safe_load
from deepq.games.kind import GameKind
from deepq.run.log import RunDirLock, RunLog, new_run_dir, open_run_dir, read_run_id, write_config
from deepq.run.plot import plot_learning_curve
from deepq.run.progress import Progress
from deepq.signals import Interrupts
from deepq.signals import name as signal_name
from deepq.training.collect import Players, SingleAgent
from deepq.training.control import (
    CHECKPOINT_FORMAT,
    LoopState,
    checkpoint_and_stop,
    checkpoint_path,
    crossings,
    diverged_advice,
    last_checkpoint,
    log_episodes,
    lr_at,
    running,
    time_limit,
    why_stopped,
)
from deepq.training.dqn import Transitions, exploration, make_replay
from deepq.training.evaluate import evaluate_kind
from deepq.training.experience import Experience
from deepq.training.setup import check, env_kind

__all__ = ["CHECKPOINT_FORMAT", "Experience", "Transitions", "checkpoint_path", "crossings", "make_replay", "train"]


def make_experience(cfg: Config, rng: np.random.Generator, kind: EnvKind,
                    stop: Callable[[], bool] = lambda: False) -> Experience:
    """The run's builder: the envs, who moves in them, the Agent (learner and acting policy) for their shapes, and the
    training mode that collects and learns with them, picked by cfg.target and the env kind: searched episodes,
    PQN rollouts or DQN transitions, self-play or single-agent, in this process or with Ray actors. Each object is
    built once, here, and handed to what uses it. `stop`: a signal asked the loop to stop (distributed runs' waits
    poll it)."""
    if cfg.target == "mcts":  # Q regressed toward tree-search values after each round of episodes
        from deepq.training.mcts import SearchedEpisodes

        env = kind.make_search_env(cfg)  # the actors' search envs, where there are actors: this one gives shapes
        agent = build_agent(cfg, kind, tuple(env.obs_shape), env.n_actions)
        if cfg.num_actors > 0:
            from deepq.training.distributed import DistributedSearch

            return DistributedSearch(cfg, rng, kind, env, agent, stop)
        return SearchedEpisodes(cfg, rng, kind, env, agent)
    if cfg.num_actors > 0:  # Ape-X: Ray actors collect, this process learns
        from deepq.training.distributed import Distributed

        probe = kind.make_vec_env(cfg.replace(num_envs=1))  # one env of the actors' kind: shapes and names
        probe.close()
        agent = build_agent(cfg, kind, probe.obs_shape, probe.n_actions)
        return Distributed(cfg, rng, kind, probe, agent, stop)
    mode = Transitions
    if cfg.target == "pqn":  # Q regressed toward each rollout's λ-returns: no replay, no target network
        from deepq.training.pqn import Rollouts

        mode = Rollouts  # type: ignore[assignment]
    envs: VecEnv
    players: Players
    if isinstance(kind, GameKind):  # legal moves only; the learner, or a past snapshot, moves
        envs = games = kind.make_vec_env(cfg)
        players = kind.self_play(games, cfg)
    else:
        envs = kind.make_vec_env(cfg)
        players = SingleAgent(envs)
    agent = build_agent(cfg, kind, envs.obs_shape, envs.n_actions)
    return mode(cfg, rng, kind, envs, players, agent)


def build_agent(cfg: Config, kind: EnvKind, obs_shape: tuple[int, ...], n_actions: int) -> Agent:
    """The run's Agent: its network's architecture as the env kind resolves it (arch='auto': MLP for vectors and
    boards, CNN for images), its learner and policy."""
    return Agent(obs_shape, n_actions, cfg, arch=kind.arch(cfg, obs_shape))


def train(cfg: Config, resume: str | Path | None = None, overwrite: bool = False,
          on_evaluation: Callable[[int, EvalResult], bool | None] | None = None) -> Agent:
    """Train a DQN agent; writes a run directory and returns the trained Agent.

    With `resume=RUN_DIR`, continue from that run's last checkpoint; on CPU the result is
    identical to a run that never stopped. A fresh run refuses a cfg.run_dir that already holds a
    run unless `overwrite` (which deletes that run's files). One process at a time has a run directory.
    `on_evaluation(step, result)` is called after each periodic evaluation; when it returns True the run
    stops there as at total_steps (agent.pt, a checkpoint, the final evaluation), e.g. a tuner's pruner.
    """
    check(cfg)  # the Config's fields, then its env kind's (games), before anything is written
    resolve_device(cfg.device)  # a device torch cannot see is refused before anything is written
    torch.manual_seed(cfg.seed)
    set_cpu_threads(cfg.threads)
    torch.set_flush_denormal(cfg.flush_denormal)  # 16 denormals in RMSProp state: MinAtar updates 2.3x slower
    rng = np.random.default_rng(cfg.seed)  # ε-greedy draws and minibatch indices
    if cfg.total_steps <= cfg.learning_starts:
        print(f"warning: total_steps ({cfg.total_steps:,}) <= learning_starts ({cfg.learning_starts:,}): no "
              "gradient step will be taken, so the agent learns nothing; raise total_steps or lower learning_starts",
              file=sys.stderr, flush=True)
    lock: RunDirLock | None = None
    run_dir: Path | None = None
    # Set-up (envs, Ray, the run directory) answers a signal at once, undoing what it started; the loop defers it
    # to a checkpoint; the final evaluation stops at once, agent.pt and the checkpoint saved (deepq/signals.py).
    with Interrupts() as interrupts:
        try:
            if resume is not None or cfg.run_dir:  # a named folder: check it before building anything
                run_dir = Path(resume) if resume is not None else Path(cfg.run_dir)
                lock = open_run_dir(run_dir, resume is None, overwrite)
            kind = env_kind(cfg)  # resolved once: the envs it builds and what differs (games, Atari, ...)
            mode = make_experience(cfg, rng, kind, stop=lambda: interrupts.requested)
            try:
                if run_dir is None:
                    cfg = _named(cfg, mode)
                    run_dir = new_run_dir(cfg)
                    lock = open_run_dir(run_dir, True, overwrite)
                return _train(cfg, kind, mode, rng, run_dir, resume is not None, interrupts, on_evaluation)
            finally:
                mode.close()  # envs, and a distributed run's actors and the Ray it started
        except RunInterrupted as e:
            if not e.reported:
                kept = (f"{run_dir} is as it was; continue with `deepq train --resume {run_dir}`"
                        if resume is not None else "nothing was written")
                print(f"stopped by {signal_name(e.signum)} during set-up, before training began: {kept}",
                      file=sys.stderr, flush=True)
                e.reported = True
            raise
        finally:
            if lock is not None:
                lock.release(tidy=resume is None)  # a fresh run that wrote nothing leaves no folder behind


def _named(cfg: Config, mode: Experience) -> Config:
    """An env factory without a usable name (a lambda) names the run after the env it built."""
    if cfg.name or isinstance(cfg.env, str) or getattr(cfg.env, "__name__", "<").isidentifier():
        return cfg
    return cfg.replace(name=mode.env_label or "custom-env")


def _train(cfg: Config, kind: EnvKind, mode: Experience, rng: np.random.Generator, run_dir: Path,
           resumed: bool, interrupts: Interrupts,
           on_evaluation: Callable[[int, EvalResult], bool | None] | None = None) -> Agent:
    agent = mode.agent
    eps_at = exploration(cfg)
    if cfg.num_actors and cfg.actor_eps == "apex":  # each actor's ε is fixed; the progress bar shows their mean
        from deepq.training.actor import apex_epsilon

        mean_eps = sum(apex_epsilon(i, cfg.num_actors) for i in range(cfg.num_actors)) / cfg.num_actors
        eps_at = lambda step: mean_eps  # noqa: E731
    state = LoopState(ep_return=[0.0] * cfg.num_envs, ep_length=[0] * cfg.num_envs)
    if resumed:
        run_id, metrics_bytes = _restore(run_dir, cfg, mode, rng, state)
        print(f"resuming {run_dir} at step {state.step:,} of {cfg.total_steps:,}", flush=True)  # bar or not
    else:
        run_id, metrics_bytes = uuid.uuid4().hex[:12], None
        mode.start()
    interrupts.deferring = True  # the run has files from here: a signal is answered with a checkpoint, as in the loop
    write_config(run_dir, cfg, run_id)
    log = RunLog(run_dir, resume_step=state.step if resumed else None, resume_bytes=metrics_bytes,
                 actor_column=cfg.num_actors > 0)
    bar = Progress(cfg.total_steps, state.step, enabled=cfg.progress, title=cfg.run_name,
                   return_label=kind.return_label)

    def save_checkpoint() -> None:
        size = log.flush()  # metrics.csv as of this checkpoint: a resume cuts it back to these bytes
        atomic_save({"format": CHECKPOINT_FORMAT, "version": 1, "run_id": run_id, "metrics_bytes": size,
                     "config": cfg.to_dict(), "agent": agent.state_dict(), "rng": rng.bit_generator.state,
                     "torch_rng": torch.get_rng_state(), "loop": state.saved(), **mode.state_dict(),
                     # noisy nets draw their noise on the training device: a CUDA run resumes with its generator too
                     "cuda_rng": torch.cuda.get_rng_state(agent.device) if agent.device.type == "cuda" else None},
                    checkpoint_path(run_dir))

    out_of_time = time_limit(cfg)
    failed = True
    updates = state.updates if cfg.num_actors else None  # distributed runs show updates/s on the progress bar
    caller_stopped = False  # on_evaluation said stop (not checkpointed: a resumed run goes on)
    saved = False  # agent.pt and the last checkpoint written: what is left is the final evaluation
    try:
        with interrupts.deferred() as interrupted, warnings.catch_warnings():
            # NumPy's overflow warnings from a diverging update: the non-finite loss check says it in one line
            warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"deepq\.core\.fast_(path|mlp|q)")
            while running(state, cfg, interrupted, out_of_time) and not caller_stopped:
                prev = state.step
                got = mode.collect(state, eps_at)  # act, step the env(s), store
                log_episodes(state, got.episodes, got.eps, log, got.actor)  # one metrics.csv row
                if state.step >= cfg.learning_starts and mode.can_learn():
                    if cfg.lr_decay:  # the rate for this step's updates
                        for group in agent.optimizer.param_groups:
                            group["lr"] = lr_at(cfg, prev)
                    for _ in range(mode.updates(prev, state.step)):  # the replay ratio; PQN: its minibatches
                        state.add_loss(float(mode.learn(state.step)))
                mode.after_updates(prev, state.step)  # θ⁻ ← θ every C steps
                updates = state.updates if cfg.num_actors else None
                if crossings(prev, state.step, cfg.eval_interval):
                    result = _evaluate(agent, cfg, kind, state, log, bar)
                    if on_evaluation is not None and on_evaluation(state.step, result):
                        caller_stopped = True
                if crossings(prev, state.step, cfg.checkpoint_interval):
                    save_checkpoint()
                    log.speed(state.step, bar.steps_per_sec(state.step))
                if crossings(prev, state.step, 256):
                    bar.update(state.step, eps_at(state.step), state.recent_mean(), state.last_eval, updates)
            interrupted.disarm()  # the loop's check is reached: what is left is saving
            bar.update(state.step, eps_at(state.step), state.recent_mean(), state.last_eval, updates)
            if interrupted.signum is not None:
                bar.close()
                checkpoint_and_stop(state.step, run_dir, interrupted.signum, save_checkpoint)
            agent.save(run_dir / "agent.pt")
            save_checkpoint()  # lets `--resume` extend a finished run with a larger total_steps
            saved = True
        interrupts.raise_if_requested()  # a signal while they were saved: stop as in the final evaluation
        bar.finish(state.step, f"stopped by on_evaluation at step {state.step:,}" if caller_stopped
                   else why_stopped(cfg, state))
        bar.message(f"final evaluation of {run_dir / 'agent.pt'}: {kind.episodes_text(cfg.eval_episodes)} ...")
        final = evaluate_kind(agent, kind, cfg.eval_episodes)
        log.evaluation(state.step, final, final=True)
        failed = False
    except RunInterrupted as e:
        if not e.reported:  # a signal the loop did not defer: a second one, or one after the loop
            bar.close()
            cut = (f"the step in progress did not end within {interrupts.OVERDUE_S:g} s of the signal" if
                   interrupts.overdue else "a second signal")
            said = (f"during the final evaluation: {run_dir / 'agent.pt'} and its checkpoint (step {state.step:,}) "
                    f"are saved; `deepq eval {run_dir}` evaluates it" if saved else
                    f"at step {state.step:,} ({cut}, so no new checkpoint): {last_checkpoint(run_dir)} Continue "
                    f"with `deepq train --resume {run_dir}`")
            print(f"stopped by {signal_name(e.signum)} {said}", file=sys.stderr, flush=True)
            e.reported = True
        raise
    except NonFiniteLossError as e:
        raise NonFiniteLossError(f"{e} at env step {state.step:,} (update {state.updates:,}); the run stopped. "
                                 + diverged_advice(cfg, run_dir)) from None
    except OSError as e:  # a full disk: at a checkpoint (DiskFullError), or writing metrics or events
        if isinstance(e, DiskFullError) or e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            what = str(e).split(";")[0] if isinstance(e, DiskFullError) else f"{e.strerror} writing to {run_dir}"
            raise DiskFullError(f"{what} at step {state.step:,}; the run stopped. {last_checkpoint(run_dir)} "
                                f"Free space, then continue with `deepq train --resume {run_dir}`") from None
        raise
    finally:
        bar.close()
        _close(log, quiet=failed)

    how = {"mcts": ", MCTS targets", "pqn": ", PQN"}.get(cfg.target, "")
    how += f", evaluated against {cfg.eval_opponent}" if kind.two_player else ""
    try:
        plot_learning_curve(run_dir, title=f"{cfg.run_name} (seed {cfg.seed}{how})", threshold=cfg.stop_at_return,
                            game=kind.two_player)
    except Exception as e:  # the run is complete; a picture that cannot be drawn must not fail it
        print(f"warning: {run_dir / 'learning_curve.png'} was not drawn ({type(e).__name__}: "
              f"{first_sentence(str(e)) or 'see metrics.csv'}); the run is complete: agent.pt, metrics.csv and the "
              "checkpoint are saved", file=sys.stderr, flush=True)
    if cfg.progress:
        print(f"final evaluation: {final}")
        print(f"done: {state.step:,} env steps, {state.episodes:,} episodes; run directory {run_dir}", flush=True)
    agent.run_dir, agent.final_evaluation = run_dir, final  # what the run adds to the Agent (declared there)
    return agent


def _close(log: RunLog, quiet: bool) -> None:
    """Close the run log; while another error is on its way out, a second one (a full disk) must not hide it."""
    try:
        log.close()
    except OSError:
        if not quiet:
            raise


def _evaluate(agent: Agent, cfg: Config, kind: EnvKind, state: LoopState, log: RunLog, bar: Progress) -> EvalResult:
    # Each evaluation gets fresh reset seeds, distinct from training's, so it is an honest sample.
    state.evals += 1
    seed = int(np.random.SeedSequence([cfg.seed, 0xE7A1, state.evals]).generate_state(1)[0])
    # Games: against cfg.eval_opponent, eval_episodes games from each seat, each scored +1/0/−1.
    result = evaluate_kind(agent, kind, cfg.eval_episodes, eps=cfg.eval_eps, seed=seed)
    log.evaluation(state.step, result)
    state.last_eval = result.mean
    if cfg.stop_at_return is not None and result.mean >= cfg.stop_at_return:
        state.solved_at = state.step
        bar.message(f"solved at step {state.step:,}: evaluation {result}")
    return result


def _restore(run_dir: Path, cfg: Config, mode: Experience, rng: np.random.Generator,
             state: LoopState) -> tuple[str, int | None]:
    """Load the run's checkpoint into the freshly built objects; returns the run's id and metrics.csv's size
    when the checkpoint was written."""
    path = checkpoint_path(run_dir)
    data = safe_load(path, CHECKPOINT_FORMAT)
    run_id, own = data.get("run_id", ""), read_run_id(run_dir)
    if own and run_id != own:
        raise RunDirError(f"{path} belongs to another run (run id {run_id or 'none'}; {run_dir}/config.json has "
                          f"{own}): it was copied here from elsewhere. Resume that run from its own directory")
    saved = {**Config().to_dict(), **data["config"]}  # a field added since the checkpoint has its default there
    now = cfg.to_dict()
    for name in RESUME_FIXED:  # the fields tagged resume_fixed in deepq/config.py, in field order
        if saved.get(name) != now.get(name):
            raise ConfigError(f"cannot resume {run_dir}: {name} was {saved.get(name)!r} in that run "
                              f"and is {now.get(name)!r} now; {name} cannot change on resume")
    try:
        mode.agent.load_state_dict(data["agent"])
        for group in mode.agent.optimizer.param_groups:
            group["lr"] = lr_at(cfg, data["loop"]["step"])  # a resumed run may lower lr (e.g. after a NaN loss)
        rng.bit_generator.state = data["rng"]
        torch.set_rng_state(data["torch_rng"])
        if data.get("cuda_rng") is not None and mode.agent.device.type == "cuda":  # a CPU resume of it: no such state
            torch.cuda.set_rng_state(data["cuda_rng"], mode.agent.device)
        for k, v in data["loop"].items():
            setattr(state, k, v)
        if saved.get("stop_at_return") != cfg.stop_at_return:
            state.solved_at = None  # solved under the old threshold; the new one decides when to stop
        mode.load_state_dict(data)
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot resume from {path}: {e}") from e
    return run_id or own or uuid.uuid4().hex[:12], data.get("metrics_bytes")
