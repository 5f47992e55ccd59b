"""Moving experts between windows: what a copy of an expert's weights costs on the ISLs.

docs/model.md ("Re-placement and migration") gives the model with every constant:

- an expert is a SwiGLU FFN, 3 matrices of `hidden_size x expert_ff_size` parameters, stored
  at `bytes_per_parameter` bytes each (bf16: 2);
- a copy goes from the expert's old satellite to its new one over the time step's
  latency-shortest ISL path, packetised: it takes `bits / (rate_share * isl_rate_bps)` to
  serialise on the migration channel (a `rate_share` of every ISL's rate is reserved for
  copies) plus the path's latency (propagation, per-hop delay and a message's serialisation on
  each hop: the topology's link weights). Copies share the channel, so they are sent one after
  another, in expert order; a copy with no path lands at the window's end;
- make-before-break: the old placement keeps serving until the last copy lands, then every
  moved expert switches at once (an atomic cut-over, so no intermediate placement ever
  breaks a satellite's capacity). The window's tokens are spread evenly over its time, so
  `cutover_s / window_s` of them see the old placement;
- a window may move at most `budget_bytes` of weights: by default what the reserved channel
  carries in the window (`rate_share * isl_rate_bps * window_s / 8`), or less where set. A
  swap moves both experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse.csgraph import dijkstra

from .constellation import EARTH_RADIUS_KM, Constellation
from .errors import ScenarioError, check_int, check_number, field_error
from .topology import Topology

MU_KM3_S2 = 398600.4418
MAX_BUDGET_BYTES = 1e18


@dataclass(frozen=True)
class MigrationSpec:
    """`[migration]` of a scenario file."""
    bytes_per_parameter: int = 2           # bf16
    rate_share: float = 0.01               # of every ISL's rate, reserved for copies
    budget_bytes: float | None = None      # per window; None: what the reserved channel carries in a window

    def __post_init__(self):
        check_int(ScenarioError, "migration.bytes_per_parameter", self.bytes_per_parameter, 1, 16)
        object.__setattr__(self, "rate_share", check_number(ScenarioError, "migration.rate_share", self.rate_share,
                                                            0.0, 1.0, low_open=True))
        if self.budget_bytes is not None:
            object.__setattr__(self, "budget_bytes", check_number(
                ScenarioError, "migration.budget_bytes", self.budget_bytes, 0.0, MAX_BUDGET_BYTES, unit="bytes"))


def expert_bytes(model, spec: MigrationSpec) -> int:
    """Bytes of one expert's weights: 3 SwiGLU matrices of hidden x expert_ff parameters."""
    return 3 * model.hidden_size * model.expert_ff_size * spec.bytes_per_parameter


def time_step_s(constellation: Constellation) -> float:
    """Seconds between two of the scenario's time steps (they divide one orbit evenly)."""
    t = constellation.times_s
    if len(t) > 1:
        return float(t[1] - t[0])
    r_km = float(np.linalg.norm(constellation.positions_km[0], axis=-1).mean())
    return 2.0 * math.pi * math.sqrt(max(r_km, EARTH_RADIUS_KM) ** 3 / MU_KM3_S2)


def budget_bytes(spec: MigrationSpec, isl_rate_bps: float, window_s: float) -> float:
    """The per-window byte budget: the reserved channel's capacity over the window, or the set cap."""
    channel = spec.rate_share * isl_rate_bps * window_s / 8.0
    return channel if spec.budget_bytes is None else min(channel, spec.budget_bytes)


@dataclass(frozen=True)
class CopyPlan:
    """The copies of one window's re-placement."""
    moved: np.ndarray          # (m,) experts whose satellite changes
    path_s: np.ndarray         # (m,) latency of each copy's path (inf: no path)
    hops: np.ndarray           # (m,) ISLs each copy crosses (0 when there is no path)
    landing_s: np.ndarray      # (m,) when each copy has fully arrived, from the window's start
    bytes: int                 # weights moved
    link_bytes: int            # bytes x ISLs crossed: the ISL capacity the copies take
    cutover_s: float           # when the new placement starts serving (0 when nothing moves)


def copy_paths(topology: Topology, time_step: int, sources: np.ndarray, targets: np.ndarray):
    """(latency_s, hops) of the latency-shortest path from each source to its target at a time
    step; inf and 0 where there is none."""
    if len(sources) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    uniq, row = np.unique(sources, return_inverse=True)
    dist, pred = dijkstra(topology.graph(int(time_step)), directed=False, indices=uniq, return_predecessors=True)
    row = row.ravel()
    latency = dist[row, targets]
    hops = np.zeros(len(sources), dtype=np.int64)
    at = targets.copy()
    walking = np.isfinite(latency) & (at != sources)
    while walking.any():               # one pass per hop of the longest path, all copies at once
        at[walking] = pred[row[walking], at[walking]]
        hops += walking
        walking &= at != sources
    return latency, hops


def plan_copies(topology: Topology, time_step: int, before_sats: np.ndarray, after_sats: np.ndarray,
                bytes_each: int, channel_bps: float, window_s: float) -> CopyPlan:
    """The copies that take a layer from `before_sats` to `after_sats` (satellite per expert),
    started at the window's first time step and sent one after another on the channel."""
    moved = np.flatnonzero(before_sats != after_sats)
    path_s, hops = copy_paths(topology, time_step, before_sats[moved], after_sats[moved])
    sent_s = np.arange(1, len(moved) + 1) * (8.0 * bytes_each / channel_bps)
    landing_s = np.where(np.isfinite(path_s), sent_s + np.where(np.isfinite(path_s), path_s, 0.0), window_s)
    cutover = float(min(landing_s.max(), window_s)) if len(moved) else 0.0
    return CopyPlan(moved, path_s, hops, landing_s, int(bytes_each * len(moved)), int(bytes_each * hops.sum()),
                    cutover)


def check_budget(field: str, moved_bytes: float, budget: float) -> None:
    if moved_bytes > budget:
        raise field_error(ScenarioError, field, int(moved_bytes), f"moves more than the window's budget of "
                                                                   f"{budget:.6g} bytes")
