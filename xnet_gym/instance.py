"""An Instance: everything a placement is solved and scored on, built from a Scenario.

scenario -> (constellation, topology, model, trace, ring layout) -> Instance. Instances are
cheap to re-slice (`with_time_steps`, `with_trace`, `with_objective`): the topology and its
shortest-path cache are shared.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from .activation import ActivationTrace, clustered_trace, load_esft, load_trace_npz, zipf_trace
from .constellation import Constellation, WalkerSpec
from .errors import PlacementError, ScenarioError, TraceError, field_error
from .layers import RingLayout, check_seats, ring_layout
from .placement import Placement
from .scenario import Scenario, load_scenario
from .topology import Topology


@dataclasses.dataclass(frozen=True, eq=False)
class Instance:
    scenario: Scenario
    constellation: Constellation
    topology: Topology
    trace: ActivationTrace
    layout: RingLayout
    rate_flops: np.ndarray          # (N,) effective compute rate of each satellite
    time_steps: np.ndarray             # indices into the topology's time steps
    objective: str
    route: str

    @property
    def model(self):
        return self.scenario.model

    @property
    def n_satellites(self) -> int:
        return self.constellation.n_satellites

    @property
    def n_layers(self) -> int:
        return self.scenario.model.layers

    @property
    def n_experts(self) -> int:
        return self.scenario.model.experts

    @property
    def capacity(self) -> int:
        return self.scenario.placement.experts_per_satellite

    @property
    def outage_penalty_s(self) -> float:
        return self.scenario.links.outage_penalty_s

    @functools.cached_property
    def expert_time_s(self) -> np.ndarray:
        """(N,) compute time of one expert on each satellite."""
        return self.model.expert_flops / self.rate_flops

    def with_time_steps(self, time_steps) -> Instance:
        return dataclasses.replace(self, time_steps=np.asarray(time_steps, dtype=np.int64))

    def with_trace(self, trace: ActivationTrace, field: str = "trace") -> Instance:
        """A copy with another trace; `field` names the input in the error if it does not fit."""
        check_trace_fits(trace, self.model, field)
        return dataclasses.replace(self, trace=trace)

    def with_objective(self, objective: str | None = None, route: str | None = None) -> Instance:
        sc = self.scenario.with_evaluation(objective=objective, route=route)
        return dataclasses.replace(self, scenario=sc, objective=sc.evaluation.objective,
                                   route=sc.evaluation.route)

    def validate(self, placement: Placement) -> Placement:
        if len(placement.gateways) != self.n_layers:
            raise field_error(PlacementError, "placement.gateways length", len(placement.gateways),
                              f"must equal the number of layers ({self.n_layers})")
        return placement.validate(self.n_satellites, self.n_experts, self.capacity)


def check_trace_fits(trace: ActivationTrace, model, field: str) -> None:
    """The one check that a trace belongs to a model: layers, experts and top-k."""
    have = (trace.n_layers, trace.n_experts, trace.top_k)
    need = (model.layers, model.experts, model.top_k)
    if have != need:
        raise field_error(TraceError, field, f"{have[0]} layers x {have[1]} experts, top-{have[2]}",
                          f"the model needs {need[0]} layers x {need[1]} experts, top-{need[2]}")


def make_trace(scenario: Scenario, rng: np.random.Generator) -> ActivationTrace:
    """The scenario's activation trace: synthetic from `rng`, or loaded from its file."""
    a, m = scenario.activation, scenario.model
    if a.source != "trace":
        assert a.tokens is not None        # ActivationSpec sets it for synthetic sources
        if a.source == "zipf":
            return zipf_trace(m.layers, m.experts, m.top_k, a.tokens, a.alpha, rng)
        return clustered_trace(m.layers, m.experts, m.top_k, a.tokens, a.alpha, a.clusters,
                               a.coactivation_strength, rng)
    assert a.path is not None              # ActivationSpec requires it for traces
    path = scenario.resolve(a.path)
    trace = load_esft(path, m.experts, m.top_k) if path.is_dir() else load_trace_npz(path, m.experts)
    check_trace_fits(trace, m, f"activation.path ({path})")
    if a.tokens is not None:
        if a.tokens > trace.n_tokens:
            raise field_error(TraceError, "activation.tokens", a.tokens,
                              f"the trace at {path} has only {trace.n_tokens} tokens")
        trace = trace.window(0, a.tokens)
    return trace


MEMORY_LIMIT_BYTES = 8 << 30     # what one instance may allocate; the machines here have 24 GiB


def estimate_bytes(scenario: Scenario) -> int:
    """Memory of an instance before it is built: orbits (positions, velocities), per-link
    state per time step, a shortest-path table from every gateway, and the synthetic trace.
    TLE shells are counted at their file's line count / 3 satellites."""
    c, ev, m = scenario.constellation, scenario.evaluation, scenario.model
    if isinstance(c, WalkerSpec):
        n = c.planes * c.sats_per_plane
    else:
        path = scenario.resolve(c.path)
        n = path.read_bytes().count(b"\n") // 3 if path.is_file() else 0
    links = 2 * n
    tokens = scenario.activation.tokens or 0
    return int(ev.time_steps * (n * 6 * 8 + links * 26 + m.layers * n * 8) + m.layers * tokens * m.top_k * 8)


def check_memory(scenario: Scenario) -> None:
    need = estimate_bytes(scenario)
    if need > MEMORY_LIMIT_BYTES:
        raise field_error(ScenarioError, "scenario size", scenario.name,
                          f"needs about {need / 2**30:.1f} GiB (time steps x satellites x layers, and tokens); "
                          f"the limit is {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB: use fewer evaluation.time_steps, "
                          f"satellites or tokens")


def build_constellation(scenario: Scenario) -> Constellation:
    spec = scenario.constellation
    time_steps = scenario.evaluation.time_steps
    if isinstance(spec, WalkerSpec):
        return Constellation.walker(spec, time_steps)
    from .tle import constellation_from_tle_spec
    return constellation_from_tle_spec(scenario, time_steps)


def build_instance(scenario, rng: np.random.Generator | None = None, *, time_steps: int | None = None,
                   objective: str | None = None, route: str | None = None) -> Instance:
    """Build the instance of a scenario (preset name, path or Scenario).

    One Generator, seeded from `scenario.seed` unless given, draws the link outages and then
    the synthetic trace, so the same seed gives the same instance bit for bit.
    """
    scenario = load_scenario(scenario).with_evaluation(time_steps=time_steps, objective=objective, route=route)
    check_memory(scenario)                 # before anything large is allocated
    rng = np.random.default_rng(scenario.seed) if rng is None else rng
    constellation = build_constellation(scenario)
    topology = Topology(constellation, scenario.links, scenario.model.message_bits, rng)
    trace = make_trace(scenario, rng)
    layout = ring_layout(constellation.plane, constellation.slot, constellation.n_planes,
                         constellation.sats_per_plane, scenario.model.layers,
                         scenario.placement.layers_per_subnet)
    check_seats(min(len(s) for s in layout.subnets) - 1, scenario.placement.experts_per_satellite,
                scenario.model.experts)
    g = scenario.compute.gflops
    rate = np.full(constellation.n_satellites, float(g) * 1e9) if not isinstance(g, tuple) \
        else np.asarray(g, dtype=float) * 1e9
    if len(rate) != constellation.n_satellites:
        raise field_error(ScenarioError, "compute.gflops", f"list of {len(rate)}",
                          f"needs one value per satellite ({constellation.n_satellites})")
    ev = scenario.evaluation
    return Instance(scenario, constellation, topology, trace, layout, rate,
                    np.arange(constellation.n_time_steps), ev.objective, ev.route)
