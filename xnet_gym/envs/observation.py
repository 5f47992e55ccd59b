"""The observation: one list of features, and the builder that owns it.

Each `Feature` declares its key, shape, range and meaning (the env docstrings' observation
table is generated from these), the per-row tables it derives from a block of `LayerRows`
(computed once per generator block, in vectorised calls), its state, how a placement
updates that state, and its value at a step. Every feature is written once, for N episodes
stepped in lockstep (`core.AssignmentCore`): the single env is N = 1, the batched env N. The observation space, the
observation dict, the policy's per-candidate inputs and the documentation all come from the
builder's list, so adding a feature is one new class here and one entry in
`DEFAULT_FEATURES`. Per-candidate features (shape (C,)) are named `candidate_*`: policies
find them by that rule.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from gymnasium import spaces

from ..activation import coactivation_from_sets, set_indicator
from ..errors import ScenarioError
from .problem import LayerRows, ProblemSpec


class AssignmentState:
    """What features read: the assignment state of N episodes stepped in lockstep (owned and
    updated by `core.AssignmentCore`). Episode i's rows are rows `row0[i] + li` of the block
    of `LayerRows` it was drawn from; its per-row state lives at `i * n_rows + li`."""
    __slots__ = ("expert", "layer_index", "mask_f", "n_envs", "n_rows", "n_steps", "occupancy", "row", "row0",
                 "srow", "step")

    def __init__(self, row0: np.ndarray, n_rows: int, n_candidates: int, n_steps: int):
        N = len(row0)
        self.n_envs, self.n_rows = N, n_rows
        self.row0 = row0
        self.layer_index = 0
        self.row = row0.copy()                                      # (N,) the block row being placed
        self.srow = np.arange(N) * n_rows                           # (N,) its state row
        self.step = 0                                               # steps taken in the episodes
        self.n_steps = n_steps
        self.expert = np.zeros(N, dtype=np.int64)                   # (N,) the expert the next action places
        self.occupancy = np.zeros((N * n_rows, n_candidates), dtype=np.float32)   # experts / capacity
        self.mask_f = np.zeros((N, n_candidates), dtype=np.float32)               # the current row's mask


class Feature:
    """One observation entry, for N episodes at once. Subclasses set the class attributes and
    override what they use; every array has the episodes on its leading axis."""
    key: str = ""
    per_candidate: bool = True        # shape (C,); otherwise `size`
    size: int = 0
    meaning: str = ""
    range_text: str = "[0, 1]"

    def high(self, spec: ProblemSpec) -> float:
        return 1.0

    def shape(self, spec: ProblemSpec) -> tuple[int]:
        return (spec.n_candidates_max,) if self.per_candidate else (self.size,)

    def tables(self, rows: LayerRows, spec: ProblemSpec) -> Any:
        """Per-row tables for a block of rows (leading axis B); None if the feature has none.
        Pure: the batched env prepares the next block on another thread while one steps."""
        return None

    def start(self, tables: Any, state: AssignmentState, spec: ProblemSpec) -> None:
        """New episodes over the block these tables were made from. Keep what `value` reads
        in plain attributes: `value` runs on every step."""

    place: Any = None                 # optional: place(state, e, a), arrays (N,), after each step

    def value(self, state: AssignmentState) -> np.ndarray:
        """A fresh (N, ...) float32 array: the feature for each episode's current expert."""
        raise NotImplementedError


class RowFeature(Feature):
    """A fixed per-candidate table row: `tables` returns (B, C) float32."""

    def start(self, tables, state, spec):
        self._table = tables

    def value(self, state):
        return self._table[state.row]


def normalised_cost(rows: LayerRows) -> np.ndarray:
    """(B, C) float32 expected stage cost, min-max scaled within each row; 1 where padded."""
    cs, real = rows.cost_s, rows.candidates >= 0
    lo = cs.min(axis=1, keepdims=True)
    span = np.where(real, cs, -np.inf).max(axis=1, keepdims=True) - lo
    return np.where(real, (cs - lo) / np.where(span > 0, span, 1.0), 1.0).astype(np.float32)


def popularity_rank(rows: LayerRows) -> np.ndarray:
    """(B, E) float32 popularity rank / E of each expert (0 = most active; ties: lower id first)."""
    B, E = rows.probabilities.shape
    by_pop = np.argsort(-rows.probabilities, axis=1, kind="stable")
    rank = np.empty((B, E), dtype=np.float32)
    np.put_along_axis(rank, by_pop, (np.arange(E) / E).astype(np.float32)[None], axis=1)
    return rank


def layer_fraction(rows: LayerRows, spec: ProblemSpec) -> np.ndarray:
    """(B,) layer / (L - 1) of each row."""
    return rows.layers / max(spec.n_layers - 1, 1)


class ExpertFeature(Feature):
    key, per_candidate, size = "expert", False, 4
    meaning = ("current expert's activation probability, popularity rank / E (0 = most active), progress "
               "(steps taken / episode length), layer / (L-1)")

    def tables(self, rows, spec):
        return (rows.probabilities.astype(np.float32), popularity_rank(rows),
                layer_fraction(rows, spec).astype(np.float32))

    def start(self, tables, state, spec):
        self._p, self._rank, self._layer_fraction = tables

    def value(self, state):
        return _expert_value(self._p, self._rank, self._layer_fraction, state.row, state.expert,
                             state.step / state.n_steps)


@numba.njit(nogil=True, cache=True)
def _expert_value(p, rank, layer_fraction, row, expert, progress):
    x = np.empty((len(row), 4), dtype=np.float32)
    for i in range(len(row)):
        x[i, 0] = p[row[i], expert[i]]
        x[i, 1] = rank[row[i], expert[i]]
        x[i, 2] = progress
        x[i, 3] = layer_fraction[row[i]]
    return x


class CandidateCost(RowFeature):
    key = "candidate_cost"
    meaning = "expected stage cost (both legs + compute), min-max normalised in the layer (pad: 1)"

    def tables(self, rows, spec):
        return normalised_cost(rows)


class CandidateSeatRank(RowFeature):
    key = "candidate_seat_rank"
    meaning = ("the candidate's first seat in cost order x capacity / E, capped at 1 (pad: 1); sort-match "
               "gives an expert of popularity rank r the seat r")

    def tables(self, rows, spec):
        # The same scale as the expert's rank, so the closed form is learnable as a match.
        C = rows.cost_s.shape[1]
        seats = np.minimum(np.arange(C) * spec.capacity / spec.n_experts, 1.0).astype(np.float32)
        by_cost = np.lexsort((rows.candidates, rows.cost_s), axis=-1)
        out = np.empty(rows.cost_s.shape, dtype=np.float32)
        np.put_along_axis(out, by_cost, seats[None], axis=1)
        return out


class CandidateMarginal(Feature):
    key = "candidate_marginal"
    meaning = ("expected max(cost, cost of co-active experts already placed) over the tokens that activate "
               "the current expert, normalised like `candidate_cost`")

    def tables(self, rows, spec):
        """For row b and expert e (flattened b * E + e), the `M` (max over the block) counted
        sets holding e and P(set | e active), padded with a dummy set `m` of weight 0 that no
        placement raises: a step touches only the current expert's sets (a few of thousands
        on real traces). An expert with no tokens has no sets: its marginal is its own cost."""
        E = spec.n_experts
        B, m = rows.counts.shape
        offsets, j, csr_weight = expert_set_map(rows, E)
        per = np.diff(offsets)
        M = max(int(per.max()), 1)
        row = np.repeat(np.arange(B * E), per)
        position = np.arange(len(row)) - offsets[row]
        index = np.full((B * E, M), m, dtype=np.int64)
        weight = np.zeros((B * E, M), dtype=np.float32)
        index[row, position] = j
        weight[row, position] = csr_weight
        cost = normalised_cost(rows)
        by_cost = np.argsort(cost, axis=1, kind="stable")                          # (B, C) cheapest first
        return index, weight, per > 0, cost, by_cost, np.take_along_axis(cost, by_cost, axis=1), m + 1

    def start(self, tables, state, spec):
        self._index, self._weight, self._has_sets, self._cost, self._by_cost, self._sorted_cost, n_sets = tables
        self._E = spec.n_experts
        self._set_max = np.zeros((state.n_envs * state.n_rows, n_sets), dtype=np.float32)
        self._placed = _NOTHING_PLACED

    def place(self, state, e, a):
        # Applied by the next `value`, in the same compiled call: one call a step, not two.
        # The arrays are the core's, left unchanged until after the next observation.
        self._placed = (state.row, state.srow, e, a)

    def value(self, state):
        placed, self._placed = self._placed, _NOTHING_PLACED
        return _marginal(self._index, self._weight, self._has_sets, self._cost, self._by_cost, self._sorted_cost,
                         self._set_max, state.row, state.srow, state.expert, self._E, *placed)


_NOTHING_PLACED = (np.zeros(0, dtype=np.int64),) * 4


# Up to this many (set, candidate) pairs per episode the marginal is summed directly; above,
# through a sort of the sets, O(M log M + C log M) a row: on real traces (M ~ 180 sets per
# expert, C = 139) that is 15x less work; on `paper` (M = 7, C = 32) the direct sum wins.
DENSE_MARGINAL_MAX = 2048


@numba.njit(nogil=True, cache=True)
def _marginal(index, weight, has_sets, cost, by_cost, sorted_cost, set_max, row, srow, expert, E, placed_row,
              placed_srow, placed_expert, placed_candidate):
    """(N, C) sum_s w_s max(cn_c, r_s) over the current expert's sets, directly or as
    cn_c (W - W_>(c)) + sum_{s: r_s > cn_c} w_s r_s: each set falls in the bucket of the
    candidates (cheapest first, precomputed per row) it lies above, one binary search each,
    and one pass down the candidates sums the buckets, O(M log C + C) a row. Sums in
    float64, then float32, capped at 1 (float32 weights sum to 1 only within rounding). An
    expert with no tokens reads its own cost."""
    # First the last step's placements: each raises its sets' slowest-so-far to its cost.
    for i in range(len(placed_row)):
        r, sr = placed_row[i], placed_srow[i]
        new = cost[r, placed_candidate[i]]
        for s in index[r * E + placed_expert[i]]:
            if new > set_max[sr, s]:
                set_max[sr, s] = new
        set_max[sr, -1] = 0.0                                                   # the dummy set stays 0
    N, C = len(row), cost.shape[1]
    M = index.shape[1]
    out = np.empty((N, C), dtype=np.float32)
    bucket_w = np.empty(C + 1)
    bucket_wr = np.empty(C + 1)
    for i in range(N):
        at = row[i] * E + expert[i]
        cn = cost[row[i]]
        if not has_sets[at]:
            out[i] = cn
            continue
        if M * C <= DENSE_MARGINAL_MAX:           # few sets: the sum itself beats the buckets
            for c in range(C):
                x = np.float64(cn[c])
                value = 0.0
                for j in range(M):
                    value += weight[at, j] * max(x, np.float64(set_max[srow[i], index[at, j]]))
                out[i, c] = min(np.float32(value), np.float32(1.0))
            continue
        # Set s lies above the p cheapest candidates (cn < r_s): bucket p.
        bucket_w[:] = 0.0
        bucket_wr[:] = 0.0
        total_w = 0.0
        ordered = sorted_cost[row[i]]
        for j in range(M):
            w = np.float64(weight[at, j])
            if w == 0.0:
                continue
            r = set_max[srow[i], index[at, j]]
            p = np.searchsorted(ordered, r, side="left")
            bucket_w[p] += w
            bucket_wr[p] += w * np.float64(r)
            total_w += w
        # Down the candidates, most expensive first: the sets above candidate q are those in
        # buckets past q.
        above_w = 0.0
        above_wr = 0.0
        for q in range(C - 1, -1, -1):
            above_w += bucket_w[q + 1]
            above_wr += bucket_wr[q + 1]
            x = np.float64(ordered[q])
            value = x * (total_w - above_w) + above_wr
            out[i, by_cost[row[i], q]] = min(np.float32(value), np.float32(1.0))
    return out


_LAST_INDICATOR: list = [None, None]      # (sets array, its indicator): two features need it per batch


def set_indicator_of(rows: LayerRows, E: int) -> np.ndarray:
    """(B, m, E) 1.0 where expert e is in active set j of row b; built once per batch (real
    traces have thousands of sets, and the marginal and co-activation tables both read it)."""
    sets, cached = _LAST_INDICATOR
    if sets is rows.sets:
        return cached
    indicator = set_indicator(rows.sets, E, np.float32)
    _LAST_INDICATOR[:] = [rows.sets, indicator]
    return indicator


def expert_set_map(rows: LayerRows, E: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The marginal's map from (row b, expert e), flattened as b * E + e, to the counted sets
    that hold e: CSR `offsets` (B*E + 1,), set indices, and float32 weights P(set | e active).
    The single feature and its batched twin both read it."""
    B = len(rows)
    b, j, e = _members(rows, E)
    row = b * E + e
    joint = rows.counts[b, j].astype(float)
    total = np.bincount(row, weights=joint, minlength=B * E)
    offsets = np.searchsorted(row, np.arange(B * E + 1))
    return offsets, j, (joint / total[row]).astype(np.float32)


def _members(rows: LayerRows, E: int):
    """(row b, set j, expert e) of every expert in every counted set, sorted by (b, e, j): each
    row's members sorted by expert with a stable (radix, int16) sort, so sets stay in order."""
    sets, counts = rows.sets, rows.counts
    B, m, k = sets.shape
    dtype = np.int16 if E < 1 << 15 else np.int32                  # int16: NumPy's stable sort is a radix sort
    key = np.where(np.repeat(counts > 0, k, axis=1), sets.reshape(B, m * k), E).astype(dtype)
    order = np.argsort(key, axis=1, kind="stable")
    e = np.take_along_axis(key, order, axis=1).astype(np.int64)
    valid = e < E                                   # members of zero-count sets sort last, as E
    b = np.broadcast_to(np.arange(B)[:, None], e.shape)[valid]
    return b, (order // k)[valid], e[valid]


class CandidateOccupancy(Feature):
    key = "candidate_occupancy"
    meaning = "experts already on the candidate / capacity"

    def value(self, state):
        return state.occupancy[state.srow]


class CandidateRate(RowFeature):
    key = "candidate_rate"
    meaning = "compute rate / the scenario's fastest satellite (pad: 0)"

    def tables(self, rows, spec):
        return (rows.candidate_rate_flops / spec.max_rate_flops).astype(np.float32)


class CandidateCoactivation(Feature):
    key = "candidate_coactivation"
    meaning = "sum over experts already on the candidate of P(that expert active given the current one)"
    range_text = "[0, k]"

    def high(self, spec):
        return float(spec.top_k)

    def tables(self, rows, spec):
        indicator = set_indicator_of(rows, spec.n_experts)
        return coactivation_from_sets(rows.sets, rows.counts, spec.n_experts, indicator).astype(np.float32)

    def start(self, tables, state, spec):
        self._coactivation = tables                                             # (B, E, E)
        self._sum = np.zeros((state.n_envs * state.n_rows, spec.n_experts, spec.n_candidates_max),
                             dtype=np.float32)
        self._placed = _NOTHING_PLACED

    def place(self, state, e, a):
        self._placed = (state.row, state.srow, e, a)            # applied by the next `value`, as above

    def value(self, state):
        placed, self._placed = self._placed, _NOTHING_PLACED
        return _coactivation_value(self._sum, self._coactivation, state.srow, state.expert, *placed)


@numba.njit(nogil=True, cache=True)
def _coactivation_value(total, coactivation, srow, expert, placed_row, placed_srow, placed_expert,
                        placed_candidate):
    for i in range(len(placed_row)):
        total[placed_srow[i], :, placed_candidate[i]] += coactivation[placed_row[i], :, placed_expert[i]]
    N, C = len(srow), total.shape[2]
    out = np.empty((N, C), dtype=np.float32)
    for i in range(N):
        out[i] = total[srow[i], expert[i]]
    return out


class ActionMask(Feature):
    key = "action_mask"
    meaning = ("1 where the action is valid. At the end of an episode it keeps the last step's mask, so "
               "it is never all zeros")
    range_text = "{0, 1}"

    def value(self, state):
        return state.mask_f.copy()


DEFAULT_FEATURES = (ExpertFeature, CandidateCost, CandidateSeatRank, CandidateMarginal, CandidateOccupancy,
                    CandidateRate, CandidateCoactivation, ActionMask)


class ObservationBuilder:
    """Owns the feature list: the space, the per-block tables and the observation dict."""

    def __init__(self, features=None):
        self.features = [f() for f in (features or DEFAULT_FEATURES)]
        for f in self.features:
            # Policies find the per-candidate inputs by this naming rule.
            per_candidate_name = f.key.startswith("candidate_") or f.key == "action_mask"
            if f.per_candidate != per_candidate_name:
                raise ScenarioError(f"feature key {f.key!r}: per-candidate features are named 'candidate_*' "
                                 f"(or 'action_mask'), and only they")
        self._bind()

    def _bind(self) -> None:
        # Fixed per-row features are served together from one stacked table (one gather a
        # step instead of one each); the others are called. Bound methods, for the step loop.
        self._row_keys = [f.key for f in self.features if type(f).value is RowFeature.value]
        self.values = [(f.key, f.value) for f in self.features if f.key not in self._row_keys]
        self.placers = [f.place for f in self.features if f.place is not None]

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["placers"], state["values"], state["_row_keys"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._bind()

    def space(self, spec: ProblemSpec) -> spaces.Dict:
        return spaces.Dict({f.key: spaces.Box(0.0, f.high(spec), shape=f.shape(spec), dtype=np.float32)
                            for f in self.features})

    def candidate_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.features if f.per_candidate)

    def tables(self, rows: LayerRows, spec: ProblemSpec) -> tuple[list, np.ndarray | None]:
        """Every feature's tables for a block of rows, and the fixed rows stacked (K, B, C)."""
        tables = [f.tables(rows, spec) for f in self.features]
        by_key = {f.key: t for f, t in zip(self.features, tables)}
        stack = np.stack([by_key[k] for k in self._row_keys]) if self._row_keys else None
        return tables, stack

    def start(self, tables: tuple[list, np.ndarray | None], state: AssignmentState, spec: ProblemSpec) -> None:
        """New episodes on the block the tables were made from."""
        per_feature, self._stack = tables
        for f, t in zip(self.features, per_feature):
            f.start(t, state, spec)

    def place(self, state: AssignmentState, e: np.ndarray, a: np.ndarray) -> None:
        for place in self.placers:
            place(state, e, a)

    def observe(self, state: AssignmentState) -> dict[str, np.ndarray]:
        """(N, ...) float32 arrays, fresh every step."""
        obs = {}
        if self._stack is not None:
            obs = dict(zip(self._row_keys, self._stack[:, state.row]))
        for key, value in self.values:
            obs[key] = value(state)
        return obs

    def observe_first(self, state: AssignmentState) -> dict[str, np.ndarray]:
        """`observe`'s first episode only (the single env's observation), without the batch axis."""
        obs = {}
        if self._stack is not None:
            obs = dict(zip(self._row_keys, self._stack[:, state.row[0]].copy()))   # fresh every step
        for key, value in self.values:
            obs[key] = value(state)[0]
        return obs

    def table_markdown(self) -> str:
        """The observation table of the env docstrings."""
        lines = ["| key | shape | meaning | range |", "|---|---|---|---|"]
        for f in self.features:
            shape = "(C,)" if f.per_candidate else f"({f.size},)"
            lines.append(f"| `{f.key}` | {shape} | {f.meaning} | {f.range_text} |")
        return "\n".join(lines)
