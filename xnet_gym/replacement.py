"""Online re-placement of one layer over a drifting workload: the episode and its one scorer.

workload (windows of routing) + migration (what a move costs) + instance (the orbit) ->
`ReplaceEpisode` -> a run of assignments, one per served window -> `serve`/`replay` ->
per-window latency. Every latency comes from `latency.evaluate_stages`, the one evaluator,
on the window's true routing and its time steps; a window's cost also counts the tokens the
old placement serves while the copies fly (`migration.plan_copies`). The envs, the
re-placement baselines and the drift map all score through `serve`.

Assignments are candidate indices (0..C-1) on the layer's ring subnet, as in ExpertRefine-v0.
An online policy may read `history_instance(j)` (routing served before window j, on window
j's time steps: the orbit is predictable, the routing is not) but never `window_instance(j)`;
only the oracle does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .analytic import analytic_placement, layer_costs, sort_match_index
from .errors import ScenarioError, check_choice, check_int, field_error
from .instance import Instance
from .latency import evaluate_stages
from .migration import MigrationSpec, budget_bytes, check_budget, expert_bytes, plan_copies, time_step_s
from .placement import Placement
from .workload import Sources, Windows, WorkloadSpec, draw_windows


@dataclass(frozen=True)
class WindowScore:
    """One served window."""
    latency_s: float          # the window's expert-stage latency, copies in flight included
    new_latency_s: float      # had the new placement served the whole window
    old_latency_s: float      # had the old placement served the whole window
    reference_s: float        # the closed form fit on the window's true routing
    cutover_s: float          # when the new placement took over
    bytes: int                # weights copied
    link_bytes: int           # bytes x ISLs crossed
    moved: int                # experts moved

    @property
    def ratio(self) -> float:
        return self.latency_s / self.reference_s

    @property
    def migration_cost_s(self) -> float:
        """What the copies cost: latency above the new placement's while they fly."""
        return self.latency_s - self.new_latency_s


@dataclass(frozen=True, eq=False)
class ReplaceEpisode:
    instance: Instance        # the scenario's orbit and model (its own trace is not scored here)
    layer: int
    base: Placement           # the gateways (and the other layers, which this layer's score never reads)
    candidates: np.ndarray    # (C,) the layer's candidate satellites
    windows: Windows
    fit_tokens: int           # routing history the online policies fit on
    expert_bytes: int
    window_s: float
    budget_bytes: float
    channel_bps: float

    @property
    def n_served(self) -> int:
        return self.windows.n_served

    @property
    def n_experts(self) -> int:
        return self.instance.n_experts

    @property
    def budget_experts(self) -> int:
        """Experts a window may move (a swap moves two), at most all of them."""
        E = self.n_experts
        return E if not math.isfinite(self.budget_bytes) else min(E, int(self.budget_bytes // self.expert_bytes))

    def _check_window(self, j: int, low: int = 1) -> int:
        return check_int(ScenarioError, "window", j, low, self.n_served)

    def window_instance(self, j: int) -> Instance:
        """Window j's true routing on its time steps (the oracle's and the scorer's view)."""
        self._check_window(j, 0)
        return self.instance.with_trace(self.windows.traces[j], "window trace").with_time_steps(
            self.windows.time_steps[j])

    def history_instance(self, j: int, tokens: int | None = None) -> Instance:
        """The last `tokens` (default `fit_tokens`) served before window j, on window j's time steps."""
        self._check_window(j)
        trace = self.windows.history(j, tokens or self.fit_tokens)
        return self.instance.with_trace(trace, "history trace").with_time_steps(self.windows.time_steps[j])

    def pooled_instance(self) -> Instance:
        """Every served window's routing on every served time step: the offline view."""
        steps = self.windows.time_steps[1:].ravel()
        return self.instance.with_trace(self.windows.pooled(), "pooled trace").with_time_steps(steps)

    def closed_form(self, instance: Instance) -> np.ndarray:
        """(E,) the closed form's candidate per expert, fit on `instance`'s routing and time steps."""
        cand, cost = layer_costs(instance, self.base.gateways, self.layer)
        p = instance.trace.layer_probabilities(self.layer)
        return sort_match_index(p, cost, instance.capacity, tiebreak=cand)

    def placement(self, assignment: np.ndarray) -> Placement:
        return self.base.with_layer(self.layer, self.candidates[np.asarray(assignment)])

    def stage_latency_s(self, instance: Instance, assignment: np.ndarray) -> float:
        """The layer's stage latency of an assignment on an instance, from the evaluator."""
        return float(evaluate_stages(instance, self.placement(assignment), [self.layer], split=False).stage_s[0])

    @property
    def start(self) -> np.ndarray:
        """Where every policy starts: the closed form fit on the warm-up window."""
        return self.closed_form(self.history_instance(1))

    def check_assignment(self, field: str, assignment) -> np.ndarray:
        a = np.asarray(assignment)
        E, C = self.n_experts, len(self.candidates)
        if a.shape != (E,) or not np.issubdtype(a.dtype, np.integer) or a.min() < 0 or a.max() >= C:
            raise field_error(ScenarioError, field, a.tolist() if a.size < 100 else a.shape,
                              f"must be {E} candidate indices in [0, {C - 1}]")
        if np.bincount(a, minlength=C).max() > self.instance.capacity:
            raise field_error(ScenarioError, field, a.tolist(),
                              f"puts more than experts_per_satellite = {self.instance.capacity} on a candidate")
        return a.astype(np.int64)

    def serve(self, j: int, before: np.ndarray, after: np.ndarray, free: bool = False) -> WindowScore:
        """Serve window j: copies from `before` to `after` start at its beginning, the old
        placement serves until the cut-over. `free`: no budget and instant copies (the oracle's
        lower reference)."""
        self._check_window(j)
        inst = self.window_instance(j)
        reference = self.stage_latency_s(inst, self.closed_form(inst))
        new = self.stage_latency_s(inst, after)
        old = new if np.array_equal(before, after) else self.stage_latency_s(inst, before)
        plan = plan_copies(self.instance.topology, int(self.windows.time_steps[j][0]), self.candidates[before],
                           self.candidates[after], self.expert_bytes, self.channel_bps, self.window_s)
        if free:
            return WindowScore(new, new, old, reference, 0.0, plan.bytes, plan.link_bytes, len(plan.moved))
        check_budget(f"window {j} migration bytes", plan.bytes, self.budget_bytes)
        share = plan.cutover_s / self.window_s
        latency = new if share == 0.0 else share * old + (1.0 - share) * new
        return WindowScore(latency, new, old, reference, plan.cutover_s, plan.bytes, plan.link_bytes,
                           len(plan.moved))


def replay(episode: ReplaceEpisode, assignments, free: bool = False, start=None) -> list[WindowScore]:
    """Score a run of assignments, one per served window, from `start` (default: the
    episode's start)."""
    if len(assignments) != episode.n_served:
        raise field_error(ScenarioError, "assignments", len(assignments),
                          f"need one assignment per served window ({episode.n_served})")
    current = episode.start if start is None else episode.check_assignment("start", start)
    out = []
    for j, a in enumerate(assignments, start=1):
        a = episode.check_assignment(f"assignments[{j - 1}]", a)
        out.append(episode.serve(j, current, a, free))
        current = a
    return out


def geomean_ratio(scores: list[WindowScore]) -> float:
    return float(np.exp(np.mean(np.log([s.ratio for s in scores]))))


def draw_episode(instance: Instance, workload: WorkloadSpec, migration: MigrationSpec, sources: Sources,
                 rng: np.random.Generator, layer: int | None = None, split: str = "train",
                 base: Placement | None = None) -> ReplaceEpisode:
    """One episode: the layer (drawn when not given), then the windows, every draw from `rng`."""
    check_choice(ScenarioError, "split", split, ("train", "test"))
    L = instance.n_layers
    layer = int(rng.integers(L)) if layer is None else check_int(ScenarioError, "layer", layer, 0, L - 1)
    windows = draw_windows(workload, sources, instance.topology.n_time_steps, rng, split)
    base = analytic_placement(instance) if base is None else base
    # One shortest-path table from every gateway over every time step, cached: each window's
    # scoring then reads its few time steps from it instead of running Dijkstra again.
    instance.topology.distances(base.gateways)
    cand = instance.layout.candidates(layer, base.gateways[layer])
    window_s = workload.time_steps_per_window * time_step_s(instance.constellation)
    rate = instance.scenario.links.isl_rate_bps
    return ReplaceEpisode(instance, layer, base, cand, windows, workload.fit_tokens,
                          expert_bytes(instance.model, migration), window_s,
                          budget_bytes(migration, rate, window_s), migration.rate_share * rate)
