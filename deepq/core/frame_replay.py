"""A replay memory for frame-history observations that stores each frame once.

An observation is a stack of the last k frames, (k, *frame_shape), e.g. (4, 84, 84) uint8.
Consecutive observations share k-1 frames, so instead of storing obs and next_obs per
transition (2k frames) each vector env keeps its own ring of frames and every transition
stores one new frame, the newest frame of s'. The first transition of an episode also
stores the reset frame obs[-1]. A stack is rebuilt at sample time from frame positions:
the frames at positions p-k+1 .. p, where positions before the episode's first frame are
clamped to it. That is exactly gymnasium's FrameStackObservation(padding_type="reset")
convention ([f0, f0, f0, f0] at reset). `add` checks the assumptions the rebuilt stacks rest
on, so a different stacking can never silently corrupt them: an episode's first obs is [f0]*k,
next_obs is obs shifted by one frame, and within an episode obs is the previous add's next_obs.

Frame positions are absolute (they count every frame an env has stored; the frame at
position p lives in ring slot p % frame_slots), so "has this frame been overwritten" is a
comparison: p >= frames_written - frame_slots. The frame ring has a little headroom over
one frame per transition for the extra reset frames; when very short episodes use it up,
the oldest transitions lose frames and stop being sampleable (len() shrinks). Both limits
only ever drop the oldest transitions of an env, so each env's sampleable transitions are
a contiguous run [tail, head) of its transition ring, kept by FIFO bookkeeping in `add`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepq.core.replay import Batch, discounts, window_returns


class FrameReplay:
    """Fixed capacity, split evenly over `num_envs` rings; uniform minibatches over all of them.

    `terminated` (stops the bootstrap) and `ended` (the env was reset after this step) are
    separate: a lost life under Atari "episodic life" is terminated but not ended, and the
    next observation continues the same frame history; a time-limit truncation is ended but
    not terminated, and its true final observation is stored as s'.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], num_envs: int = 1,
                 obs_dtype: Any = np.uint8, device: torch.device | str = "cpu", n_step: int = 1,
                 gamma: float = 0.99, legal_actions: int = 0) -> None:
        """`legal_actions`: with A > 0, each transition also stores the (A,) legal-action mask of s' (an env that
        masks actions), as ReplayMemory does."""
        if capacity < num_envs or num_envs < 1:
            raise ValueError(f"capacity {capacity} must be at least num_envs {num_envs} (>= 1)")
        self.k = obs_shape[0]  # frames per observation
        self.frame_shape = tuple(obs_shape[1:])
        self.num_envs = num_envs
        self.n_step, self.gamma = n_step, gamma  # n-step returns (see deepq.core.replay.window_returns)
        self.capacity = capacity
        self.device = torch.device(device)
        self.slots = capacity // num_envs  # transitions per env
        # one frame per transition, plus the k older frames the oldest transition's stacks need, plus
        # headroom for one reset frame per episode: episodes of 64+ steps on average never run out
        self.frame_slots = self.slots + self.slots // 64 + self.k
        # np.zeros maps pages lazily: a 1M-transition memory costs nothing until it is filled
        self.frames = np.zeros((num_envs, self.frame_slots, *self.frame_shape), dtype=obs_dtype)
        self.next_pos = np.zeros((num_envs, self.slots), dtype=np.int64)  # frame position of s'[-1]
        self.start_pos = np.zeros((num_envs, self.slots), dtype=np.int64)  # frame position of the episode's f0
        self.actions = np.zeros((num_envs, self.slots), dtype=np.int32)
        self.rewards = np.zeros((num_envs, self.slots), dtype=np.float32)
        self.terminated = np.zeros((num_envs, self.slots), dtype=bool)
        self.next_legal = np.zeros((num_envs, self.slots, legal_actions), dtype=bool) if legal_actions else None
        self.head = 0  # transitions added per env (all envs add together); the next slot is head % slots
        self.tail = np.zeros(num_envs, dtype=np.int64)  # per env, the oldest sampleable transition
        self.written = np.zeros(num_envs, dtype=np.int64)  # per env, frames stored (= next frame position)
        self.episode_start = np.zeros(num_envs, dtype=np.int64)  # per env, frame position of the current f0
        self.new_episode = np.ones(num_envs, dtype=bool)  # the next add starts an episode
        self.last_next = np.zeros((num_envs, *obs_shape), dtype=obs_dtype)  # the previous add's next_obs
        self._envs = np.arange(num_envs)

    def __len__(self) -> int:
        return int((self.head - self.tail).sum())

    def nbytes(self) -> int:
        """Bytes of all preallocated arrays (what a full memory holds)."""
        legal = 0 if self.next_legal is None else self.next_legal.nbytes
        return legal + sum(a.nbytes for a in (self.frames, self.next_pos, self.start_pos, self.actions,
                                              self.rewards, self.terminated, self.tail, self.written,
                                              self.episode_start, self.new_episode, self.last_next))

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, ended: np.ndarray, next_legal: np.ndarray | None = None) -> np.ndarray:
        """Add one transition per vector env: obs, next_obs (N, k, *frame); the rest (N,) (next_legal (N, A), required
        when the memory stores masks); returns their slots.

        ended[i]: env i was reset after this step, so its next add starts a new episode.
        Raises ValueError, storing nothing, where the stacks break the assumptions stacks are
        rebuilt on (see the module doc); the checks compare about 3k frames per env.
        """
        if len(actions) != self.num_envs:
            raise ValueError(f"add got {len(actions)} transitions for {self.num_envs} envs")
        self._check(obs, next_obs)
        slots = self.add_frames(obs[self.new_episode, -1], next_obs[:, -1], actions, rewards, terminated, ended,
                                next_legal)
        self.last_next[:] = next_obs
        return slots

    def add_frames(self, first: np.ndarray, new: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
                   terminated: np.ndarray, ended: np.ndarray, next_legal: np.ndarray | None = None) -> np.ndarray:
        """`add` from frames alone, for a sender that holds the stacks (a distributed actor ships each frame once):
        first (S, *frame): the reset frame f0 of each env starting an episode (the envs whose previous add had
        ended, or mark_reset), in env order; new (N, *frame): the newest frame of each s'. Returns the slots."""
        starts = np.flatnonzero(self.new_episode)
        if (self.next_legal is None) != (next_legal is None):
            raise ValueError("FrameReplay: pass next_legal exactly when the memory stores masks (legal_actions > 0)")
        if len(first) != len(starts) or len(new) != self.num_envs:
            raise ValueError(f"add_frames got {len(first)} reset frames for {len(starts)} new episodes and "
                             f"{len(new)} new frames for {self.num_envs} envs")
        if starts.size:
            self.frames[starts, self.written[starts] % self.frame_slots] = first
            self.episode_start[starts] = self.written[starts]
            self.written[starts] += 1
        slot = self.head % self.slots
        self.frames[self._envs, self.written % self.frame_slots] = new  # (N, *frame)
        self.next_pos[:, slot] = self.written
        self.start_pos[:, slot] = self.episode_start
        self.actions[:, slot] = actions
        self.rewards[:, slot] = rewards
        self.terminated[:, slot] = terminated
        if self.next_legal is not None:
            self.next_legal[:, slot] = next_legal
        self.written += 1
        self.head += 1
        self.new_episode[:] = ended
        self._drop_unsampleable()
        return self._envs * self.slots + slot  # (N,) the slot ids written

    def mark_reset(self, envs: np.ndarray | None = None) -> None:
        """These envs (default all) were reset outside add: their next add starts a new episode.

        For envs restarted between adds, e.g. after loading a checkpoint whose envs could not be
        restored mid-episode.
        """
        self.new_episode[slice(None) if envs is None else envs] = True

    def _check(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Raise ValueError where the given stacks differ from those the memory would rebuild."""
        def differ(a: np.ndarray, b: np.ndarray) -> list[int]:  # envs whose rows differ
            return np.flatnonzero(~(a == b).reshape(len(a), -1).all(axis=1)).tolist()

        new = self.new_episode
        # an episode's history before its first frame is that frame repeated (the padding rebuilt stacks use)
        if self.k > 1 and new.any() and (bad := differ(obs[new, :-1], obs[new, -1:])):
            raise ValueError("FrameReplay: the first observation of an episode must be its first frame repeated "
                             f"k times (FrameStackObservation(padding_type='reset')); env(s) {bad} of "
                             f"{np.flatnonzero(new).tolist()} started with a different history")
        # each step pushes exactly one frame (a wrapper that steps twice, e.g. to press FIRE, pushes two)
        if self.k > 1 and (bad := differ(next_obs[:, :-1], obs[:, 1:])):
            raise ValueError(f"FrameReplay: next_obs must be obs shifted by one frame (next_obs[:, :-1] == "
                             f"obs[:, 1:]); env(s) {bad} pushed another number of frames in one step")
        # within an episode, obs is the previous add's next_obs
        if not new.all() and (bad := differ(obs[~new], self.last_next[~new])):
            raise ValueError("FrameReplay: obs must be the previous add's next_obs within an episode; env(s) "
                             f"{np.flatnonzero(~new)[bad].tolist()} differ (was an env reset without ended=True "
                             "on its last add, or without mark_reset?)")

    def _drop_unsampleable(self) -> None:
        """Advance each env's tail past transitions overwritten in the transition or frame ring.

        A transition's oldest frame, max(next_pos - k, start_pos), never decreases along the
        ring, so the lost ones are always a prefix: amortized O(1) per add.
        """
        np.maximum(self.tail, self.head - self.slots, out=self.tail)
        oldest_kept = self.written - self.frame_slots  # (N,): frames before this position are overwritten
        while True:
            s = self.tail % self.slots
            oldest_needed = np.maximum(self.next_pos[self._envs, s] - self.k, self.start_pos[self._envs, s])
            lost = (self.tail < self.head) & (oldest_needed < oldest_kept)  # (N,)
            if not lost.any():
                return
            self.tail += lost

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """Uniform random minibatch (with replacement) over every sampleable transition of every env."""
        n = len(self)
        if n == 0:
            raise ValueError("FrameReplay.sample: no sampleable transitions yet")
        return self.batch(rng.integers(0, n, size=batch_size))

    def batch(self, idx: np.ndarray) -> Batch:
        """Transitions by index in [0, len()): env 0's sampleable transitions oldest first, then env 1's, ..."""
        idx = np.asarray(idx, dtype=np.int64)
        counts = self.head - self.tail  # (N,)
        ends = np.cumsum(counts)
        if idx.size and (idx.min() < 0 or idx.max() >= ends[-1]):
            raise IndexError(f"FrameReplay.batch: indices must lie in [0, {int(ends[-1])})")
        env = np.searchsorted(ends, idx, side="right")  # (B,)
        return self._gather(env, self.tail[env] + idx - (ends[env] - counts[env]))

    # Slots: stable ids env * slots_per_env + ring slot, for prioritized replay's priorities.
    @property
    def num_slots(self) -> int:
        return self.num_envs * self.slots

    def _absolute(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(env, absolute transition number) now held in each slot (the newest transition written there)."""
        env, s = np.divmod(np.asarray(slots, dtype=np.int64), self.slots)
        return env, self.head - 1 - (self.head - 1 - s) % self.slots

    def valid_slots(self, slots: np.ndarray) -> np.ndarray:
        """Which slots hold a sampleable transition (filled, and its frames not overwritten)."""
        env, a = self._absolute(slots)
        return (a >= self.tail[env]) & (a >= 0)

    def batch_slots(self, slots: np.ndarray) -> Batch:
        """Transitions by slot id (see valid_slots; an invalid slot is an IndexError)."""
        if not self.valid_slots(slots).all():
            raise IndexError("FrameReplay.batch_slots: some slots hold no sampleable transition")
        return self._gather(*self._absolute(slots))

    def _gather(self, env: np.ndarray, a: np.ndarray) -> Batch:
        """The transitions numbered a (absolute, per env) of envs `env`, with n-step windows."""
        s = a % self.slots  # (B,) transition slot
        last = s
        if self.n_step == 1:
            rewards, m = self.rewards[env, s], np.ones(len(s), dtype=np.int64)
        else:  # flat slot ids env * slots + slot, so window_returns can index the (N, slots) arrays
            def successor(flat: np.ndarray, k: int) -> np.ndarray:  # same env, same episode, stored
                nxt = a + k
                ok = (nxt < self.head) & (self.start_pos[env, nxt % self.slots] == self.start_pos[env, s])
                return np.where(ok, env * self.slots + nxt % self.slots, -1)
            stops = self.terminated.reshape(-1)
            rewards, last_flat, m = window_returns(env * self.slots + s, self.n_step, self.gamma, successor,
                                                   self.rewards.reshape(-1), lambda i: stops[i])
            last = last_flat % self.slots
        # frame positions of s's k frames (from the first transition) and s''s k frames (from the
        # window's last), clamped to the episode's f0 (the padding)
        first_pos = np.maximum(self.next_pos[env, s][:, None] + np.arange(-self.k, 0),
                               self.start_pos[env, s][:, None]) % self.frame_slots  # (B, k)
        last_pos = np.maximum(self.next_pos[env, last][:, None] + np.arange(-self.k + 1, 1),
                              self.start_pos[env, last][:, None]) % self.frame_slots  # (B, k)
        flat = self.frames.reshape(-1, *self.frame_shape)  # (N * frame_slots, *frame) view
        rows = env[:, None] * self.frame_slots  # (B, 1)
        # one gather into one fresh array holding both: obs and next_obs are its two halves, so an
        # in-place op on one can't touch the other; one allocation, not two of half the size, also
        # lets malloc reuse it from call to call instead of mapping fresh (page-faulting) memory
        both = flat[np.stack([rows + first_pos, rows + last_pos])]  # (2, B, k, *frame)
        obs, next_obs = both[0], both[1]  # (B, k, *frame) each, contiguous
        terminated = self.terminated[env, last].astype(np.float32)

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).to(self.device, non_blocking=True)
        legal = None if self.next_legal is None else t(self.next_legal[env, last])  # the legal actions of s'
        return Batch(t(obs), t(self.actions[env, s].astype(np.int64)), t(rewards), t(next_obs), t(terminated),
                     t(discounts(self.gamma, m, terminated)), legal)

    def state_dict(self) -> dict[str, Any]:
        """The filled part only, as tensors and ints (safe to load with weights_only=True).

        A completely filled array is returned without a copy (the tensor shares memory with
        this object, as a torch Module's state_dict shares its parameters), so checkpointing a
        1M-transition memory needs no second 7 GB in RAM: save the dict before the next add.
        """
        nf = int(min(self.written.max(), self.frame_slots))
        nt = min(self.head, self.slots)
        state: dict[str, Any] = {"capacity": self.capacity, "num_envs": self.num_envs,
                                 "obs_shape": [self.k, *self.frame_shape], "head": self.head,
                                 "frames": _filled(self.frames, nf)}
        for name in self._per_transition():
            state[name] = _filled(getattr(self, name), nt)
        for name in _PER_ENV:
            state[name] = torch.from_numpy(getattr(self, name).copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mine = (self.capacity, self.num_envs, [self.k, *self.frame_shape], str(self.frames.dtype))
        theirs = (state["capacity"], state["num_envs"], list(state["obs_shape"]), str(state["frames"].numpy().dtype))
        if mine != theirs:
            raise ValueError(f"checkpoint replay (capacity, num_envs, obs_shape, dtype) {theirs} != {mine} here")
        if ("next_legal" in state) != (self.next_legal is not None):
            raise ValueError("checkpoint replay and this one differ in storing action masks")
        self.frames[:, :state["frames"].shape[1]] = state["frames"].numpy()
        for name in self._per_transition():
            getattr(self, name)[:, :state[name].shape[1]] = state[name].numpy()
        for name in _PER_ENV:
            getattr(self, name)[:] = state[name].numpy()
        self.head = state["head"]

    def _per_transition(self) -> tuple[str, ...]:
        return _PER_TRANSITION + (("next_legal",) if self.next_legal is not None else ())


def _filled(a: np.ndarray, n: int) -> torch.Tensor:
    """a[:, :n] as a tensor; copied unless it is all of a (torch.save would write the whole storage of a view)."""
    return torch.from_numpy(a if n == a.shape[1] else a[:, :n].copy())


_PER_TRANSITION = ("next_pos", "start_pos", "actions", "rewards", "terminated")
_PER_ENV = ("tail", "written", "episode_start", "new_episode", "last_next")
