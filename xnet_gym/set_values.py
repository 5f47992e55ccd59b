"""The evaluator's per-set reduction under `max`, compiled, for refinement's neighbourhood.

An active set's value is the sum over time steps of its slowest member's stage cost,
`leg(t, s_e) + m_e * t_expert(s_e)` (`latency.worst_per_set_s`). Refinement scores the whole
neighbourhood of a placement, every member of every set put on every candidate
(`latency.worst_per_set_replaced_s`), at every step. These kernels compute the same numbers
for any subset of the sets (a step only changes the sets that hold a moved expert) and for a
batch of layers in one call. They are not a second evaluator: every entry is the same
maximum over the same IEEE sums, and the sum over time steps is NumPy's own pairwise
summation, replayed (`pairwise_sum`), so each value is the same bits as the NumPy function.
`tests/test_set_values.py` holds them to it, and to brute force.
"""

from __future__ import annotations

import numba
import numpy as np

_JIT = {"nogil": True, "cache": True, "error_model": "numpy"}


@numba.njit(**_JIT)
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """Sum of a[lo:lo+n] in NumPy's order for a contiguous float64 reduction (its
    `pairwise_sum`: 8 accumulators, halves above 128 elements), so the bits are NumPy's."""
    return _pairwise(a, lo, n)


@numba.njit(**_JIT)
def _block(a, lo, n):
    """NumPy's pairwise_sum of at most 128 elements."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(**_JIT)
def _pairwise(a, lo, n):
    """Above 128 elements NumPy sums the two halves (cut at a multiple of 8) and adds them.
    Walked on an explicit stack: numba's on-disk cache does not keep recursive functions."""
    if n <= 128:
        return _block(a, lo, n)
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    stage = np.zeros(64, dtype=np.int64)        # 0: fresh, 1: left half pending, 2: right half pending
    left = np.empty(64)
    right = np.empty(64)
    los[0], ns[0], stage[0] = lo, n, 0
    top = 0
    while True:
        n_top = ns[top]
        half = n_top // 2
        half -= half % 8
        if n_top <= 128:
            value = _block(a, los[top], n_top)
        elif stage[top] == 0:
            stage[top] = 1
            top += 1
            los[top], ns[top], stage[top] = los[top - 1], half, 0
            continue
        elif stage[top] == 1:
            stage[top] = 2
            top += 1
            los[top], ns[top], stage[top] = los[top - 1] + half, n_top - half, 0
            continue
        else:
            value = left[top] + right[top]
        if top == 0:
            return value
        top -= 1
        if stage[top] == 1:
            left[top] = value
        else:
            right[top] = value


@numba.njit(**_JIT)
def _replaced_rows(legs_t, time_s, a, sets, capacity, set_ids, out, scratch):
    """out[s, i, c] for s in set_ids (see `replaced_values`); scratch (3, n_t) float64."""
    C, n_t = legs_t.shape
    k = sets.shape[1]
    slowest = scratch[0]
    buf = scratch[1]
    cand = np.empty(k, dtype=np.int64)
    same = np.empty(k, dtype=np.int64)
    multi = np.empty(k, dtype=np.int64)
    for s in set_ids:
        for j in range(k):
            cand[j] = a[sets[s, j]]
        for j in range(k):
            c = 0
            for l in range(k):
                if cand[l] == cand[j]:
                    c += 1
            same[j] = c
        for i in range(k):
            # The slowest of the others once member i has left (its seat-mates compute faster).
            for t in range(n_t):
                slowest[t] = -np.inf
            for j in range(k):
                if j == i:
                    continue
                m = same[j] - (1 if cand[i] == cand[j] else 0) if capacity > 1 else 1
                cj = cand[j]
                extra = m * time_s[cj]
                for t in range(n_t):
                    v = legs_t[cj, t] + extra
                    if v > slowest[t]:
                        slowest[t] = v
            for c in range(C):
                own = time_s[c]
                for t in range(n_t):
                    v = legs_t[c, t] + own
                    buf[t] = v if v > slowest[t] else slowest[t]
                out[s, i, c] = pairwise_sum(buf, 0, n_t)
            # Candidates a member is on: member i joins them, every multiplicity recounted.
            for jj in range(k):
                c = cand[jj]
                for l in range(k):
                    multi[l] = c if l == i else cand[l]
                for t in range(n_t):
                    buf[t] = -np.inf
                for l in range(k):
                    cl = multi[l]
                    if capacity > 1:
                        m = 0
                        for q in range(k):
                            if multi[q] == cl:
                                m += 1
                        extra = time_s[cl] * m
                    else:
                        extra = time_s[cl]
                    for t in range(n_t):
                        v = legs_t[cl, t] + extra
                        if v > buf[t]:
                            buf[t] = v
                out[s, i, c] = pairwise_sum(buf, 0, n_t)


def replaced_values(legs_t: np.ndarray, time_s: np.ndarray, assignment: np.ndarray, sets: np.ndarray,
                    capacity: int, set_ids: np.ndarray, out: np.ndarray) -> None:
    """Write `out[s, i, c]` (float64 (m, k, C)) for every set `s` in `set_ids`: the set's value
    with member i put on candidate c, the rest in place (`latency.worst_per_set_replaced_s`,
    the same bits). legs_t (C, n_t) both legs per candidate and time step; time_s (C,) one
    expert's compute; assignment (E,) candidate of each expert; sets (m, k)."""
    scratch = np.empty((3, legs_t.shape[1]))
    _replaced_rows(legs_t, time_s, assignment, sets, int(capacity), set_ids, out, scratch)
