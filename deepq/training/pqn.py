"""target="pqn": PQN (Gallici et al. 2024, "Simplifying Deep Temporal Difference Learning"), the third answer to
the moving target, with neither a target network nor a replay memory:

    repeat:
        each of the num_envs envs takes rollout_len ε-greedy steps on Q(s; θ): one rollout
        G = the rollout's Q(λ) returns, backwards, V(s') = max_a Q(s', a; θ) (deepq/core/losses.py's lambda_returns)
        `epochs` passes over the rollout, each in a new random order, of `minibatches` gradient steps
            on the mean of (G − Q(s, a; θ))²
        drop the rollout

The bootstrap comes from the network being trained, frozen only for the length of a rollout; LayerNorm in the
network (cfg.layer_norm) is what keeps that from diverging, and many envs stepped together decorrelate a
minibatch as a replay would. `terminated` stops the bootstrap; a truncated episode bootstraps from its true final
observation, and the rollout's last step from the observation it ends on.

Two-player games compose when the learner plays both seats: s' is the opponent's turn, so the discount is −γ
(both V(s') and the following return are the opponent's) and V(s') is the max over its legal moves, as in DQN's
self-play target. Who moves and how plies are logged is the same `Players` object DQN's mode uses.

A rollout is collected and learned from within one iteration of the loop, so checkpoints (written between
iterations) hold the envs and the counters, never a half-used rollout.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from deepq.agent import Agent
from deepq.config import Config
from deepq.core.losses import lambda_returns
from deepq.envs.base import VecEnv
from deepq.envs.kinds import EnvKind
from deepq.memory import check_memory
from deepq.training.collect import Collector, Players
from deepq.training.control import Episodes, LoopState, finished
from deepq.training.experience import Collected


class Rollout:
    """One rollout's arrays, (T, N, ...) for T = rollout_len steps of N envs; reused from rollout to rollout."""

    def __init__(self, steps: int, envs: VecEnv, legal: bool) -> None:
        t, n, shape = steps, envs.num_envs, envs.obs_shape
        self.obs = np.empty((t, n, *shape), dtype=envs.obs_dtype)  # s
        self.final_obs = np.empty((t, n, *shape), dtype=envs.obs_dtype)  # the true s' (final obs where one ended)
        self.actions = np.empty((t, n), np.int64)
        self.rewards = np.empty((t, n), np.float32)  # as trained on: clipped, scaled
        self.terminated = np.empty((t, n), bool)
        self.ended = np.empty((t, n), bool)  # terminated or truncated: the env was reset after this step
        self.next_legal = np.empty((t, n, envs.n_actions), bool) if legal else None
        self.q = np.empty((t, n, envs.n_actions), np.float32)  # Q(s_t, ·; θ), computed to act

    def returns(self, q_values: Callable[[np.ndarray], np.ndarray], device: torch.device, gamma: float,
                lam: float) -> torch.Tensor:
        """The (T·N,) λ-returns, step-major (index t·N + n), with V from `q_values` (the online net as it is now:
        Agent.q_values, NumPy for deepq's MLPs on CPU). θ does not change within a rollout, so Q(s'_t) is the
        Q(s_{t+1}) computed to act at step t + 1, wherever the episode went on; only the ends (an episode's true final
        observation) and the rollout's last step need a forward pass of their own."""
        t, n = self.actions.shape
        following = np.empty_like(self.q)  # (T, N, A) Q(s'_t)
        following[:-1] = self.q[1:]
        fresh = self.ended.copy()  # (T, N) s'_t is not the next s_{t+1}: its own forward pass
        fresh[-1] = True
        q = following.reshape(t * n, -1)  # (T·N, A)
        rows = np.flatnonzero(fresh.reshape(-1))
        q[rows] = q_values(self.final_obs.reshape(t * n, *self.obs.shape[2:])[rows])  # (T·N, A)
        if self.next_legal is not None:  # games, masked envs: the max over the legal actions of s' (none: over)
            legal = self.next_legal.reshape(t * n, -1)
            v = np.where(legal.any(1), np.where(legal, q, -np.inf).max(1), 0.0).astype(np.float32)
        else:
            v = q.max(1)  # (T·N,)
        discounts = np.where(self.terminated, np.float32(0.0), np.float32(gamma))  # (T, N)
        continues = ~self.ended
        continues[-1] = False  # the rollout's last step bootstraps from where it stops
        out = lambda_returns(torch.from_numpy(self.rewards), torch.from_numpy(discounts),
                             torch.from_numpy(np.ascontiguousarray(v, np.float32)).view(t, n),
                             torch.from_numpy(continues), lam)
        return out.reshape(-1).to(device)


class Rollouts:
    """PQN as an Experience for deepq/training/loop.py's loop: `collect` steps every env rollout_len times and
    computes the rollout's λ-returns; the loop then takes epochs × minibatches gradient steps (`updates`), each
    `learn` one minibatch of the rollout regressed toward its returns. `players` say who moves (SingleAgent, or a
    game's SelfPlay with the learner in both seats); `agent` is built for `envs` by loop.make_experience."""

    def __init__(self, cfg: Config, rng: np.random.Generator, kind: EnvKind, envs: VecEnv, players: Players,
                 agent: Agent) -> None:
        self.cfg, self.rng, self.envs, self.players, self.agent = cfg, rng, envs, players, agent
        check_memory(cfg, envs.obs_shape, envs.obs_dtype, envs.n_actions, self.agent.arch, self.agent.device,
                     networks=False, game=kind.two_player, masked=envs.legal is not None)  # one line if it cannot fit
        self.rollout = Rollout(cfg.rollout_len, envs, envs.legal is not None)
        self.gamma = kind.discount(cfg.gamma)  # games: −γ, s' is the opponent's, negated
        self.mirror = kind.mirror if cfg.mirror else None  # games: each position's mirror image as a second sample
        self.collector = Collector(cfg, envs, players, self.agent.policy, rng)
        self.env_label = envs.env_label
        self.batches: deque[tuple[np.ndarray, int]] = deque()  # minibatches still to learn from: (epoch order, k)
        self.data: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None  # obs, actions, returns (T·N, ...)
        self.shuffled: tuple[torch.Tensor, ...] = ()  # the data in the order of the epoch in progress

    def start(self) -> None:
        self.collector.start()

    def collect(self, state: LoopState, eps_at: Callable[[int], float]) -> Collected:
        cfg, ro, first_eps = self.cfg, self.rollout, eps_at(state.step)
        episodes = []
        for t in range(cfg.rollout_len):
            ro.q[t] = self.agent.q_values(self.collector.obs)  # (N, A): to act on, and V(s') of step t − 1
            vs = self.collector.step(eps_at(state.step), state.step, ro.q[t])  # ε-greedy per env
            out = vs.out
            ro.obs[t], ro.final_obs[t], ro.actions[t] = vs.obs, out.final_obs, vs.actions
            ro.rewards[t], ro.terminated[t], ro.ended[t] = vs.rewards * cfg.reward_scale, out.terminated, out.ended
            if ro.next_legal is not None:
                ro.next_legal[t] = out.next_legal
            state.step += self.envs.num_envs
            episodes.append(finished(state, vs.logged, out.ended))
        self._prepare()
        return Collected(Episodes.concat(episodes), first_eps)

    def _prepare(self) -> None:
        """The rollout's λ-returns, its arrays on the device, and the minibatch order of every epoch."""
        cfg, ro, device = self.cfg, self.rollout, self.agent.device
        returns = ro.returns(self.agent.q_values, device, self.gamma, cfg.q_lambda)
        size = len(returns)
        obs = torch.as_tensor(ro.obs.reshape(size, *ro.obs.shape[2:]), device=device)
        actions = torch.as_tensor(ro.actions.reshape(size), device=device)
        if self.mirror is not None:  # the mirrored position, the mirrored move, the same return: twice the samples
            obs2, actions2 = self.mirror(obs, actions)
            obs, actions, returns = torch.cat([obs, obs2]), torch.cat([actions, actions2]), returns.repeat(2)
            size *= 2
        self.data = (obs, actions, returns)
        self.batches = deque((order, k) for order in (self.rng.permutation(size) for _ in range(cfg.epochs))
                             for k in range(cfg.minibatches))

    def can_learn(self) -> bool:
        return bool(self.batches)

    def updates(self, prev: int, step: int) -> int:
        """Gradient steps this iteration: one per minibatch of the new rollout, epochs × minibatches."""
        return len(self.batches)

    def learn(self, step: int) -> torch.Tensor:
        assert self.data is not None
        order, k = self.batches.popleft()
        if k == 0:  # an epoch begins: its order applied once, so each minibatch is a slice (a view, no copy)
            idx = torch.as_tensor(order, device=self.agent.device)
            self.shuffled = tuple(x[idx] for x in self.data)
        size = len(order) // self.cfg.minibatches
        obs, actions, returns = (x[k * size:(k + 1) * size] for x in self.shuffled)
        return self.agent.learner.fit_returns(obs, actions, returns).loss

    def after_updates(self, prev: int, step: int) -> None:
        self.batches.clear()  # the rollout is used (or, before learning_starts, dropped)
        self.data, self.shuffled = None, ()

    def state_dict(self) -> dict[str, Any]:
        return {"envs": self.envs.state_dict(), "pool": self.players.state_dict(), "pqn": True}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.players.load_state_dict(data["pool"], self.agent.online)
        self.collector.obs = self.envs.load_state_dict(data["envs"])
        if not self.envs.exact_resume:  # EnvPool: the episodes in progress were restarted, not restored
            print("resume: this backend cannot restore the episodes in progress; they restart (new episodes)",
                  file=sys.stderr)

    def close(self) -> None:
        self.envs.close()
