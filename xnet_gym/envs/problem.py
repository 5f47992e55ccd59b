"""The episode model: what an episode asks (`Problem`), in rows of layer sub-problems.

- `LayerRows`: B independent layer sub-problems with a leading row axis. One row holds a
  layer's candidates, their per-time-step leg costs, the activation profile (distinct active
  sets and token counts), the closed form's answer and its stage latency. A generator draws
  many rows in one vectorised call; `row(i)` cuts one out. Fields are declared once, here,
  and every copy, cut or stack goes through `dataclasses.fields`, never by position.
- `Problem`: one episode, immutable: its rows (1 for ExpertPlacement, L for ModelPlacement),
  kept as an offset into the batch they were drawn with, the gateways, the closed-form
  placement and the latency it scores (`reference_s`).
- `ProblemSpec`: the sizes fixed for every episode of an env (spaces are built from it).

Observation features are not stored here: `observation.py` derives them from the rows.
Scoring lives in `scoring.py`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from ..analytic import analytic_placement, sort_match_index
from ..errors import ScenarioError, check_choice, check_int, field_error
from ..instance import Instance
from ..latency import leg_costs_s, mean_stage_cost_s
from ..placement import Placement
from . import scoring

SCOPES = ("stage", "token")
ExpertOrder = Literal["index", "frequency", "random"]
EXPERT_ORDERS: tuple[str, ...] = get_args(ExpertOrder)


@dataclass(frozen=True)
class ProblemSpec:
    """Sizes and settings shared by every problem an env sees."""
    n_layers: int                  # layers of the model
    n_experts: int                 # experts per layer (E)
    top_k: int                     # active experts per token (k)
    capacity: int                  # experts per satellite
    n_candidates_max: int          # C: the action count; rows are padded to it
    objective: str                 # "max" | "weighted"
    max_rate_flops: float          # fastest satellite of the scenario (observation scale)

    @classmethod
    def of(cls, instance: Instance) -> ProblemSpec:
        return cls(instance.n_layers, instance.n_experts, instance.trace.top_k, instance.capacity,
                   instance.layout.max_candidates, instance.objective, float(instance.rate_flops.max()))


@dataclass(frozen=True, eq=False)
class LayerRows:
    """B layer sub-problems (leading axis B). Padded candidates have index -1, infinite
    `cost_s`, zero rate; padded active sets have a zero count and weigh nothing."""
    layers: np.ndarray             # (B,) model layer of each row
    candidates: np.ndarray         # (B, C) satellite ids in increasing order, -1 where padded
    n_candidates: np.ndarray       # (B,)
    time_steps: np.ndarray         # (B, K) positions in the scenario's time steps
    leg_cost_s: np.ndarray         # (B, K, C) d(g, s) + d(s, g_next) per time step, outages at the penalty
    candidate_time_s: np.ndarray   # (B, C) one expert's compute time on the candidate
    candidate_rate_flops: np.ndarray  # (B, C) compute rate (0 where padded)
    cost_s: np.ndarray             # (B, C) expected stage cost: mean legs + compute (inf where padded)
    probabilities: np.ndarray      # (B, E) P(expert active), exactly count / tokens
    sets: np.ndarray               # (B, m, k) distinct active sets (sorted ids)
    counts: np.ndarray             # (B, m) tokens per set (0 = padding)
    order: np.ndarray              # (B, E) experts in the order they are placed
    analytic_index: np.ndarray     # (B, E) candidate index of each expert under sort-match
    analytic_satellites: np.ndarray  # (B, E) satellite of each expert under sort-match
    stage_reference_s: np.ndarray  # (B,) stage latency of the sort-match (NaN where not scored)

    def __len__(self) -> int:
        return len(self.layers)

    def row(self, i: int) -> LayerRows:
        """Row i, keeping the row axis (length 1)."""
        return self.take(slice(i, i + 1))

    def take(self, index) -> LayerRows:
        return LayerRows(**{name: getattr(self, name)[index] for name in _ROW_FIELDS})


_ROW_FIELDS = tuple(f.name for f in dataclasses.fields(LayerRows))


@dataclass(frozen=True)
class CandidateTables:
    """Per-layer candidate data over *all* of an instance's time steps (B rows, padded to C):
    what `build_rows` cuts its time steps from. Cached by generators for fixed gateways."""
    candidates: np.ndarray         # (B, C)
    n_candidates: np.ndarray       # (B,)
    leg_cost_s: np.ndarray         # (B, S, C)
    candidate_time_s: np.ndarray   # (B, C)
    candidate_rate_flops: np.ndarray  # (B, C)

    @classmethod
    def build(cls, instance: Instance, gateways: np.ndarray, layers: np.ndarray, n_candidates_max: int,
              time_steps: np.ndarray | None = None) -> CandidateTables:
        """Tables for `layers` under `gateways`; `time_steps` restricts the legs to those
        positions in `instance.time_steps` (default all)."""
        S = len(instance.time_steps) if time_steps is None else len(time_steps)
        inst = instance if time_steps is None else instance.with_time_steps(instance.time_steps[time_steps])
        n, C = len(layers), n_candidates_max
        cand = np.full((n, C), -1, dtype=np.int64)
        legs = np.zeros((n, S, C))
        t = np.zeros((n, C))
        rate = np.zeros((n, C))
        n_cand = np.empty(n, dtype=np.int64)
        for i, layer in enumerate(layers):          # a loop over layers, not satellites
            c = instance.layout.candidates(layer, gateways[layer])
            m = n_cand[i] = len(c)
            cand[i, :m] = c
            legs[i, :, :m] = leg_costs_s(inst, gateways, layer, c)
            t[i, :m] = instance.expert_time_s[c]
            rate[i, :m] = instance.rate_flops[c]
        return cls(cand, n_cand, legs, t, rate)

    def take(self, index) -> CandidateTables:
        return CandidateTables(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


def build_rows(spec: ProblemSpec, layers: np.ndarray, tables: CandidateTables, time_steps: np.ndarray, sets: np.ndarray,
               counts: np.ndarray, *, expert_order: str = "index", rng: np.random.Generator | None = None,
               score_stages: bool = True, time_steps_are_columns: bool = False) -> LayerRows:
    """B rows in vectorised calls: stage costs over each row's time steps, the closed form
    and, with `score_stages`, the closed form's stage latency through `scoring`.

    `tables` holds B rows over all time steps; `time_steps` (B, K) picks each row's (or, with
    `time_steps_are_columns`, `tables.leg_cost_s` already holds exactly those columns)."""
    B = len(sets)
    if time_steps_are_columns:
        legs = tables.leg_cost_s
    else:
        legs = tables.leg_cost_s[np.arange(B)[:, None], time_steps]                # (B, K, C)
    cand = tables.candidates
    real = cand >= 0
    cs = np.where(real, mean_stage_cost_s(legs, tables.candidate_time_s), np.inf)
    E = spec.n_experts
    tokens = counts.sum(axis=1)
    # Integer token counts summed in float are exact, so p is exactly count / T, as in the evaluator.
    flat = (np.arange(B)[:, None, None] * E + sets).ravel()
    weight = np.broadcast_to(counts[:, :, None], sets.shape).ravel()
    p = np.bincount(flat, weights=weight, minlength=B * E).reshape(B, E) / tokens[:, None]
    if expert_order == "index":
        order = np.broadcast_to(np.arange(E), (B, E))
    elif expert_order == "frequency":
        order = np.argsort(-p, axis=1, kind="stable")                               # ties: lower id first
    else:
        if rng is None:
            raise ScenarioError("expert_order = 'random': needs the episode's rng (pass rng=)")
        order = rng.permuted(np.broadcast_to(np.arange(E), (B, E)), axis=1)
    idx = sort_match_index(p, cs, spec.capacity, tiebreak=cand)
    seat = np.take_along_axis(cand, idx, axis=1)
    rows = LayerRows(layers=np.asarray(layers, dtype=np.int64), candidates=cand, n_candidates=tables.n_candidates,
                     time_steps=time_steps, leg_cost_s=legs, candidate_time_s=tables.candidate_time_s,
                     candidate_rate_flops=tables.candidate_rate_flops, cost_s=cs, probabilities=p, sets=sets,
                     counts=counts, order=order, analytic_index=idx, analytic_satellites=seat,
                     stage_reference_s=np.full(B, np.nan))
    if score_stages:
        rows = dataclasses.replace(rows, stage_reference_s=scoring.stage_latency_of_index(rows, idx, spec))
    return rows


@dataclass(frozen=True, eq=False)
class Problem:
    """One episode: rows `first .. first + n_rows - 1` of `batch` (a generator draws many
    episodes' rows at once; `rows` cuts this episode's out, and hot paths index the batch at
    `first` instead). `scope="stage"` (ExpertPlacement): scored on the one row's
    expert-stage latency; `scope="token"` (ModelPlacement): on the whole token latency. The
    return contract is `-objective_s(placement) / reference_s`, with `reference` (the closed
    form) scoring exactly `reference_s`."""
    batch: LayerRows
    first: int
    n_rows: int
    gateways: np.ndarray           # (L,)
    base_experts: np.ndarray       # (L, E) the other layers' experts (the scenario's closed form); shared
    reference_s: float
    scope: str
    spec: ProblemSpec
    instance_factory: Callable[[], Instance]

    def __getstate__(self):
        # Cached views (rows, reference, instance) are rebuilt on use, not shipped.
        return {k: v for k, v in self.__dict__.items() if k not in ("rows", "reference", "instance")}

    def __setstate__(self, state):
        self.__dict__.update(state)

    @functools.cached_property
    def rows(self) -> LayerRows:
        """This episode's rows (row i is the episode's i-th layer)."""
        if self.first == 0 and self.n_rows == len(self.batch):
            return self.batch
        return self.batch.take(slice(self.first, self.first + self.n_rows))

    @functools.cached_property
    def reference(self) -> Placement:
        """The closed form: the rows sort-matched, the other layers as in `base_experts`."""
        experts = self.base_experts.copy()
        rows = slice(self.first, self.first + self.n_rows)
        experts[self.batch.layers[rows]] = self.batch.analytic_satellites[rows]
        return Placement(self.gateways, experts)

    @functools.cached_property
    def instance(self) -> Instance:
        """The episode's instance (its time steps and activation trace), built on first use."""
        return self.instance_factory()

    @classmethod
    def from_instance(cls, instance: Instance, layers=None, *, gateways=None, scope: str | None = None,
                      expert_order: str = "index", rng: np.random.Generator | None = None,
                      spec: ProblemSpec | None = None, base_experts: np.ndarray | None = None) -> Problem:
        """The problem of placing `layers` (default: every layer, scope "token") of an
        instance, on all of its time steps and its whole trace. What a custom generator
        returns (see `generator.Generator`). `base_experts` (L, E): the other layers' experts
        (default: the closed form's, computed for every layer)."""
        spec = spec or ProblemSpec.of(instance)
        own = ProblemSpec.of(instance)
        if dataclasses.replace(own, n_candidates_max=spec.n_candidates_max, max_rate_flops=spec.max_rate_flops) \
                != spec or own.n_candidates_max > spec.n_candidates_max:
            raise field_error(ScenarioError, "spec", spec, f"does not fit the instance, whose own spec is {own}")
        L = instance.n_layers
        layers = np.arange(L) if layers is None else np.atleast_1d(np.asarray(layers))
        for layer in layers.tolist():
            check_int(ScenarioError, "layers", layer, 0, L - 1)
        layers = layers.astype(np.int64)
        scope = scope or ("token" if len(layers) == L else "stage")
        check_choice(ScenarioError, "scope", scope, SCOPES)
        if (scope == "stage") != (len(layers) == 1) or (scope == "token" and not np.array_equal(layers, np.arange(L))):
            raise field_error(ScenarioError, "layers", layers.tolist(),
                              'scope "stage" places exactly one layer; scope "token" places every layer in order')
        check_choice(ScenarioError, "expert_order", expert_order, EXPERT_ORDERS)
        g = instance.layout.central_gateways if gateways is None else np.asarray(gateways, dtype=np.int64)
        tables = CandidateTables.build(instance, g, layers, spec.n_candidates_max)
        sets, counts = stack_active_sets(instance.trace, layers, spec.top_k)
        steps = np.broadcast_to(np.arange(len(instance.time_steps)), (len(layers), len(instance.time_steps)))
        rows = build_rows(spec, layers, tables, steps, sets, counts, expert_order=expert_order, rng=rng,
                          score_stages=scope == "stage", time_steps_are_columns=True)
        base = analytic_placement(instance, g).experts if base_experts is None else base_experts
        return finish_problem(rows, 0, len(rows), g, base, scope, spec,
                              functools.partial(fixed_instance, instance))


def fixed_instance(instance: Instance) -> Instance:
    """An instance factory's body for an instance that is already built (picklable, unlike
    a lambda)."""
    return instance


def finish_problem(batch: LayerRows, first: int, n_rows: int, gateways: np.ndarray, base_experts: np.ndarray,
                   scope: str, spec: ProblemSpec, instance_factory: Callable[[], Instance]) -> Problem:
    """A Problem over rows [first, first + n_rows) of `batch`, with its reference latency:
    the row's scored stage, or the token latency of the closed form."""
    if scope == "stage":
        return Problem(batch, first, n_rows, gateways, base_experts, float(batch.stage_reference_s[first]), scope,
                       spec, instance_factory)
    problem = Problem(batch, first, n_rows, gateways, base_experts, np.nan, scope, spec, instance_factory)
    object.__setattr__(problem, "reference_s", scoring.token_latency_s(problem.instance, problem.reference))
    return problem


def stack_active_sets(trace, layers, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, m, k) active sets and (n, m) counts of `layers`, padded to one m with zero-count
    copies of the first set."""
    per_layer = [trace.active_sets(int(layer)) for layer in layers]
    m = max(len(c) for _, c in per_layer)
    sets = np.empty((len(per_layer), m, top_k), dtype=np.int64)
    counts = np.zeros((len(per_layer), m), dtype=np.int64)
    for i, (s, c) in enumerate(per_layer):
        sets[i, : len(s)], sets[i, len(s):], counts[i, : len(c)] = s, s[0], c
    return sets, counts
