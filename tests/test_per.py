"""Prioritized replay: sum-tree sums and search against brute force, sampling statistics, weights by hand."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from deepq.core.per import PrioritizedSampler, SumTree, beta_schedule


def expected_find(leaves: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """Brute force: the slot whose range [cumsum_{i-1}, cumsum_i) holds each prefix; past the end, the last
    nonzero slot (that is what find() promises for a prefix pushed to or past the total)."""
    slots = np.searchsorted(np.cumsum(leaves), prefix, side="right")
    return np.minimum(slots, np.flatnonzero(leaves)[-1])


def subtree_sums(leaves: np.ndarray, n_leaves: int) -> np.ndarray:
    """Every node of the flat tree layout (node 1 = root, node i has children 2i, 2i+1), summed from scratch."""
    tree = np.zeros(2 * n_leaves)
    tree[n_leaves:n_leaves + len(leaves)] = leaves
    for node in range(n_leaves - 1, 0, -1):
        tree[node] = tree[2 * node] + tree[2 * node + 1]
    return tree


# --- SumTree: sums -------------------------------------------------------------------------------

def test_layout_rounds_leaves_up_to_a_power_of_two() -> None:
    assert (SumTree(1).n_leaves, SumTree(5).n_leaves, SumTree(8).n_leaves, SumTree(1000).n_leaves) == (1, 8, 8, 1024)
    assert SumTree(1_000_000).depth == 20


def test_duplicate_slots_in_one_update_last_value_wins() -> None:
    tree = SumTree(4)
    tree.update(np.array([3, 3, 1, 3]), np.array([1.0, 5.0, 0.5, 2.0]))
    np.testing.assert_array_equal(tree.get(np.arange(4)), [0.0, 0.5, 0.0, 2.0])
    assert tree.total() == 2.5  # a `parent += delta` per write would give 1 + 5 + 0.5 + 2 = 8.5, or worse
    tree.update(np.array([1, 1]), np.array([3.0, 0.0]))
    assert tree.total() == 2.0
    assert tree.count_nonzero() == 1


@pytest.mark.parametrize("capacity", [1, 7, 1000])
def test_sums_match_brute_force_after_random_batched_updates(capacity: int) -> None:
    rng = np.random.default_rng(0)
    tree = SumTree(capacity)
    ref = np.zeros(capacity)
    for step in range(200):
        n = int(rng.integers(1, 64))
        # Few distinct slots per batch, so most batches repeat some slot with different values.
        slots = rng.integers(0, min(capacity, 1 + step), size=n)
        values = rng.random(n) * rng.choice([0.0, 1.0, 1e3], size=n)  # zeros included
        tree.update(slots, values)
        for s, v in zip(slots, values, strict=True):  # sequential assignment, the meaning of a batch
            ref[s] = v
        np.testing.assert_array_equal(tree.get(np.arange(capacity)), ref)
        assert tree.count_nonzero() == np.count_nonzero(ref)
    # Each internal node equals the sum of its two children computed from scratch: no drift, no double counts.
    np.testing.assert_array_equal(tree._tree[1:], subtree_sums(ref, tree.n_leaves)[1:])
    assert tree.total() == pytest.approx(ref.sum(), rel=1e-12)


def test_max_is_a_running_max_of_values_set() -> None:
    tree = SumTree(4)
    assert tree.max() == 0.0
    tree.update(np.array([0, 1]), np.array([2.0, 7.0]))
    assert tree.max() == 7.0
    tree.update(np.array([1]), np.array([1.0]))  # lowering the max leaf does not lower the running max
    assert tree.max() == 7.0


def test_update_rejects_bad_input() -> None:
    tree = SumTree(5)
    with pytest.raises(IndexError):
        tree.update(np.array([5]), np.array([1.0]))  # a padding leaf, beyond capacity
    with pytest.raises(IndexError):
        tree.update(np.array([-1]), np.array([1.0]))
    for bad in (-1.0, np.nan, np.inf):
        with pytest.raises(ValueError):
            tree.update(np.array([0]), np.array([bad]))
    tree.update(np.array([], dtype=np.int64), np.array([]))  # an empty batch is a no-op
    assert tree.total() == 0.0
    with pytest.raises(ValueError):
        tree.find(np.array([0.0]))  # nothing to find in an empty tree


# --- SumTree: find -------------------------------------------------------------------------------

def test_find_matches_cumsum_search_exactly_on_integer_priorities() -> None:
    """Integer leaves make every partial sum exact, so even prefixes exactly on a boundary must agree."""
    rng = np.random.default_rng(1)
    capacity = 37  # 64 leaves: 27 padding leaves that must never come back
    leaves = rng.integers(0, 4, size=capacity).astype(np.float64)
    leaves[[0, 1, -1, -2]] = 0.0  # empty slots at both ends, and runs of empty slots in the middle
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), leaves)
    total = tree.total()
    assert total == leaves.sum()
    boundaries = np.cumsum(leaves)
    prefix = np.concatenate([
        [0.0, np.nextafter(total, 0.0), total, total + 1.0, 1e300],  # start, just below, at and past the end
        boundaries, np.nextafter(boundaries, 0.0), np.nextafter(boundaries, np.inf),
        rng.random(2000) * total,
    ])
    found = tree.find(prefix)
    np.testing.assert_array_equal(found, expected_find(leaves, prefix))
    assert np.all(leaves[found] > 0)
    assert tree.find(np.array([0.0]))[0] == 2  # the first nonzero slot, skipping the empty slots 0 and 1
    assert tree.find(np.array([total]))[0] == capacity - 3  # the last nonzero slot, not a padding leaf


def test_find_matches_cumsum_search_on_random_float_priorities() -> None:
    rng = np.random.default_rng(2)
    capacity = 1000
    leaves = rng.random(capacity) * (rng.random(capacity) < 0.7)  # about 30% empty slots
    tree = SumTree(capacity)
    tree.update(np.arange(capacity), leaves)
    total = tree.total()
    prefix = rng.random(100_000) * total
    found = tree.find(prefix)
    expected = expected_find(leaves, prefix)
    # The tree adds in another order than cumsum, so the two may differ only within rounding of a boundary.
    mismatch = found != expected
    distance = np.abs(np.cumsum(leaves)[np.minimum(found, expected)] - prefix)
    assert np.all(distance[mismatch] < 1e-9 * total)
    assert mismatch.mean() < 1e-3
    assert np.all(leaves[found] > 0)


def test_find_never_returns_a_zero_slot_under_rounding() -> None:
    """Leaves spanning 600 orders of magnitude make the partial sums round heavily; prefixes at the edges
    (0, boundaries, just below and at the total, beyond it, NaN, negative) must still land on nonzero slots."""
    rng = np.random.default_rng(3)
    for capacity in (2, 3, 33, 500):
        for _ in range(20):
            leaves = 10.0 ** rng.uniform(-300, 300, size=capacity) * (rng.random(capacity) < 0.3)
            leaves[rng.integers(capacity)] = 10.0 ** rng.uniform(-300, 300)  # at least one nonzero
            tree = SumTree(capacity)
            tree.update(np.arange(capacity), leaves)
            total = tree.total()
            prefix = np.concatenate([
                [0.0, -1.0, np.nan, np.nextafter(total, 0.0), total, np.nextafter(total, np.inf)],
                np.cumsum(leaves), tree._tree[1:] if capacity < 64 else [], rng.random(200) * total,
            ])
            assert np.all(leaves[tree.find(prefix)] > 0)


# --- PrioritizedSampler --------------------------------------------------------------------------

def test_new_slots_get_the_max_priority_seen_so_far() -> None:
    per = PrioritizedSampler(8, alpha=0.5, eps=0.0)
    per.add(np.array([0, 1]))
    np.testing.assert_array_equal(per.tree.get(np.array([0, 1])), [1.0, 1.0])  # 1.0 before any update
    per.update(np.array([0]), np.array([-0.25]))  # priority |-0.25|^0.5 = 0.5: below 1, so the max stays 1
    per.add(np.array([2]))
    assert per.tree.get(np.array([2]))[0] == 1.0
    per.update(np.array([1]), np.array([16.0]))  # 16^0.5 = 4
    per.add(np.array([3, 4]))
    np.testing.assert_array_equal(per.tree.get(np.arange(5)), [0.5, 4.0, 1.0, 4.0, 4.0])
    per.update(np.array([1]), np.array([0.0]))  # lowering slot 1 does not lower the max
    per.set_invalid(np.array([3, 4]))
    per.add(np.array([5]))
    np.testing.assert_array_equal(per.tree.get(np.arange(6)), [0.5, 0.0, 1.0, 0.0, 0.0, 4.0])


def test_invalid_slots_are_never_sampled() -> None:
    capacity = 1000
    per = PrioritizedSampler(capacity, alpha=0.6)
    per.add(np.arange(capacity))
    rng = np.random.default_rng(4)
    per.update(np.arange(capacity), rng.normal(size=capacity) * 10)
    invalid = np.concatenate([[0, 1, capacity - 1], rng.choice(capacity, size=500, replace=False)])
    per.set_invalid(invalid)
    assert per.tree.count_nonzero() == capacity - len(np.unique(invalid))
    drawn = np.concatenate([per.sample(256, rng, beta=0.4)[0] for _ in range(200)])
    assert not np.isin(drawn, invalid).any()
    per.add(invalid[:1])  # valid again once the slot holds a new transition
    assert 0 in np.concatenate([per.sample(256, rng, beta=0.4)[0] for _ in range(50)])


def test_sampling_frequencies_proportional_to_priorities_to_the_alpha() -> None:
    td = np.array([0.05, 0.3, 1.0, 2.0, 5.0, 0.0, 0.7, 3.0, 9.0, 0.0])
    alpha, eps = 0.6, 0.01
    per = PrioritizedSampler(len(td) + 2, alpha=alpha, eps=eps)  # 12 slots; 10 and 11 never added
    per.add(np.arange(len(td)))
    per.update(np.arange(len(td)), -td)  # the sign of the TD error must not matter
    per.set_invalid(np.array([5]))
    p = (td + eps) ** alpha
    p[5] = 0.0
    expected = p / p.sum()
    rng = np.random.default_rng(5)
    draws = 200_000
    counts = np.bincount(np.concatenate([per.sample(250, rng, beta=1.0)[0] for _ in range(draws // 250)]),
                         minlength=12)
    assert counts[5] == counts[10] == counts[11] == 0
    # Stratified draws vary less than independent ones, so binomial standard errors are a conservative bound.
    se = np.sqrt(draws * expected * (1 - expected))
    z = np.abs(counts[:10] - draws * expected[:10]) / np.where(se[:10] > 0, se[:10], 1.0)
    assert z.max() < 4.0, (counts, draws * expected)
    # The test has power: frequencies proportional to |delta| + eps (alpha forgotten) would be far off.
    wrong = np.where(np.arange(10) == 5, 0.0, td + eps)
    wrong /= wrong.sum()
    assert np.max(np.abs(counts[:10] - draws * wrong) / np.sqrt(draws * wrong * (1 - wrong) + 1)) > 20


def test_importance_weights_by_hand() -> None:
    """alpha 0.5, eps 0, |delta| = 1, 4, 9 give priorities 1, 2, 3 (total 6); slot 3 invalid, so N = 3.

    P = 1/6, 2/6, 3/6 and N P = 0.5, 1, 1.5. With 6 draws each segment has width 1, so the strata are
    [0,1) -> slot 0, [1,2) and [2,3) -> slot 1, [3,4) [4,5) [5,6) -> slot 2, whatever the random draws.
    beta 0.5: w = 0.5^-0.5, 1^-0.5, 1.5^-0.5 = 1.414214, 1, 0.816497; over the batch max 1.414214:
    1, 0.707107, 0.577350. beta 1: w = 2, 1, 0.666667; over 2: 1, 0.5, 0.333333."""
    per = PrioritizedSampler(4, alpha=0.5, eps=0.0)
    per.add(np.arange(4))
    per.update(np.arange(3), np.array([1.0, -4.0, 9.0]))
    per.set_invalid(np.array([3]))
    assert (per.tree.total(), per.tree.count_nonzero()) == (6.0, 3)
    rng = np.random.default_rng(6)
    slots, w = per.sample(6, rng, beta=0.5)
    np.testing.assert_array_equal(slots, [0, 1, 1, 2, 2, 2])
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, [1.0, 0.707107, 0.707107, 0.577350, 0.577350, 0.577350], rtol=1e-6)
    _, w = per.sample(6, rng, beta=1.0)
    np.testing.assert_allclose(w, [1.0, 0.5, 0.5, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)
    _, w = per.sample(6, rng, beta=0.0)
    np.testing.assert_array_equal(w, np.ones(6))
    # Normalized by the batch max, not the memory's: a lone slot 2 gets weight 1, not 0.577350.
    for _ in range(20):
        slots, w = per.sample(1, rng, beta=0.5)
        assert w[0] == 1.0


def test_alpha_zero_is_uniform_over_valid_slots() -> None:
    per = PrioritizedSampler(4, alpha=0.0)
    per.add(np.arange(4))
    per.update(np.arange(4), np.array([0.0, 1.0, 100.0, 1e6]))
    np.testing.assert_array_equal(per.tree.get(np.arange(4)), np.ones(4))
    slots, w = per.sample(4, np.random.default_rng(7), beta=0.4)
    np.testing.assert_array_equal(slots, [0, 1, 2, 3])
    np.testing.assert_array_equal(w, np.ones(4))


def test_sample_with_nothing_valid_raises() -> None:
    per = PrioritizedSampler(4)
    with pytest.raises(ValueError):
        per.sample(2, np.random.default_rng(0), beta=0.4)
    per.add(np.array([1]))
    per.set_invalid(np.array([1]))
    with pytest.raises(ValueError):
        per.sample(2, np.random.default_rng(0), beta=0.4)


def test_beta_schedule() -> None:
    assert beta_schedule(0, 0.4, 100) == pytest.approx(0.4)
    assert beta_schedule(25, 0.4, 100) == pytest.approx(0.55)
    assert beta_schedule(50, 0.4, 100) == pytest.approx(0.7)
    assert beta_schedule(100, 0.4, 100) == 1.0
    assert beta_schedule(10_000, 0.4, 100) == 1.0
    assert beta_schedule(5, 0.4, 0) == 1.0


def test_state_dict_round_trip() -> None:
    capacity = 300
    rng = np.random.default_rng(8)
    per = PrioritizedSampler(capacity, alpha=0.7, eps=1e-3)
    per.add(np.arange(250))
    per.update(rng.integers(0, 250, size=100), rng.normal(size=100) * 5)
    per.set_invalid(np.arange(10))
    buf = io.BytesIO()
    torch.save(per.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    restored = PrioritizedSampler(capacity, alpha=0.7, eps=1e-3)
    restored.add(np.arange(capacity))  # stale content must be replaced, not added to
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.tree._tree, per.tree._tree)  # internal sums rebuilt bit for bit
    assert (restored.max_priority, restored.tree.count_nonzero()) == (per.max_priority, per.tree.count_nonzero())
    a, b = per.sample(64, np.random.default_rng(9), 0.5), restored.sample(64, np.random.default_rng(9), 0.5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="capacity"):
        PrioritizedSampler(capacity + 1, alpha=0.7).load_state_dict(state)
    with pytest.raises(ValueError, match="alpha"):
        PrioritizedSampler(capacity, alpha=0.6).load_state_dict(state)
