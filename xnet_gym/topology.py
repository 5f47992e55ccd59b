"""Inter-satellite links per time step: feasibility, weights and shortest paths.

A link of the constellation's +Grid is up in a time step unless one of the model's rules takes it
down (polar cutoff for inter-plane links, line-of-sight angular rate, length, i.i.d. survival).
Weight = propagation + serialisation + per-hop delay. Shortest paths run on scipy's csgraph,
once per time step, from the requested sources only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .constellation import LIGHT_SPEED_KM_S, MAX_DISTANCE_KM, Constellation
from .errors import ScenarioError, check_number


@dataclass(frozen=True)
class LinkSpec:
    isl_rate_bps: float = 100e9
    hop_delay_s: float = 0.0
    polar_cutoff_deg: float | None = None
    max_angular_rate_rad_s: float | None = None
    max_isl_km: float | None = None
    link_survival: float = 1.0
    outage_penalty_s: float = 1.0

    def __post_init__(self):
        # Ranges keep every link weight finite: a weight is length / c + bits / rate + hop delay.
        for key, low, high, low_open, unit in (
                ("isl_rate_bps", 1.0, 1e18, False, "bit/s"),
                ("hop_delay_s", 0.0, 3600.0, False, "s"),
                ("outage_penalty_s", 0.0, 3600.0, False, "s"),
                ("max_angular_rate_rad_s", 0.0, 1e3, True, "rad/s"),
                ("max_isl_km", 0.0, MAX_DISTANCE_KM, True, "km"),
                ("polar_cutoff_deg", 0.0, 90.0, True, "degrees"),
                ("link_survival", 0.0, 1.0, True, "")):
            value = getattr(self, key)
            if value is None and key not in ("isl_rate_bps", "hop_delay_s", "outage_penalty_s", "link_survival"):
                continue
            object.__setattr__(self, key, check_number(ScenarioError, f"links.{key}", value, low, high,
                                                       low_open=low_open, unit=unit))


class Topology:
    """Per-time-step ISL graph of a constellation.

    Attributes (K time steps, M candidate links): `length_km` (K, M), `up` (K, M) bool,
    `weight_s` (K, M) (inf where down). `distances_from(sources)` returns path latencies
    (K, len(sources), N) in seconds, inf where unreachable, cached per source set.
    """

    def __init__(self, constellation: Constellation, links: LinkSpec, message_bits: float,
                 rng: np.random.Generator):
        self.constellation = constellation
        self.spec = links
        c = constellation
        a, b = c.links[:, 0], c.links[:, 1]
        r_rel = c.positions_km[:, b] - c.positions_km[:, a]
        v_rel = c.velocities_km_s[:, b] - c.velocities_km_s[:, a]
        self.length_km = np.linalg.norm(r_rel, axis=-1)
        up = np.ones_like(self.length_km, dtype=bool)
        if links.polar_cutoff_deg is not None:
            lat = np.abs(c.latitude_deg)
            polar = (lat[:, a] > links.polar_cutoff_deg) | (lat[:, b] > links.polar_cutoff_deg)
            up &= ~(polar & c.inter_plane[None, :])
        if links.max_angular_rate_rad_s is not None:
            rate = np.linalg.norm(np.cross(r_rel, v_rel), axis=-1) / self.length_km**2
            self.angular_rate_rad_s = rate
            up &= rate <= links.max_angular_rate_rad_s
        if links.max_isl_km is not None:
            up &= self.length_km <= links.max_isl_km
        if links.link_survival < 1.0:
            up &= rng.random(self.length_km.shape) < links.link_survival
        self.up = up
        hop_s = self.length_km / LIGHT_SPEED_KM_S + message_bits / links.isl_rate_bps + links.hop_delay_s
        self.weight_s = np.where(up, hop_s, np.inf)
        self._graphs: list[csr_matrix | None] = [None] * c.n_time_steps
        self._cache: dict[bytes, np.ndarray] = {}
        self._rows: dict[bytes, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def __getstate__(self):
        # Shortest-path tables are caches (tens of MB on `paper`): rebuilt on use, never shipped
        # to a worker process.
        state = self.__dict__.copy()
        state.update(_graphs=[None] * len(self._graphs), _cache={}, _rows={})
        return state

    @property
    def n_time_steps(self) -> int:
        return self.constellation.n_time_steps

    @property
    def n_satellites(self) -> int:
        return self.constellation.n_satellites

    def graph(self, time_step: int) -> csr_matrix:
        g = self._graphs[time_step]
        if g is None:
            m = self.up[time_step]
            a, b = self.constellation.links[m, 0], self.constellation.links[m, 1]
            n = self.n_satellites
            g = csr_matrix((self.weight_s[time_step, m], (a, b)), shape=(n, n))
            self._graphs[time_step] = g
        return g

    def distances_from(self, sources) -> np.ndarray:
        """Shortest-path latency (K, len(sources), N) in s from each source, inf if unreachable."""
        src = np.asarray(sources, dtype=np.int64)
        uniq, inverse = np.unique(src, return_inverse=True)
        key = uniq.tobytes()
        dist = self._cache.get(key)
        if dist is None:
            dist = np.empty((self.n_time_steps, len(uniq), self.n_satellites))
            for k in range(self.n_time_steps):
                dist[k] = dijkstra(self.graph(k), directed=False, indices=uniq)
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = dist
        if len(uniq) == len(src) and np.array_equal(uniq, src):
            return dist
        return dist[:, inverse]

    def distance_rows(self, sources: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dist (K, U, N), row, next_row): distances from the distinct sources, the row of each
        given source and of the source after it (cyclically), without copying the table.
        Cached: the env asks for the same gateways every episode."""
        key = sources.tobytes()
        hit = self._rows.get(key)
        if hit is None:
            uniq, inverse = np.unique(sources, return_inverse=True)
            if len(self._rows) > 256:
                self._rows.clear()
            hit = self._rows[key] = (self.distances_from(uniq), inverse, np.roll(inverse, -1))
        return hit

    def link_counts(self, time_step: int = 0) -> np.ndarray:
        """(N,) number of ISLs up at each satellite at a time step."""
        m = self.up[time_step]
        return np.bincount(self.constellation.links[m].ravel(), minlength=self.n_satellites)

    def to_networkx(self, time_step: int = 0):
        """The time step's ISL graph as a networkx.Graph; edges carry `weight` (s) and `length_km`."""
        import networkx as nx

        g = nx.Graph()
        g.add_nodes_from(range(self.n_satellites))
        m = np.flatnonzero(self.up[time_step])
        links = self.constellation.links
        g.add_edges_from(
            (int(links[i, 0]), int(links[i, 1]),
             {"weight": float(self.weight_s[time_step, i]), "length_km": float(self.length_km[time_step, i])})
            for i in m)
        return g
