"""A plain preallocated circular replay memory of transitions (s, a, r, s', terminated)."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch


class Batch(NamedTuple):
    obs: torch.Tensor  # (B, *obs_shape)
    actions: torch.Tensor  # (B,) int64
    rewards: torch.Tensor  # (B,) float32
    next_obs: torch.Tensor  # (B, *obs_shape): the true s', also on truncation
    terminated: torch.Tensor  # (B,) float32: 1.0 stops the bootstrap


class ReplayMemory:
    """Fixed capacity; the oldest transitions are overwritten first; uniform random minibatches.

    `terminated` is stored on its own: a time-limit truncation is stored as not terminated,
    with the true final observation as s', so the target bootstraps from it.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: Any = np.float32,
                 device: torch.device | str = "cpu") -> None:
        self.capacity = capacity
        self.device = torch.device(device)
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.pos = 0  # next slot to write
        self.size = 0  # slots filled

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
            next_obs: np.ndarray, terminated: np.ndarray, ended: np.ndarray | None = None) -> None:
        """Add a batch of N transitions (one per vector env), wrapping around the end.

        `ended` (the env was reset after this step) matters only to FrameReplay; it is accepted here
        so both memories take the same arguments."""
        n = len(actions)
        idx = (self.pos + np.arange(n)) % self.capacity if self.pos + n > self.capacity \
            else slice(self.pos, self.pos + n)
        self.obs[idx] = obs
        self.next_obs[idx] = next_obs
        self.actions[idx] = actions
        self.rewards[idx] = rewards
        self.terminated[idx] = terminated
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform random minibatch (with replacement) as tensors on the memory's device."""
        idx = rng.integers(0, self.size, size=batch_size)
        return self.batch(idx)

    def batch(self, idx: np.ndarray) -> Batch:
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(a[idx]).to(self.device, non_blocking=True)
        return Batch(t(self.obs), t(self.actions), t(self.rewards), t(self.next_obs), t(self.terminated))

    def state_dict(self) -> dict[str, Any]:
        """The filled part only, as tensors (safe to load with weights_only=True)."""
        n = self.size
        return {"pos": self.pos, "size": n, "capacity": self.capacity,
                **{k: torch.from_numpy(getattr(self, k)[:n].copy()) for k in _ARRAYS}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint replay capacity {state['capacity']} != buffer_size {self.capacity}")
        n = state["size"]
        for k in _ARRAYS:
            getattr(self, k)[:n] = state[k].numpy()
        self.pos, self.size = state["pos"], n


_ARRAYS = ("obs", "next_obs", "actions", "rewards", "terminated")
