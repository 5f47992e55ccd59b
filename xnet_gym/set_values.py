"""The evaluator's per-set reduction under `max`, compiled: the one implementation.

An active set's value is the sum over time steps of its slowest member's stage cost,
`leg(t, s_e) + m_e * t_expert(s_e)`. `worst_per_set` computes it for a batch of layers; every
`max`-objective score in `xnet_gym.latency` goes through it. Refinement scores the whole
neighbourhood of a placement, every member of every set put on every candidate, at every
step: `replaced_values` computes those values for any subset of the sets (a step changes
only the sets that hold a moved expert), with the same per-member costs, the same maximum
and the same sum, so each entry is the bits `worst_per_set` gives the changed placement.
Sums replay NumPy's pairwise order (`pairwise_sum`), the order the NumPy code these kernels
replaced used, so scores kept their bits. `tests/test_set_values.py` holds them to NumPy's
sums and every neighbourhood entry to brute force.
"""

from __future__ import annotations

import numba
import numpy as np

_kernel = numba.njit(nogil=True, cache=True, error_model="numpy")


@_kernel
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """Sum of a[lo:lo+n] in NumPy's order for a contiguous float64 reduction (its
    `pairwise_sum`: 8 accumulators, halves above 128 elements), so the bits are NumPy's."""
    return _pairwise(a, lo, n)


@_kernel
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


@_kernel
def _pairwise(a, lo, n):
    """Above 128 elements NumPy sums the two halves (cut at a multiple of 8) and adds them:
    walked by `_pairwise_rows` on a one-column view (rare here: 128 time steps and more)."""
    if n <= 128:
        return _block(a, lo, n)
    out = np.empty(1)
    _pairwise_rows(a[lo: lo + n].reshape(n, 1), 0, n, out, np.empty((64, 1)), np.empty((64, 1)))
    return out[0]


@_kernel
def _replaced_rows(legs_t, time_s, a, sets, capacity, set_ids, out, scratch):
    """out[s, i, c] for s in set_ids (see `replaced_values`); scratch (3, n_t) float64."""
    C, n_t = legs_t.shape
    k = sets.shape[1]
    slowest = scratch[0]
    buf = scratch[1]
    cand = np.empty(k, dtype=np.int64)
    same = np.empty(k, dtype=np.int64)
    cost = np.empty((k, n_t))
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
            # The others' costs once member i has left (its seat-mates compute faster), and
            # the slowest of them.
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
                    cost[j, t] = v
                    if v > slowest[t]:
                        slowest[t] = v
            for c in range(C):
                own = time_s[c]
                for t in range(n_t):
                    v = legs_t[c, t] + own
                    buf[t] = v if v > slowest[t] else slowest[t]
                out[s, i, c] = pairwise_sum(buf, 0, n_t)
            # Candidates another member is on: member i joins them, and everyone there
            # computes back to back (the others keep their costs).
            for jj in range(k):
                c = cand[jj]
                n_on = 1
                for l in range(k):
                    if l != i and cand[l] == c:
                        n_on += 1
                extra = time_s[c] * n_on if capacity > 1 else time_s[c]
                for t in range(n_t):
                    buf[t] = legs_t[c, t] + extra
                for j in range(k):
                    if j == i or cand[j] == c:
                        continue
                    for t in range(n_t):
                        if cost[j, t] > buf[t]:
                            buf[t] = cost[j, t]
                out[s, i, c] = pairwise_sum(buf, 0, n_t)


def replaced_values(legs_t: np.ndarray, time_s: np.ndarray, assignment: np.ndarray, sets: np.ndarray,
                    capacity: int, set_ids: np.ndarray, out: np.ndarray) -> None:
    """Write `out[s, i, c]` (float64 (m, k, C)) for every set `s` in `set_ids`: the set's value
    with member i put on candidate c, the rest in place (the bits `worst_per_set` gives the
    changed placement). legs_t (C, n_t) both legs per candidate and time step; time_s (C,) one
    expert's compute; assignment (E,) candidate of each expert; sets (m, k)."""
    scratch = np.empty((3, legs_t.shape[1]))
    _replaced_rows(legs_t, time_s, assignment, sets, int(capacity), set_ids, out, scratch)


@_kernel
def _block_rows(rows, lo, n, out):
    """`_block` down the rows of a (n, C) table, every column at once."""
    C = rows.shape[1]
    if n < 8:
        for c in range(C):
            out[c] = 0.0
        for i in range(n):
            for c in range(C):
                out[c] += rows[lo + i, c]
        return
    acc = np.empty((8, C))
    for j in range(8):
        for c in range(C):
            acc[j, c] = rows[lo + j, c]
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            for c in range(C):
                acc[j, c] += rows[lo + i + j, c]
        i += 8
    for c in range(C):
        low = (acc[0, c] + acc[1, c]) + (acc[2, c] + acc[3, c])
        out[c] = low + ((acc[4, c] + acc[5, c]) + (acc[6, c] + acc[7, c]))
    while i < n:
        for c in range(C):
            out[c] += rows[lo + i, c]
        i += 1


@_kernel
def _pairwise_rows(rows, lo, n, out, left, right):
    """NumPy's pairwise sum down the rows of a table, every column at once: above 128 rows
    the two halves (cut at a multiple of 8) summed and added, the halving tree walked on an
    explicit stack (numba's on-disk cache does not keep recursive functions)."""
    if n <= 128:
        _block_rows(rows, lo, n, out)
        return
    los = np.empty(64, dtype=np.int64)
    ns = np.empty(64, dtype=np.int64)
    stage = np.zeros(64, dtype=np.int64)
    value = np.empty(rows.shape[1])
    los[0], ns[0], stage[0] = lo, n, 0
    top = 0
    while True:
        n_top = ns[top]
        half = n_top // 2
        half -= half % 8
        if n_top <= 128:
            _block_rows(rows, los[top], n_top, value)
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
            value[:] = left[top] + right[top]
        if top == 0:
            out[:] = value
            return
        top -= 1
        if stage[top] == 1:
            left[top] = value
        else:
            right[top] = value


@_kernel
def neighbourhood_deltas(replaced, worst, counts, sets, assignment, by_expert, start, n_experts):
    """Token-weighted change of the time-summed set values for every move and swap, from
    the per-set values `replaced` (m, k, C) of `replaced_values`: (E, C) for expert e onto
    candidate c (the sum over its sets, in `by_expert` order: the sets holding each expert,
    CSR `start`; summed as `numpy.add.reduceat` sums), and (E, E) for swapping x and y (two
    moves, less the sets that hold both). The same IEEE operations, in the same order, as
    the NumPy reduction it replaced (in `LayerMoves.neighbourhood_latency_s`): the same bits."""
    m, k, C = replaced.shape
    E = n_experts
    delta = np.zeros((E, C))
    # NumPy's reduceat over rows: the first row, plus the others summed pairwise, column by
    # column; here with whole rows at a time (contiguous), the same additions.
    rows = np.empty((max(by_expert.shape[0], 1), C))
    left = np.empty((64, C))
    right = np.empty((64, C))
    rest = np.empty(C)
    for e in range(E):
        lo, hi = start[e], start[e + 1]
        if hi == lo:
            continue
        for r in range(lo, hi):
            si = by_expert[r]
            s = si // k
            i = si % k
            w, n = worst[s], counts[s]
            for c in range(C):
                rows[r - lo, c] = (replaced[s, i, c] - w) * n
        _pairwise_rows(rows, 1, hi - lo - 1, rest, left, right)
        for c in range(C):
            delta[e, c] = rows[0, c] + rest[c]
    both = np.zeros((E, E))
    for s in range(m):
        w, n = worst[s], counts[s]
        for i in range(k):
            x = sets[s, i]
            for j in range(k):
                both[x, sets[s, j]] += (replaced[s, i, assignment[sets[s, j]]] - w) * n
    swap = np.empty((E, E))
    for x in range(E):
        for y in range(E):
            swap[x, y] = ((delta[x, assignment[y]] + delta[y, assignment[x]]) - both[x, y]) - both[y, x]
    return delta, swap


@_kernel
def _worst_rows(legs, time_s, column, sats, sets, capacity, worst, who, want_who):
    """worst[n, s]: the sum over time steps of set s's slowest member in row n; who[n, s, t]
    its position in the set (the first on ties), when `want_who`."""
    n_rows, n_t = legs.shape[0], legs.shape[1]
    m, k = sets.shape[1], sets.shape[2]
    buf = np.empty(n_t)
    extra = np.empty(k)
    cols = np.empty(k, dtype=np.int64)
    for n in range(n_rows):
        for s in range(m):
            for j in range(k):
                e = sets[n, s, j]
                cols[j] = column[n, e]
                if capacity > 1:
                    same = 0
                    for q in range(k):
                        if sats[n, sets[n, s, q]] == sats[n, e]:
                            same += 1
                    extra[j] = time_s[n, cols[j]] * same
                else:
                    extra[j] = time_s[n, cols[j]]
            for t in range(n_t):
                best = legs[n, t, cols[0]] + extra[0]
                arg = 0
                for j in range(1, k):
                    v = legs[n, t, cols[j]] + extra[j]
                    if v > best:
                        best, arg = v, j
                buf[t] = best
                if want_who:
                    who[n, s, t] = arg
            worst[n, s] = _pairwise(buf, 0, n_t)


def worst_per_set(leg_cost_s: np.ndarray, time_s: np.ndarray, column: np.ndarray, sats: np.ndarray,
                  sets: np.ndarray, capacity: int, want_who: bool = False):
    """(n, m) each active set's time-summed slowest member, and with `want_who` (n, m, n_t)
    that member's position in its set (the first on ties). leg_cost_s (n, n_t, X) and
    time_s (n, X) per column; column (n, E) each expert's column, sats (n, E) its satellite
    (members on one satellite compute back to back when `capacity` > 1); sets (n, m, k)."""
    n, m = sets.shape[0], sets.shape[1]
    worst = np.empty((n, m))
    who = np.empty((n, m, leg_cost_s.shape[1]) if want_who else (0, 0, 0), dtype=np.int64)
    _worst_rows(np.ascontiguousarray(leg_cost_s), np.ascontiguousarray(time_s), np.ascontiguousarray(column),
                np.ascontiguousarray(sats), np.ascontiguousarray(sets), int(capacity), worst, who, want_who)
    return (worst, who) if want_who else worst
