"""The compiled per-set reductions (`xnet_gym.set_values`) are the evaluator's, bit for bit:
NumPy's summation order replayed, and every neighbourhood entry equal to `worst_per_set_s`
of the changed placement (brute force, every entry)."""

from __future__ import annotations

import numpy as np
import pytest

from xnet_gym.latency import worst_per_set_s
from xnet_gym.set_values import pairwise_sum, replaced_values


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8, 9, 15, 16, 17, 127, 128, 129, 200, 257, 1000])
def test_pairwise_sum_is_numpys_sum(n):
    rng = np.random.default_rng(n)
    a = rng.random(n + 3) * 10.0 ** rng.uniform(-6, 3, n + 3)
    assert pairwise_sum(a, 3, n) == np.sum(a[3:]), n


def _instance(rng, E, C, k, m, n_t, capacity):
    legs = rng.random((n_t, C)) * 0.05
    legs[rng.random((n_t, C)) < 0.05] += 1.0                        # outage penalties
    time_s = rng.random(C) * 0.01
    seats = np.repeat(np.arange(C), capacity)
    a = seats[rng.permutation(len(seats))[:E]]
    sets = np.array([np.sort(rng.choice(E, k, replace=False)) for _ in range(m)])
    return legs, time_s, a, sets


@pytest.mark.parametrize(("E", "C", "k", "m", "n_t", "capacity"),
                         [(8, 12, 2, 20, 16, 1), (16, 9, 4, 30, 8, 3), (6, 5, 3, 15, 200, 2), (5, 7, 1, 5, 3, 2),
                          (12, 6, 6, 12, 24, 2)])
def test_replaced_values_are_the_evaluators_bits(E, C, k, m, n_t, capacity):
    rng = np.random.default_rng(E * 1000 + C)
    legs, time_s, a, sets = _instance(rng, E, C, k, m, n_t, capacity)
    got = np.full((m, k, C), np.nan)
    replaced_values(np.ascontiguousarray(legs.T), time_s, a, sets, capacity, np.arange(m), got)
    # Brute force: every entry is the evaluator on the changed placement.
    want = np.empty_like(got)
    for s in range(m):
        for i in range(k):
            for c in range(C):
                b = a.copy()
                b[sets[s, i]] = c
                want[s, i, c] = worst_per_set_s(legs[:, b], time_s[b], b, sets[s: s + 1], capacity)[0]
    np.testing.assert_array_equal(got, want)
    # A subset of sets leaves the others untouched.
    part = np.full((m, k, C), -1.0)
    replaced_values(np.ascontiguousarray(legs.T), time_s, a, sets, capacity, np.array([0, m - 1]), part)
    np.testing.assert_array_equal(part[[0, m - 1]], got[[0, m - 1]])
    assert (part[1: m - 1] == -1.0).all()
