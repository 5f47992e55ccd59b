"""The observation features of `observation.py`, computed for N episodes at once.

The batched vector env steps N ExpertPlacement episodes in lockstep; each feature here is the
batched twin of one feature class of `observation.py`, keyed by that class, with the same
key, the same tables (it calls the single feature's `tables` or its helpers) and the same
values: bit for bit where the single feature is elementwise, within float32 rounding where it
sums (the marginal's weighted sum, whose order differs). `tests/test_vector_env.py` holds the
two side by side. A custom feature without a twin here makes the batched env refuse it by name.

A batched feature derives its tables from a batch of rows with `tables(rows, spec)` (pure,
so the env can prepare the next batch on another thread while this one steps), starts the
batch's episodes with `start(tables, spec)`, is updated by `place(ar, e, a)` (arrays (N,): the
placed expert and candidate of every sub-env) and read by `value(state)`, which returns a
fresh (N, ...) float32 array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ScenarioError
from .observation import (
    ActionMask,
    CandidateCoactivation,
    CandidateCost,
    CandidateMarginal,
    CandidateOccupancy,
    CandidateRate,
    CandidateSeatRank,
    ExpertFeature,
    Feature,
    ObservationBuilder,
    expert_set_map,
    layer_fraction,
    normalised_cost,
    popularity_rank,
)
from .problem import LayerRows, ProblemSpec


class BatchState:
    """What batched features read: the lockstep step, each sub-env's current expert, the
    occupancy and the mask (owned and updated by the env)."""
    __slots__ = ("expert", "mask_f", "n_steps", "occupancy", "rows_index", "step")

    def __init__(self, n_envs: int, n_candidates: int, n_steps: int):
        self.rows_index = np.arange(n_envs)
        self.step = 0
        self.n_steps = n_steps
        self.expert = np.zeros(n_envs, dtype=np.int64)
        self.occupancy = np.zeros((n_envs, n_candidates), dtype=np.float32)
        self.mask_f = np.zeros((n_envs, n_candidates), dtype=np.float32)


class BatchFeature:
    key = ""

    def __init__(self, feature: Feature):
        self.feature = feature
        self.key = feature.key

    def tables(self, rows: LayerRows, spec: ProblemSpec) -> Any:
        """What `start` needs from a batch of rows (row i is sub-env i's); no state is touched."""
        return None

    def start(self, tables: Any, spec: ProblemSpec) -> None:
        """A new batch of episodes."""

    def place(self, ar: np.ndarray, e: np.ndarray, a: np.ndarray) -> None:
        """Every sub-env placed expert e[i] on candidate a[i]."""

    def value(self, state: BatchState) -> np.ndarray:
        raise NotImplementedError


class BatchRow(BatchFeature):
    """A fixed per-candidate table row (the single feature's own `tables`)."""

    def tables(self, rows, spec):
        return self.feature.tables(rows, spec)[self.key]

    def start(self, tables, spec):
        self._table = tables

    def value(self, state):
        return self._table.copy()


class BatchExpert(BatchFeature):
    def tables(self, rows, spec):
        # float64 probabilities cast once to float32, as the single env's float32 write rounds them
        return (rows.probabilities.astype(np.float32), popularity_rank(rows),
                layer_fraction(rows, spec).astype(np.float32))

    def start(self, tables, spec):
        self._p, self._rank, self._layer_fraction = tables

    def value(self, state):
        ar, e = state.rows_index, state.expert
        x = np.empty((len(ar), 4), dtype=np.float32)
        x[:, 0] = self._p[ar, e]
        x[:, 1] = self._rank[ar, e]
        x[:, 2] = state.step / state.n_steps
        x[:, 3] = self._layer_fraction
        return x


class BatchMarginal(BatchFeature):
    """Dense twin of the single feature's CSR: for row b and expert e, the `M` (max over the
    batch) sets holding e, padded with a dummy set `m` of weight 0 that no placement raises."""

    def tables(self, rows, spec):
        E = spec.n_experts
        B, m = rows.counts.shape
        offsets, j, csr_weight = expert_set_map(rows, E)
        per = np.diff(offsets)
        M = max(int(per.max()), 1)
        row = np.repeat(np.arange(B * E), per)                   # the CSR's rows, laid out densely
        position = np.arange(len(row)) - offsets[row]
        index = np.full((B * E, M), m, dtype=np.int64)
        weight = np.zeros((B * E, M), dtype=np.float32)
        index[row, position] = j
        weight[row, position] = csr_weight
        return index, weight, per > 0, normalised_cost(rows), (B, m + 1)

    def start(self, tables, spec):
        self._index, self._weight, self._has_sets, self._cost, shape = tables
        self._E = spec.n_experts
        self._set_max = np.zeros(shape, dtype=np.float32)

    def place(self, ar, e, a):
        sets = self._index[ar * self._E + e]                                     # (N, M)
        placed = self._cost[ar, a][:, None]
        self._set_max[ar[:, None], sets] = np.maximum(self._set_max[ar[:, None], sets], placed)
        self._set_max[:, -1] = 0.0                                              # the dummy set stays 0

    def value(self, state):
        ar, e = state.rows_index, state.expert
        at = ar * self._E + e
        cn = self._cost
        raised = self._set_max[ar[:, None], self._index[at]]                     # (N, M)
        weight = self._weight[at]
        if raised.shape[1] * cn.shape[1] <= DENSE_MARGINAL_MAX:
            spread = np.maximum(cn[:, None, :], raised[:, :, None])              # (N, M, C)
            marginal = np.matmul(weight[:, None, :], spread)[:, 0, :]
        else:
            marginal = _sorted_marginal(cn, raised, weight)
        np.minimum(marginal, 1.0, out=marginal)
        return np.where(self._has_sets[at][:, None], marginal, cn)


# Above this many (set, candidate) pairs per sub-env the marginal goes through a sort of the
# sets, O(M log M + C log M) per row, instead of the O(M x C) table: on real traces (M ~ 180
# sets per expert, C = 139) that is 15x less work; on `paper` (M = 7, C = 32) the table wins.
DENSE_MARGINAL_MAX = 2048


def _sorted_marginal(cn: np.ndarray, raised: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """(N, C) sum_s w_s max(cn_c, r_s) = cn_c (W - W_>(c)) + sum_{s: r_s > cn_c} w_s r_s, with
    the sets of each row sorted by r once and the split found by one batched searchsorted
    (rows offset by 4, above every normalised value). Sums in float64, then float32."""
    N, M = raised.shape
    order = np.argsort(raised, axis=1, kind="stable")
    r = np.take_along_axis(raised, order, axis=1).astype(np.float64)
    w = np.take_along_axis(weight, order, axis=1).astype(np.float64)
    # Suffix sums from set j on, with a zero past the end: what lies above the split.
    tail_w = np.zeros((N, M + 1))
    tail_wr = np.zeros((N, M + 1))
    tail_w[:, :M] = np.cumsum(w[:, ::-1], axis=1)[:, ::-1]
    tail_wr[:, :M] = np.cumsum((w * r)[:, ::-1], axis=1)[:, ::-1]
    offset = 4.0 * np.arange(N)[:, None]
    split = np.searchsorted((r + offset).ravel(), (cn + offset).ravel(), side="right").reshape(cn.shape)
    split -= (M * np.arange(N))[:, None]                                       # sets with r <= cn_c
    rows = np.arange(N)[:, None]
    x = cn.astype(np.float64)
    return (x * (tail_w[:, 0:1] - tail_w[rows, split]) + tail_wr[rows, split]).astype(np.float32)


class BatchOccupancy(BatchFeature):
    def value(self, state):
        return state.occupancy.copy()


class BatchCoactivation(BatchFeature):
    def tables(self, rows, spec):
        return self.feature.tables(rows, spec)["coactivation"]                          # (B, E, E)

    def start(self, tables, spec):
        self._coactivation = tables
        B, E = tables.shape[:2]
        self._sum = np.zeros((B, E, spec.n_candidates_max), dtype=np.float32)

    def place(self, ar, e, a):
        self._sum[ar, :, a] += self._coactivation[ar, :, e]

    def value(self, state):
        return self._sum[state.rows_index, state.expert]


class BatchMask(BatchFeature):
    def value(self, state):
        return state.mask_f.copy()


TWINS: dict[type, type[BatchFeature]] = {
    ExpertFeature: BatchExpert, CandidateCost: BatchRow, CandidateSeatRank: BatchRow,
    CandidateMarginal: BatchMarginal, CandidateOccupancy: BatchOccupancy, CandidateRate: BatchRow,
    CandidateCoactivation: BatchCoactivation, ActionMask: BatchMask,
}


class BatchObservation:
    """The builder's feature list, batched: `tables` and `start` per batch, `place` per step,
    `observe`."""

    def __init__(self, builder: ObservationBuilder):
        missing = [f.key for f in builder.features if type(f) not in TWINS]
        if missing:
            raise ScenarioError(f"observation features {missing}: no batched version; the batched vector env "
                                f"computes only {sorted(f.key for f in (t() for t in TWINS))} (use "
                                f"vectorization_mode='sync' for custom features)")
        self.features = [TWINS[type(f)](f) for f in builder.features]
        self._placers = [f for f in self.features if type(f).place is not BatchFeature.place]

    def tables(self, rows: LayerRows, spec: ProblemSpec) -> list:
        return [f.tables(rows, spec) for f in self.features]

    def start(self, tables: list, spec: ProblemSpec) -> None:
        for f, t in zip(self.features, tables):
            f.start(t, spec)

    def place(self, ar: np.ndarray, e: np.ndarray, a: np.ndarray) -> None:
        for f in self._placers:
            f.place(ar, e, a)

    def observe(self, state: BatchState) -> dict[str, np.ndarray]:
        return {f.key: f.value(state) for f in self.features}
