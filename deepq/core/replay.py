"""A plain preallocated circular replay memory of transitions (s, a, r, s', terminated), with n-step returns."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, *obs_shape)
    actions: torch.Tensor  # (B,) int64
    rewards: torch.Tensor  # (B,) float32: r, or the n-step sum r_t + γ r_t+1 + ... over the window
    next_obs: torch.Tensor  # (B, *obs_shape): the true state after the window, also on truncation
    terminated: torch.Tensor  # (B,) float32: 1.0 where the window ended in a terminal state
    discounts: torch.Tensor  # (B,) float32: the bootstrap's weight γ^m (m steps in the window), 0 if terminal
    next_legal: torch.Tensor | None = None  # (B, A) bool, games: the legal actions in next_obs


def window_returns(first: np.ndarray, n_step: int, gamma: float, successor: Any, rewards: np.ndarray,
                   stops: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n-step returns over stored transitions, vectorized over a batch; shared by both memories.

    From transition `first`, follow `successor(idx, k)` (the k-th later transition of the same env,
    or -1 where none is stored yet) for up to n_step transitions, stopping after a transition where
    `stops(idx)` is true (terminated, or the episode ended: its successor belongs to a new episode).
    Returns (R (B,) float32 = Σ γ^k r_k over the window, last (B,) index of the window's last
    transition, m (B,) its length); a window cut short by the newest stored transition is an m-step
    return bootstrapped from there, as valid a target as an n-step one.
    """
    total = np.zeros(len(first), dtype=np.float64)
    last, m = first.copy(), np.zeros(len(first), dtype=np.int64)
    alive = np.ones(len(first), dtype=bool)
    for k in range(n_step):
        idx = first if k == 0 else successor(first, k)
        alive &= idx >= 0
        safe = np.where(alive, idx, first)
        total += np.where(alive, gamma ** k * rewards[safe], 0.0)
        last = np.where(alive, safe, last)
        m += alive
        alive &= ~stops(safe)
    return total.astype(np.float32), last, m


def discounts(gamma: float, m: np.ndarray | None, terminated: np.ndarray) -> np.ndarray:
    """γ^m where the window's end is not terminal, else 0 (float32, as the TD target multiplies it);
    m=None: one-step windows (γ)."""
    g = np.float32(gamma) if m is None or np.all(m == 1) else (np.float64(gamma) ** m).astype(np.float32)
    not_terminal = np.float32(1.0) - terminated.astype(np.float32, copy=False)  # (B,) float32
    not_terminal *= g
    return not_terminal


class ReplayMemory:
    """Fixed capacity; the oldest transitions are overwritten first; uniform random minibatches.

    `terminated` is stored on its own: a time-limit truncation is stored as not terminated,
    with the true final observation as s', so the target bootstraps from it. The N vector envs'
    transitions of one step are N consecutive rows (capacity is rounded down to a multiple of N),
    so an env's next transition is N rows later: what n-step returns follow.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 device: torch.device | str = "cpu", num_envs: int = 1, n_step: int = 1,
                 gamma: float = 0.99, legal_actions: int = 0, folded: bool = False) -> None:
        """gamma: the discount per step (−γ for two-player games: each ply changes sides, see td_target).
        legal_actions: with A > 0, each transition also stores the (A,) legal-action mask of s' (games).
        folded: transitions arrive with their n-step returns already summed (deepq/core/nstep.py: distributed
        actors fold them), so each row also stores its bootstrap discount γ^m (0 if terminal); n_step is 1."""
        if folded and n_step != 1:
            raise ValueError("a folded memory stores n-step transitions as they come: n_step must be 1")
        if capacity < num_envs:
            raise ValueError(f"capacity {capacity} must be at least num_envs {num_envs}")
        self.capacity = capacity - capacity % num_envs
        self.num_envs, self.n_step, self.gamma = num_envs, n_step, gamma
        self.device = torch.device(device)
        self.obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((self.capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(self.capacity, dtype=np.int64)
        self.rewards = np.zeros(self.capacity, dtype=np.float32)
        self.terminated = np.zeros(self.capacity, dtype=np.float32)
        self.ended = np.zeros(self.capacity, dtype=bool)  # the env was reset after this transition
        self.next_legal = np.zeros((self.capacity, legal_actions), dtype=bool) if legal_actions else None
        self.discount = np.zeros(self.capacity, dtype=np.float32) if folded else None
        self.pos = 0  # next slot to write
        self.size = 0  # slots filled

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray, ended: np.ndarray | None = None,
            next_legal: np.ndarray | None = None, discount: np.ndarray | None = None) -> np.ndarray:
        """Add transitions (one per vector env), wrapping around the end; returns the slots (rows) written.
        `ended`: the env was reset after this step (an n-step window stops there; default: where terminated).
        `next_legal` (N, A): the legal actions in s', required when the memory stores masks.
        `discount` (N,): a folded memory's bootstrap discounts γ^m (0 where terminal), required there."""
        n = len(actions)
        if self.n_step > 1 and n != self.num_envs:
            raise ValueError(f"with n_step > 1, add takes one transition per env ({self.num_envs}), got {n}")
        rows = (self.pos + np.arange(n)) % self.capacity if self.pos + n > self.capacity \
            else slice(self.pos, self.pos + n)
        self.obs[rows] = obs
        self.next_obs[rows] = next_obs
        self.actions[rows] = actions
        self.rewards[rows] = rewards
        self.terminated[rows] = terminated
        self.ended[rows] = terminated if ended is None else ended
        if self.next_legal is not None:
            if next_legal is None:
                raise ValueError("this memory stores legal-action masks: pass next_legal")
            self.next_legal[rows] = next_legal
        if self.discount is not None:
            if discount is None:
                raise ValueError("this memory stores folded n-step transitions: pass discount")
            self.discount[rows] = discount
        written = np.arange(self.pos, self.pos + n) % self.capacity
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return written

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform random minibatch (with replacement) as tensors on the memory's device."""
        idx = rng.integers(0, self.size, size=batch_size)
        return self.batch_slots(idx)

    # Slots (for prioritized replay) are rows; every filled row is sampleable.
    @property
    def num_slots(self) -> int:
        return self.capacity

    def valid_slots(self, slots: np.ndarray) -> np.ndarray:
        return np.asarray(slots) < self.size

    def _successor(self, idx: np.ndarray, k: int) -> np.ndarray:
        """Row of the k-th later transition of idx's env, or -1 where it is not stored yet."""
        age = (self.pos - 1 - idx) % self.capacity  # 0 for the newest row
        return np.where(age >= k * self.num_envs, (idx + k * self.num_envs) % self.capacity, -1)

    def batch_slots(self, idx: np.ndarray) -> Batch:
        """Transitions by row (a row is a slot for prioritized replay)."""
        if self.n_step == 1:
            rewards, last, m = self.rewards[idx], idx, None
        else:
            rewards, last, m = window_returns(idx, self.n_step, self.gamma, self._successor, self.rewards,
                                              lambda i: (self.terminated[i] > 0) | self.ended[i])
        terminated = self.terminated[last]
        disc = self.discount[idx] if self.discount is not None else discounts(self.gamma, m, terminated)

        cpu = self.device.type == "cpu"

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a) if cpu else torch.from_numpy(a).to(self.device, non_blocking=True)
        # ndarray.take gathers rows 4x faster than fancy indexing (obs[idx]) for 2-D and larger arrays
        legal = t(self.next_legal.take(last, axis=0)) if self.next_legal is not None else None
        obs, next_obs = self.obs.take(idx, axis=0), self.next_obs.take(last, axis=0)
        return Batch(t(obs), t(self.actions[idx]), t(rewards), t(next_obs), t(terminated),
                     t(disc), legal)

    def state_dict(self) -> dict[str, Any]:
        """The filled part only, as tensors (safe to load with weights_only=True)."""
        n = self.size
        return {"pos": self.pos, "size": n, "capacity": self.capacity,
                **{k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in _ARRAYS if getattr(self, k) is not None}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint replay capacity {state['capacity']} != buffer_size {self.capacity}")
        n = state["size"]
        for k in _ARRAYS:
            if k in state and getattr(self, k) is not None:  # "ended" is absent from checkpoints before n-step
                getattr(self, k)[:n] = state[k].numpy()
        self.pos, self.size = state["pos"], n


_ARRAYS = ("obs", "next_obs", "actions", "rewards", "terminated", "ended", "next_legal", "discount")
