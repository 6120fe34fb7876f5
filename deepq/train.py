"""The training loop. It reads like the algorithm:

    initialise replay D and Q-network θ (and target θ⁻)
    for each step:
        a  = ε-greedy(Q(s; θ))
        s', r, terminated, truncated = env.step(a)
        D.add(s, a, r, s', terminated)
        every k steps: sample a minibatch from D, g gradient steps on the TD loss
        every C steps: θ⁻ ← θ
        s = reset() if the episode ended else s'

Progress, logging and checkpoints are side channels called from here; the core
(agent, loss, replay, networks) never imports them.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from deepq.agent import Agent, atomic_save, safe_load, set_cpu_threads
from deepq.config import Config
from deepq.envs import VecEnv, make_vec_env
from deepq.errors import CheckpointError, ConfigError, NonFiniteLossError
from deepq.evaluate import evaluate
from deepq.explore import EpsilonSchedule, epsilon_greedy
from deepq.frame_replay import FrameReplay
from deepq.games import selfplay
from deepq.games.adapters import is_game
from deepq.per import PrioritizedSampler, beta_schedule
from deepq.progress import Progress
from deepq.replay import ReplayMemory
from deepq.runlog import RunLog, new_run_dir, plot_learning_curve, write_config

Replay = ReplayMemory | FrameReplay
CHECKPOINT_FORMAT = "deepq-checkpoint"
# Fields a resumed run must share with its checkpoint (others, e.g. total_steps or lr, may change).
RESUME_FIXED = ("env", "seed", "num_envs", "buffer_size", "hidden_sizes", "target", "network", "arch",
                "dueling", "noisy", "atoms", "prioritized", "per_alpha",
                "frame_stack", "backend", "noop_max", "frame_skip", "screen_size", "grayscale", "sticky_actions",
                "fire_reset", "max_episode_frames", "opponent_pool")


@dataclass
class LoopState:
    """Counters and episode bookkeeping, saved in every checkpoint."""

    step: int = 0  # env steps collected, summed over envs
    updates: int = 0  # gradient steps taken
    episodes: int = 0  # episodes finished
    evals: int = 0  # evaluations run
    ep_return: list[float] = field(default_factory=list)  # per env: return of the episode in progress
    ep_length: list[int] = field(default_factory=list)
    recent: list[float] = field(default_factory=list)  # returns of the last 20 finished episodes
    last_eval: float | None = None
    solved_at: int | None = None  # env step of the first evaluation reaching cfg.stop_at_return
    loss_sum: float = 0.0  # TD loss summed since the last finished episode (for metrics.csv)
    loss_count: int = 0


def crossings(prev: int, now: int, every: int) -> int:
    """How many multiples of `every` lie in (prev, now]; 0 when every == 0 (disabled)."""
    return now // every - prev // every if every > 0 else 0


def make_replay(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, device: torch.device,
                n_actions: int) -> Replay:
    """Frame histories (frame_stack > 1) store each frame once; anything else is stored as is.
    Games store the legal moves of s', and discount by −γ: each ply hands the turn to the opponent,
    whose value is ours negated (see td_target)."""
    if cfg.frame_stack > 1:
        return FrameReplay(cfg.buffer_size, obs_shape, cfg.num_envs, obs_dtype=obs_dtype, device=device,
                           n_step=cfg.n_step, gamma=cfg.gamma)
    game = is_game(cfg.env)
    return ReplayMemory(cfg.buffer_size, obs_shape, obs_dtype=obs_dtype, device=device, num_envs=cfg.num_envs,
                        n_step=cfg.n_step, gamma=-cfg.gamma if game else cfg.gamma,
                        legal_actions=n_actions if game else 0)


def time_limit(cfg: Config) -> Callable[[], bool]:
    """A check that says when cfg.max_minutes of wall-clock time have passed (never, when 0)."""
    if cfg.max_minutes <= 0:
        return lambda: False
    end = time.monotonic() + 60 * cfg.max_minutes
    return lambda: time.monotonic() >= end


def running(state: LoopState, cfg: Config, interrupted: _DeferredInterrupt, out_of_time: Callable[[], bool]) -> bool:
    """A training loop goes on until total_steps, a solving evaluation, Ctrl-C or max_minutes."""
    return (state.step < cfg.total_steps and state.solved_at is None and not interrupted.requested
            and not out_of_time())


def checkpoint_and_stop(step: int, run_dir: Path, save_checkpoint: Callable[[], None]) -> NoReturn:
    """After a Ctrl-C (between steps): save a consistent checkpoint, say how to continue, stop."""
    save_checkpoint()
    print(f"interrupted at step {step:,}: checkpoint saved; continue with `deepq train --resume {run_dir}`",
          file=sys.stderr, flush=True)
    raise KeyboardInterrupt


def checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "checkpoint" / "checkpoint.pt"


def train(cfg: Config, resume: str | Path | None = None) -> Agent:
    """Train a DQN agent; writes a run directory and returns the trained Agent.

    With `resume=RUN_DIR`, continue from that run's last checkpoint; on CPU the result is
    identical to a run that never stopped.
    """
    cfg.validate()
    if cfg.target == "mcts":  # Q regressed toward tree-search values after each round of episodes
        from deepq.mcts_train import train_mcts

        return train_mcts(cfg, resume)
    torch.manual_seed(cfg.seed)
    set_cpu_threads(cfg.threads)
    torch.set_flush_denormal(cfg.flush_denormal)  # 16 denormals in RMSProp state: MinAtar updates 2.3x slower
    rng = np.random.default_rng(cfg.seed)  # ε-greedy draws and minibatch indices

    envs = make_vec_env(cfg)
    agent = Agent(envs.obs_shape, envs.n_actions, cfg)
    memory = make_replay(cfg, envs.obs_shape, envs.obs_dtype, agent.device, envs.n_actions)
    game = is_game(cfg.env)
    pool = selfplay.OpponentPool(cfg.opponent_pool, cfg.num_envs) if game and cfg.opponent_pool else None
    eps_at: Callable[[int], float] = EpsilonSchedule.from_config(cfg)
    if cfg.noisy and not cfg.eps_with_noisy:  # uniform actions until learning starts (one fixed noise draw
        # would fill the replay with one action), then the noise explores: no epsilon
        eps_at = lambda step: 1.0 if step < cfg.learning_starts else 0.0  # noqa: E731
    per = PrioritizedSampler(memory.num_slots, cfg.per_alpha) if cfg.prioritized else None
    state = LoopState(ep_return=[0.0] * cfg.num_envs, ep_length=[0] * cfg.num_envs)

    if resume is None:
        run_dir = new_run_dir(cfg)
        obs = envs.reset()
    else:
        run_dir = Path(resume)
        obs = _restore(checkpoint_path(run_dir), cfg, agent, memory, envs, rng, state, per, pool)
    write_config(run_dir, cfg)
    log = RunLog(run_dir, resume_step=state.step if resume is not None else None)
    bar = Progress(cfg.total_steps, state.step, enabled=cfg.progress, title=cfg.run_name)

    def save_checkpoint() -> None:
        atomic_save({"format": CHECKPOINT_FORMAT, "version": 1, "config": cfg.to_dict(),
                     "agent": agent.state_dict(), "memory": memory.state_dict(), "envs": envs.state_dict(),
                     "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                     "per": per.state_dict() if per is not None else None,
                     "pool": pool.state_dict() if pool is not None else None,
                     "loop": vars(state).copy()}, checkpoint_path(run_dir))

    out_of_time = time_limit(cfg)
    interrupted = _DeferredInterrupt()
    try:
        with interrupted:
            while running(state, cfg, interrupted, out_of_time):
                prev = state.step
                eps = eps_at(prev)
                if game:  # legal moves only; the learner, or a past snapshot, moves
                    actions = selfplay.act(agent, envs, obs, eps, rng, pool)  # (N,)
                else:
                    actions = epsilon_greedy(agent.act, obs, eps, envs.n_actions, rng)  # (N,)
                out = envs.step(actions)
                # s' is the true final observation where an episode ended (terminated or truncated);
                # only `terminated` stops the bootstrap. Clipped rewards train; raw rewards are logged.
                rewards = np.sign(out.rewards) if cfg.clip_rewards else out.rewards
                slots = memory.add(obs, actions, rewards, out.final_obs, out.terminated, out.ended, out.next_legal)
                if per is not None:
                    per.add(slots)  # new transitions get the highest priority so far
                obs = out.obs
                state.step += envs.num_envs
                # Games log each game's return for the first player (the mover's reward, signed by seat).
                logged = np.where(envs.movers == 0, out.rewards, -out.rewards) if game else out.rewards
                _track_episodes(state, logged, out.ended, eps, log)
                if pool is not None:
                    pool.new_games(out.ended, rng)

                if state.step >= cfg.learning_starts and len(memory) >= cfg.batch_size:
                    for _ in range(cfg.gradient_steps * crossings(prev, state.step, cfg.train_freq)):
                        if per is None:
                            loss = agent.update(memory.sample(cfg.batch_size, rng))
                        else:
                            loss = _prioritized_update(agent, memory, per, cfg, state.step, rng)
                        state.loss_sum += float(loss)
                        state.loss_count += 1
                        state.updates += 1
                if cfg.target == "hard" and crossings(prev, state.step, cfg.target_update_interval):
                    agent.sync_target()
                    if pool is not None:
                        pool.add(agent.online)
                if crossings(prev, state.step, cfg.eval_interval):
                    _evaluate(agent, cfg, state, log, bar)
                if crossings(prev, state.step, cfg.checkpoint_interval):
                    save_checkpoint()
                    log.speed(state.step, bar.steps_per_sec(state.step))
                    log.flush()
                if state.step % 256 < envs.num_envs:
                    bar.update(state.step, eps, _mean(state.recent), state.last_eval)
        bar.update(state.step, eps_at(state.step), _mean(state.recent), state.last_eval)
        if interrupted.requested:
            checkpoint_and_stop(state.step, run_dir, save_checkpoint)
    except NonFiniteLossError as e:
        good = agent.params_finite()
        if good:
            save_checkpoint()  # the weights before the bad update: the last good state
        where = checkpoint_path(run_dir)
        raise NonFiniteLossError(
            f"{e} at env step {state.step:,} (update {state.updates:,}); the run stopped. "
            + (f"The last good state is saved in {where}. " if good or where.exists() else "")
            + f"Lower lr (now {cfg.lr}), use loss='huber' or max_grad_norm > 0, then continue with "
            f"`deepq train --resume {run_dir} --lr ...`") from None
    finally:
        bar.close()
        log.close()
        envs.close()

    agent.save(run_dir / "agent.pt")
    save_checkpoint()  # lets `--resume` extend a finished run with a larger total_steps
    plot_learning_curve(run_dir, title=f"{cfg.run_name} (seed {cfg.seed})")
    if cfg.progress:
        solved = f"; solved at step {state.solved_at:,}" if state.solved_at is not None else ""
        print(f"done: {state.step:,} env steps, {state.episodes:,} episodes{solved}; run directory {run_dir}")
    agent.run_dir = run_dir  # type: ignore[attr-defined]
    return agent


def _track_episodes(state: LoopState, rewards: np.ndarray, done: np.ndarray, eps: float, log: RunLog) -> None:
    for i in range(len(rewards)):
        state.ep_return[i] += float(rewards[i])
        state.ep_length[i] += 1
        if done[i]:
            state.episodes += 1
            loss = state.loss_sum / state.loss_count if state.loss_count else None
            log.episode(state.step, state.episodes, state.ep_return[i], state.ep_length[i], eps, loss)
            state.recent = ([*state.recent, state.ep_return[i]])[-20:]
            state.ep_return[i], state.ep_length[i] = 0.0, 0
            state.loss_sum, state.loss_count = 0.0, 0


def _prioritized_update(agent: Agent, memory: Replay, per: PrioritizedSampler, cfg: Config, step: int,
                        rng: np.random.Generator) -> torch.Tensor:
    """Sample by priority, weight the loss by importance weights (beta annealed to 1), then set the
    sampled transitions' priorities from their new TD errors."""
    beta = beta_schedule(step, cfg.per_beta, cfg.total_steps)
    slots, weights = per.sample(cfg.batch_size, rng, beta)
    while not (ok := memory.valid_slots(slots)).all():  # FrameReplay: frames overwritten since the last add
        per.set_invalid(slots[~ok])
        slots, weights = per.sample(cfg.batch_size, rng, beta)
    loss = agent.update(memory.batch_slots(slots), torch.from_numpy(weights).to(agent.device))
    assert agent.td_errors is not None
    per.update(slots, agent.td_errors.cpu().numpy())
    return loss


def _evaluate(agent: Agent, cfg: Config, state: LoopState, log: RunLog, bar: Progress) -> None:
    # Each evaluation gets fresh reset seeds, distinct from training's, so it is an honest sample.
    state.evals += 1
    seed = int(np.random.SeedSequence([cfg.seed, 0xE7A1, state.evals]).generate_state(1)[0])
    if is_game(cfg.env):  # games against cfg.eval_opponent, eval_episodes per seat; score +1/0/−1 per game
        result = selfplay.evaluate_game(agent, cfg, cfg.eval_episodes, seed)
    else:
        result = evaluate(agent, cfg.env, episodes=cfg.eval_episodes, eps=cfg.eval_eps, seed=seed)
    log.evaluation(state.step, result)
    state.last_eval = result.mean
    if cfg.stop_at_return is not None and result.mean >= cfg.stop_at_return:
        state.solved_at = state.step
        bar.message(f"solved at step {state.step:,}: evaluation {result}")


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _restore(path: Path, cfg: Config, agent: Agent, memory: Replay, envs: VecEnv,
             rng: np.random.Generator, state: LoopState, per: PrioritizedSampler | None,
             pool: selfplay.OpponentPool | None) -> np.ndarray:
    """Load a checkpoint into the freshly built objects; return the observation to act on."""
    data = safe_load(path, CHECKPOINT_FORMAT)
    saved = data["config"]
    now = cfg.to_dict()
    for name in RESUME_FIXED:
        if saved.get(name) != now.get(name):
            raise ConfigError(f"cannot resume {path.parent.parent}: {name} was {saved.get(name)!r} in that run "
                              f"and is {now.get(name)!r} now; {name} cannot change on resume")
    try:
        agent.load_state_dict(data["agent"])
        for group in agent.optimizer.param_groups:
            group["lr"] = cfg.lr  # a resumed run may lower lr (e.g. after a NaN loss)
        memory.load_state_dict(data["memory"])
        if per is not None:
            per.load_state_dict(data["per"])
        if pool is not None:
            pool.load_state_dict(data["pool"], agent.online)
        rng.bit_generator.state = data["rng"]
        torch.set_rng_state(data["torch_rng"])
        for k, v in data["loop"].items():
            setattr(state, k, v)
        if saved.get("stop_at_return") != cfg.stop_at_return:
            state.solved_at = None  # solved under the old threshold; the new one decides when to stop
        obs = envs.load_state_dict(data["envs"])
        if not envs.exact_resume:  # EnvPool: the episodes in progress were restarted, not restored
            print("resume: this backend cannot restore the episodes in progress; they restart (new episodes)",
                  file=sys.stderr)
            if isinstance(memory, FrameReplay):
                memory.mark_reset()
        return obs
    except (KeyError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"cannot resume from {path}: {e}") from e


class _DeferredInterrupt:
    """The first Ctrl-C sets a flag the loop checks between steps (so the checkpoint is consistent);
    a second one interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._old)

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

