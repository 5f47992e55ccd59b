"""The observation: one list of features, and the builder that owns it.

Each `Feature` declares its key, shape, range and meaning (the env docstrings' observation
table is generated from these), the per-row tables it derives from a batch of `LayerRows`
(computed once per generator block, in vectorised calls), its per-episode state, how a
placement updates that state, and its value at a step. The observation space, the
observation dict, the policy's per-candidate inputs and the documentation all come from the
builder's list, so adding a feature is one new class here and one entry in
`DEFAULT_FEATURES`. Per-candidate features (shape (C,)) are named `candidate_*`: policies
find them by that rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ..activation import coactivation_from_sets, set_indicator
from ..errors import ScenarioError
from .problem import LayerRows, Problem, ProblemSpec


class Progress:
    """The env's assignment state that features read (owned and updated by the env)."""
    __slots__ = ("layer_index", "mask_f", "n_steps", "occupancy", "step")

    def __init__(self, n_rows: int, n_candidates: int, n_steps: int):
        self.layer_index = 0
        self.step = 0                                               # steps taken in the episode
        self.n_steps = n_steps
        self.occupancy = np.zeros((n_rows, n_candidates), dtype=np.float32)   # experts / capacity
        self.mask_f = np.zeros(n_candidates, dtype=np.float32)


class Feature:
    """One observation entry. Subclasses set the class attributes and override what they use."""
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
        """Per-row tables for a batch of rows (leading axis B); None if the feature has none."""
        return None

    def start(self, tables: Any, first: int, problem: Problem) -> None:
        """A new episode whose row `li` is row `first + li` of `tables`. Keep what `value`
        reads in plain attributes: `value` runs on every step."""

    place: Any = None                 # optional: place(li, expert, candidate) after each step

    def value(self, progress: Progress, li: int, e: int) -> np.ndarray:
        raise NotImplementedError


class RowFeature(Feature):
    """A feature that is a fixed per-candidate table row: `tables` returns {key: (B, C)}.
    """

    def start(self, tables, first, problem):
        self._table, self._first = tables[self.key], first

    def value(self, progress, li, e):
        return self._table[self._first + li].copy()


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
        # Lists: read as Python floats on every step, cheaper than NumPy scalar indexing.
        return {"probabilities": rows.probabilities.tolist(), "rank": popularity_rank(rows).tolist(),
                "layer_fraction": layer_fraction(rows, spec).tolist()}

    def start(self, tables, first, problem):
        self._p, self._rank, self._layer_fraction = tables["probabilities"], tables["rank"], tables["layer_fraction"]
        self._first = first
        self._x = np.empty(4, dtype=np.float32)

    def value(self, progress, li, e):
        row, x = self._first + li, self._x
        x[0] = self._p[row][e]
        x[1] = self._rank[row][e]
        x[2] = progress.step / progress.n_steps
        x[3] = self._layer_fraction[row]
        return x.copy()


class CandidateCost(RowFeature):
    key = "candidate_cost"
    meaning = "expected stage cost (both legs + compute), min-max normalised in the layer (pad: 1)"

    def tables(self, rows, spec):
        return {self.key: normalised_cost(rows)}


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
        return {self.key: out}


class CandidateMarginal(Feature):
    key = "candidate_marginal"
    meaning = ("expected max(cost, cost of co-active experts already placed) over the tokens that activate "
               "the current expert, normalised like `candidate_cost`")

    def tables(self, rows, spec):
        """A sparse (CSR) map from (row b, expert e), flattened as b * E + e, to the active sets
        that contain e and P(set | e active): a step touches only the current expert's sets (a
        few of thousands on real traces), not all of them. Zero-count sets are left out: an
        expert with no tokens gets no entries, and its marginal is its own cost."""
        E = spec.n_experts
        offsets, j, weight = expert_set_map(rows, E)
        # A list: indexing it is several times faster than a NumPy scalar index, per step.
        return {"cost": normalised_cost(rows), "offsets": offsets.tolist(), "set_index": j,
                "weight": weight, "n_sets": rows.counts.shape[1], "E": E}

    def start(self, tables, first, problem):
        self._cost, self._offsets = tables["cost"], tables["offsets"]
        self._set_index, self._weight, self._E = tables["set_index"], tables["weight"], tables["E"]
        self._first = first
        self._set_max = np.zeros((problem.n_rows, tables["n_sets"]), dtype=np.float32)

    def place(self, li, e, a):
        at = (self._first + li) * self._E + e
        sets = self._set_index[self._offsets[at]: self._offsets[at + 1]]
        sm = self._set_max[li]
        sm[sets] = np.maximum(sm[sets], self._cost[self._first + li, a])

    def value(self, progress, li, e):
        cn = self._cost[self._first + li]
        at = (self._first + li) * self._E + e
        lo, hi = self._offsets[at], self._offsets[at + 1]
        if lo == hi:                                # no token activates e
            return cn.copy()
        marginal = np.maximum(cn[:, None], self._set_max[li][self._set_index[lo:hi]]) @ self._weight[lo:hi]
        return np.minimum(marginal, 1.0, out=marginal)   # float32 weights sum to 1 only within rounding


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

    def value(self, progress, li, e):
        return progress.occupancy[li].copy()


class CandidateRate(RowFeature):
    key = "candidate_rate"
    meaning = "compute rate / the scenario's fastest satellite (pad: 0)"

    def tables(self, rows, spec):
        return {self.key: (rows.candidate_rate_flops / spec.max_rate_flops).astype(np.float32)}


class CandidateCoactivation(Feature):
    key = "candidate_coactivation"
    meaning = "sum over experts already on the candidate of P(that expert active given the current one)"
    range_text = "[0, k]"

    def high(self, spec):
        return float(spec.top_k)

    def tables(self, rows, spec):
        indicator = set_indicator_of(rows, spec.n_experts)
        return {"coactivation": coactivation_from_sets(rows.sets, rows.counts, spec.n_experts,
                                                       indicator).astype(np.float32)}

    def start(self, tables, first, problem):
        self._coactivation, self._first = tables["coactivation"], first
        E = problem.spec.n_experts
        self._sum = np.zeros((problem.n_rows, E, problem.spec.n_candidates_max), dtype=np.float32)

    def place(self, li, e, a):
        self._sum[li, :, a] += self._coactivation[self._first + li, :, e]

    def value(self, progress, li, e):
        return self._sum[li, e].copy()


class ActionMask(Feature):
    key = "action_mask"
    meaning = ("1 where the action is valid. At the end of an episode it keeps the last step's mask, so "
               "it is never all zeros")
    range_text = "{0, 1}"

    def value(self, progress, li, e):
        return progress.mask_f.copy()


DEFAULT_FEATURES = (ExpertFeature, CandidateCost, CandidateSeatRank, CandidateMarginal, CandidateOccupancy,
                    CandidateRate, CandidateCoactivation, ActionMask)


class ObservationBuilder:
    """Owns the feature list: the space, the per-episode tables and the observation dict."""

    def __init__(self, features=None):
        self.features = [f() for f in (features or DEFAULT_FEATURES)]
        for f in self.features:
            # Policies find the per-candidate inputs by this naming rule.
            per_candidate_name = f.key.startswith("candidate_") or f.key == "action_mask"
            if f.per_candidate != per_candidate_name:
                raise ScenarioError(f"feature key {f.key!r}: per-candidate features are named 'candidate_*' "
                                 f"(or 'action_mask'), and only they")
        self._bind()
        self._memo_batch: LayerRows | None = None
        self._memo: list = []
        self._stack: np.ndarray | None = None
        self._first = 0

    def _bind(self) -> None:
        # Fixed per-row features are served together from one stacked table (one copy a step
        # instead of one each); the others are called. Bound methods, for the step loop.
        self._row_keys = [f.key for f in self.features if type(f).value is RowFeature.value]
        self.values = [(f.key, f.value) for f in self.features if f.key not in self._row_keys]
        self.placers = [f.place for f in self.features if f.place is not None]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_memo_batch=None, _memo=[], _stack=None)
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

    def start(self, problem: Problem) -> None:
        """Tables for the episode's rows: its batch's (computed once per batch), read at the
        episode's offset in the batch."""
        self._tables_for(problem)
        for f, t in zip(self.features, self._memo):
            f.start(t, problem.first, problem)
        self._first = problem.first

    def _tables_for(self, problem: Problem) -> None:
        if problem.batch is not self._memo_batch:
            self._memo = [f.tables(problem.batch, problem.spec) for f in self.features]
            self._memo_batch = problem.batch
            by_key = {f.key: t for f, t in zip(self.features, self._memo)}
            self._stack = np.stack([by_key[k][k] for k in self._row_keys]) if self._row_keys else None

    def resume(self, problem: Problem) -> None:
        """After unpickling mid-episode: rebuild the batch tables (a cache, not shipped)
        without touching the features' episode state, which was shipped."""
        self._tables_for(problem)
        self._first = problem.first

    def place(self, li: int, e: int, a: int) -> None:
        for place in self.placers:
            place(li, e, a)

    def observe(self, progress: Progress, li: int, e: int) -> dict[str, np.ndarray]:
        obs = {}
        if self._stack is not None:
            rows = self._stack[:, self._first + li].copy()      # a fresh array every step
            obs = dict(zip(self._row_keys, rows))
        for key, value in self.values:
            obs[key] = value(progress, li, e)
        return obs

    def table_markdown(self) -> str:
        """The observation table of the env docstrings."""
        lines = ["| key | shape | meaning | range |", "|---|---|---|---|"]
        for f in self.features:
            shape = "(C,)" if f.per_candidate else f"({f.size},)"
            lines.append(f"| `{f.key}` | {shape} | {f.meaning} | {f.range_text} |")
        return "\n".join(lines)
