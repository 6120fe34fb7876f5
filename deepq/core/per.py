"""Prioritized experience replay, proportional variant (Schaul et al. 2016): a sum tree and a sampler.

Both work on integer slot ids in [0, capacity), a replay memory's storage slots; the memory itself
stays where it is and asks the sampler which slots to read. Every operation is vectorized over a
batch of slots; the only Python loops run over tree levels (20 at capacity 1,000,000).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class SumTree:
    """A complete binary tree of sums over `capacity` non-negative leaf values, in one flat float64 array.

    Node 1 is the root, node i has children 2i and 2i + 1, and the leaves are nodes
    [n_leaves, 2 n_leaves) with n_leaves = capacity rounded up to a power of two (padding leaves
    stay 0, so they are never found). Node 0 is unused. Every parent is recomputed from its two
    children rather than adjusted by a delta, so sums never drift and duplicate slots in one update
    cannot be counted twice.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.depth = (capacity - 1).bit_length()  # levels below the root
        self.n_leaves = 1 << self.depth
        self._tree = np.zeros(2 * self.n_leaves, dtype=np.float64)
        self._max = 0.0  # largest leaf value ever set: a running max, O(1), never lowered
        self._nonzero = 0  # leaves > 0, kept up to date by update()

    def update(self, slots: np.ndarray, values: np.ndarray | float) -> None:
        """Set leaf `slots` to `values` (an array like `slots`, or one scalar for all).

        A slot repeated in one call ends with its last value, as if assigned one after another."""
        slots = np.asarray(slots, dtype=np.int64).ravel()
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), slots.shape)
        if slots.size == 0:
            return
        if slots.min() < 0 or slots.max() >= self.capacity:
            raise IndexError(f"slots must lie in [0, {self.capacity}), got [{slots.min()}, {slots.max()}]")
        if not np.all((values >= 0) & (values < np.inf)):  # also catches NaN
            raise ValueError("values must be finite and >= 0")
        # NumPy does not promise which of several writes to one index wins, so keep each slot's last
        # value explicitly: np.unique on the reversed array gives each slot's first index there.
        uniq, first_in_reversed = np.unique(slots[::-1], return_index=True)
        vals = values[::-1][first_in_reversed]  # (U,) the last value given for each slot
        node = uniq + self.n_leaves  # (U,) sorted leaf nodes
        self._nonzero += int(np.count_nonzero(vals)) - int(np.count_nonzero(self._tree[node]))
        self._tree[node] = vals
        self._max = max(self._max, float(vals.max()))
        tree = self._tree
        for _ in range(self.depth):
            node >>= 1  # (U,) parents, possibly repeated: repeats write the same sum, so that is safe
            left = node << 1  # (U,)
            tree[node] = tree[left] + tree[left + 1]

    def total(self) -> float:
        """Sum of all leaves (the root)."""
        return float(self._tree[1])

    def get(self, slots: np.ndarray) -> np.ndarray:
        """Leaf values of `slots`, float64, shaped like `slots`."""
        return self._tree[np.asarray(slots, dtype=np.int64) + self.n_leaves]

    def max(self) -> float:
        """The largest value ever set on a leaf (0.0 for a fresh tree).

        A running max, not recomputed: it does not drop when that leaf is later lowered, which is
        what PER wants for new transitions' priority (as in Baselines and Dopamine)."""
        return self._max

    def count_nonzero(self) -> int:
        """Number of leaves whose value is > 0."""
        return self._nonzero

    def find(self, prefix: np.ndarray) -> np.ndarray:
        """For each prefix sum in [0, total), the slot whose cumulative range [c_{i-1}, c_i) contains it.

        Equals np.searchsorted(np.cumsum(leaves), prefix, side="right") wherever that is a slot (up
        to rounding within a few ulps of a boundary, as the tree adds in another order), so
        zero-value slots (empty ranges) are skipped. A slot with value 0 is never returned: the
        descent only enters a child whose sum is > 0, so a prefix at or above the total (or one
        that rounding in the partial sums pushes past a boundary) lands on the last non-empty slot
        of the subtree, and one below 0 (or NaN) on the first."""
        if not self._tree[1] > 0:
            raise ValueError("find() on a tree whose total is 0: no slot can be drawn")
        # (B,) NaN and < 0 become 0; fmax returns a new array, so the in-place steps below leave the caller's alone
        prefix = np.fmax(np.asarray(prefix, dtype=np.float64), 0.0)
        node = np.ones(prefix.shape, dtype=np.int64)  # (B,) all start at the root, whose sum is > 0
        tree = self._tree
        for _ in range(self.depth):
            node <<= 1  # (B,) left children
            left = tree[node]  # (B,)
            # The node's sum is > 0, so at least one child is; go right when the prefix is past the
            # left sum (a zero left sum always is, prefix >= 0) unless the right child is empty.
            go_right = (prefix >= left) & (tree[node + 1] > 0)  # (B,)
            prefix -= np.where(go_right, left, 0.0)  # stays >= 0
            node += go_right
        return node - self.n_leaves

    def state_dict(self) -> dict[str, Any]:
        """The leaves and the running max; internal sums are rebuilt on load (weights_only-safe)."""
        leaves = self._tree[self.n_leaves:self.n_leaves + self.capacity]
        return {"capacity": self.capacity, "leaves": torch.from_numpy(leaves.copy()), "max": self._max}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"checkpoint sum tree capacity {state['capacity']} != {self.capacity}")
        self._tree[:] = 0.0
        self._tree[self.n_leaves:self.n_leaves + self.capacity] = state["leaves"].numpy()
        lo = self.n_leaves
        while lo > 1:  # rebuild each level of parents from the level below, whole levels at once
            self._tree[lo // 2:lo] = self._tree[lo:2 * lo:2] + self._tree[lo + 1:2 * lo:2]
            lo //= 2
        self._max = float(state["max"])
        self._nonzero = int(np.count_nonzero(self._tree[self.n_leaves:]))


class PrioritizedSampler:
    """Which slots to replay, drawn with probability P(i) = p_i / sum_k p_k, p_i = (|delta_i| + eps)^alpha.

    New slots get the largest priority seen so far (1.0 before any update), so every transition is
    replayed at least once soon; slots the memory cannot sample (overwritten frames, incomplete
    n-step windows) get priority 0 and are never drawn. alpha = 0 gives uniform sampling over the
    valid slots.
    """

    def __init__(self, capacity: int, alpha: float = 0.6, eps: float = 1e-6) -> None:
        if alpha < 0 or eps < 0:
            raise ValueError(f"alpha and eps must be >= 0, got alpha={alpha}, eps={eps}")
        self.tree = SumTree(capacity)
        self.alpha = alpha
        self.eps = eps

    @property
    def max_priority(self) -> float:
        """Priority (already raised to alpha) that add() gives: the running max, at least 1.0."""
        return max(1.0, self.tree.max())

    def add(self, slots: np.ndarray) -> None:
        """Mark `slots` as holding new transitions, at the max priority seen so far."""
        self.tree.update(slots, self.max_priority)

    def set_invalid(self, slots: np.ndarray) -> None:
        """Priority 0: `slots` are never sampled until add() or update() sets them again."""
        self.tree.update(slots, 0.0)

    def update(self, slots: np.ndarray, td_errors: np.ndarray) -> None:
        """Priorities (|delta| + eps)^alpha from the TD errors of a replayed batch (last wins on repeats).

        This sets the slots whatever their state, so the caller drops slots it invalidated since
        sampling them."""
        priorities = (np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps) ** self.alpha  # (B,)
        self.tree.update(slots, priorities)

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float) -> tuple[np.ndarray, np.ndarray]:
        """`batch_size` slots by stratified sampling, and their importance-sampling weights.

        Stratified as in the paper: the total is cut into `batch_size` equal segments and one
        prefix is drawn uniformly in each, which spreads a batch over the distribution.

        Weights w_i = (N P(i))^-beta with N the number of slots with priority > 0, divided by the
        largest weight in this batch, so they are <= 1 and only scale updates down. This batch max is
        common practice (Dopamine, SB3-contrib style); the paper divides by the max weight over the
        whole memory, i.e. uses the smallest P over the memory, which needs a min-tree as well.
        (With the batch max, N cancels; it is kept so the formula reads like the paper.)

        Returns slots (B,) int64 and weights (B,) float32."""
        total = self.tree.total()
        if not total > 0:
            raise ValueError("sample() with no slot of priority > 0")
        segment = total / batch_size
        prefix = (np.arange(batch_size) + rng.random(batch_size)) * segment  # (B,) one draw per segment
        slots = self.tree.find(prefix)  # (B,)
        probs = self.tree.get(slots) / total  # (B,) P(i), all > 0
        weights = (self.tree.count_nonzero() * probs) ** -beta  # (B,)
        return slots, (weights / weights.max()).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain numbers only (loadable with torch.load(weights_only=True))."""
        return {"alpha": self.alpha, "eps": self.eps, "tree": self.tree.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores the priorities; eps stays this sampler's own, since it only affects future updates."""
        if state["alpha"] != self.alpha:
            # Stored priorities are already raised to the checkpoint's alpha; mixing two alphas is wrong.
            raise ValueError(f"checkpoint PER alpha {state['alpha']} != {self.alpha}")
        self.tree.load_state_dict(state["tree"])


def beta_schedule(step: int, beta0: float, total_steps: int) -> float:
    """Importance-sampling exponent annealed linearly from beta0 at step 0 to 1 at `total_steps`, then 1."""
    if total_steps <= 0:
        return 1.0
    return beta0 + (1.0 - beta0) * min(1.0, max(0.0, step / total_steps))
