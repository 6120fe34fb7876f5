"""DQN's experience for deepq/training/loop.py's loop: env steps stored in a replay memory, TD updates on minibatches
drawn from it (prioritized when asked), the target network synced every C env steps. Games act on legal moves
only, the learner or a past snapshot of it moving (deepq/games/selfplay.py)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepq.config import Config
from deepq.core.agent import Agent
from deepq.core.explore import EpsilonSchedule, epsilon_greedy
from deepq.core.frame_replay import FrameReplay
from deepq.core.per import PrioritizedSampler, beta_schedule
from deepq.core.replay import ReplayMemory
from deepq.envs.gym import make_vec_env
from deepq.errors import EnvError
from deepq.games import selfplay
from deepq.games.adapters import is_game
from deepq.run.log import RunLog
from deepq.training.control import LoopState, crossings, track_episodes

Replay = ReplayMemory | FrameReplay


def make_replay(cfg: Config, obs_shape: tuple[int, ...], obs_dtype: Any, device: torch.device,
                n_actions: int) -> Replay:
    """Frame histories (frame_stack > 1) store each frame once; anything else is stored as is.
    Games store the legal moves of s', and discount by −γ: each ply hands the turn to the opponent,
    whose value is ours negated (see td_target).
    First the memory the run needs is checked against the memory available: a run that cannot fit stops here,
    in one ConfigError line, before anything is allocated (the Agent checked and built its networks already)."""
    from deepq.core.memory import check_memory

    check_memory(cfg, obs_shape, obs_dtype, n_actions, device, networks=False)
    if cfg.frame_stack > 1:
        return FrameReplay(cfg.buffer_size, obs_shape, cfg.num_envs, obs_dtype=obs_dtype, device=device,
                           n_step=cfg.n_step, gamma=cfg.gamma)
    game = is_game(cfg.env)
    return ReplayMemory(cfg.buffer_size, obs_shape, obs_dtype=obs_dtype, device=device, num_envs=cfg.num_envs,
                        n_step=cfg.n_step, gamma=-cfg.gamma if game else cfg.gamma,
                        legal_actions=n_actions if game else 0)


class Transitions:
    """DQN's experience: each iteration steps every env once and stores the transitions; a gradient step
    is a TD update on a minibatch (prioritized when cfg.prioritized); θ⁻ ← θ every C env steps.
    Games: legal moves only, the learner or a past snapshot of it moves (deepq/games/selfplay.py)."""

    def __init__(self, cfg: Config, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.envs = make_vec_env(cfg)
        self.agent = Agent(self.envs.obs_shape, self.envs.n_actions, cfg)
        self.memory = make_replay(cfg, self.envs.obs_shape, self.envs.obs_dtype, self.agent.device,
                                  self.envs.n_actions)
        self.game = is_game(cfg.env)
        self.pool = selfplay.OpponentPool(cfg.opponent_pool, cfg.num_envs) if self.game and cfg.opponent_pool \
            else None
        self.per = PrioritizedSampler(self.memory.num_slots, cfg.per_alpha) if cfg.prioritized else None
        self.obs = np.empty(0)  # (N, *obs_shape) the observations to act on; set by start() or a resume
        self.env_label: str = getattr(self.envs, "env_label", "")

    def start(self) -> None:
        self.obs = self.envs.reset()

    def collect(self, state: LoopState, eps_at: Callable[[int], float], log: RunLog) -> None:
        envs, rng, eps = self.envs, self.rng, eps_at(state.step)
        if self.game:  # legal moves only; the learner, or a past snapshot, moves
            assert isinstance(envs, selfplay.GameVecEnv)
            actions = selfplay.act(self.agent, envs, self.obs, eps, rng, self.pool)  # (N,)
        else:
            actions = epsilon_greedy(self.agent.act, self.obs, eps, envs.n_actions, rng)  # (N,)
        try:
            out = envs.step(actions)
        except EnvError as e:
            raise EnvError(f"{e} (training env step {state.step + envs.num_envs:,})") from None
        # s' is the true final observation where an episode ended (terminated or truncated);
        # only `terminated` stops the bootstrap. Clipped rewards train; raw rewards are logged.
        rewards = np.sign(out.rewards) if self.cfg.clip_rewards else out.rewards
        slots = self.memory.add(self.obs, actions, rewards, out.final_obs, out.terminated, out.ended,
                                 out.next_legal)  # type: ignore[arg-type]  # FrameReplay: never a game's (frame_stack 1)
        if self.per is not None:
            self.per.add(slots)  # new transitions get the highest priority so far
        self.obs = out.obs
        state.step += envs.num_envs
        # Games log each game's return for the first player (the mover's reward, signed by seat).
        logged = np.where(envs.movers == 0  # type: ignore[attr-defined]
                          , out.rewards, -out.rewards) if self.game else out.rewards
        track_episodes(state, logged, out.ended, eps, log)
        if self.pool is not None:
            self.pool.new_games(out.ended, rng)

    def can_learn(self) -> bool:
        return len(self.memory) >= self.cfg.batch_size

    def learn(self, step: int) -> torch.Tensor:
        if self.per is None:
            return self.agent.update(self.memory.sample(self.cfg.batch_size, self.rng))
        return self._prioritized_update(step)

    def _prioritized_update(self, step: int) -> torch.Tensor:
        """Sample by priority, weight the loss by importance weights (beta annealed to 1), then set the
        sampled transitions' priorities from their new TD errors."""
        cfg, per, memory = self.cfg, self.per, self.memory
        assert per is not None
        beta = beta_schedule(step, cfg.per_beta, cfg.total_steps)
        slots, weights = per.sample(cfg.batch_size, self.rng, beta)
        while not (ok := memory.valid_slots(slots)).all():  # FrameReplay: frames overwritten since the last add
            per.set_invalid(slots[~ok])
            slots, weights = per.sample(cfg.batch_size, self.rng, beta)
        loss = self.agent.update(memory.batch_slots(slots), torch.from_numpy(weights).to(self.agent.device))
        assert self.agent.td_errors is not None
        per.update(slots, self.agent.td_errors.cpu().numpy())
        return loss

    def after_updates(self, prev: int, step: int) -> None:
        if self.cfg.target == "hard" and crossings(prev, step, self.cfg.target_update_interval):
            self.agent.sync_target()
            if self.pool is not None:
                self.pool.add(self.agent.online)

    def state_dict(self) -> dict[str, Any]:
        return {"memory": self.memory.state_dict(), "envs": self.envs.state_dict(),
                "per": self.per.state_dict() if self.per is not None else None,
                "pool": self.pool.state_dict() if self.pool is not None else None}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.memory.load_state_dict(data["memory"])
        if self.per is not None:
            self.per.load_state_dict(data["per"])
        if self.pool is not None:
            self.pool.load_state_dict(data["pool"], self.agent.online)
        self.obs = self.envs.load_state_dict(data["envs"])
        if not self.envs.exact_resume:  # EnvPool: the episodes in progress were restarted, not restored
            print("resume: this backend cannot restore the episodes in progress; they restart (new episodes)",
                  file=sys.stderr)
            if isinstance(self.memory, FrameReplay):
                self.memory.mark_reset()

    def close(self) -> None:
        self.envs.close()


def exploration(cfg: Config) -> Callable[[int], float]:
    """ε by env step. Noisy nets (unless eps_with_noisy): uniform actions until learning starts (one fixed
    noise draw would fill the replay with one action), then the noise explores: ε = 0."""
    if cfg.noisy and not cfg.eps_with_noisy:
        return lambda step: 1.0 if step < cfg.learning_starts else 0.0
    return EpsilonSchedule.from_config(cfg)
