"""Inter-satellite links per time step: feasibility, weights and shortest paths.

A link of the constellation's +Grid is up in a time step unless one of the model's rules takes it
down (polar cutoff for inter-plane links, line-of-sight angular rate, length, i.i.d. survival).
Weight = propagation + serialisation + per-hop delay. Shortest paths run on scipy's csgraph,
once per time step, from the requested sources only.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
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


CACHE_BYTES = 256 << 20        # shortest-path tables kept per topology, in bytes
OUTAGE_WARNING = 0.5           # warn when more than this share of link-time-steps is down


class Topology:
    """Per-time-step ISL graph of a constellation.

    Attributes (K time steps, M candidate links): `length_km` (K, M), `up` (K, M) bool,
    `weight_s` (K, M) (inf where down). `distances(sources, time_steps)` returns path latencies
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
        # No link at all between several satellites is a full outage too.
        down = 1.0 - up.mean() if up.size else float(c.n_satellites > 1)
        if down > OUTAGE_WARNING:
            warnings.warn(f"links: {100 * down:.1f}% of the ISLs are down over the time steps (max_isl_km = "
                          f"{links.max_isl_km}, polar_cutoff_deg = {links.polar_cutoff_deg}, max_angular_rate_rad_s "
                          f"= {links.max_angular_rate_rad_s}, link_survival = {links.link_survival}); most paths "
                          f"will cost the outage penalty", UserWarning, stacklevel=2)
        hop_s = self.length_km / LIGHT_SPEED_KM_S + message_bits / links.isl_rate_bps + links.hop_delay_s
        self.weight_s = np.where(up, hop_s, np.inf)
        self._graphs: list[csr_matrix | None] = [None] * c.n_time_steps
        self._cache: OrderedDict[bytes, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def __getstate__(self):
        # Shortest-path tables are caches (tens of MB on `paper`): rebuilt on use, never shipped
        # to a worker process.
        state = self.__dict__.copy()
        state.update(_graphs=[None] * len(self._graphs), _cache=OrderedDict())
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

    def distances(self, sources, time_steps=None, table_sources=None) -> np.ndarray:
        """Shortest-path latency (T, len(sources), N) in s from each source over `time_steps`
        (default: all), inf if unreachable. See `path_latencies` for how tables are cached."""
        src = np.asarray(sources, dtype=np.int64)
        table, rows, steps = self._table(src, time_steps, table_sources)
        if steps is None:
            return table if np.array_equal(rows, np.arange(table.shape[1])) else table[:, rows]
        return table[steps[:, None], rows[None, :]]

    def path_latencies(self, sources, targets, time_steps=None, table_sources=None) -> np.ndarray:
        """(T, n) shortest-path latency from `sources[i]` to `targets[i]` at each time step,
        gathered straight from the distance table (no copy of the table).

        Tables over all time steps are cached (least recently used first out, at most
        `CACHE_BYTES` in all): the evaluator asks for the same gateways again and again, and a
        table covering a superset of the sources serves a subset too. A full table is computed
        for `table_sources` (a superset of `sources`, e.g. every gateway of a placement, so
        that one table serves every layer). A request for a few time steps from sources with
        no cached table (random gateways, a random subset of time steps) computes just those
        sources and time steps and caches nothing.
        """
        src = np.asarray(sources, dtype=np.int64)
        table, rows, steps = self._table(src, time_steps, table_sources)
        t = np.arange(len(table))[:, None] if steps is None else steps[:, None]
        return table[t, rows[None, :], np.asarray(targets, dtype=np.int64)[None, :]]

    def _table(self, src: np.ndarray, time_steps, table_sources):
        """(table, row of each source in it, time steps to take or None for all rows)."""
        uniq = np.unique(src)
        steps = None if time_steps is None else np.asarray(time_steps, dtype=np.int64)
        if steps is not None and len(steps) == self.n_time_steps and np.array_equal(steps, np.arange(len(steps))):
            steps = None
        for key, (cached_sources, table) in self._cache.items():
            if len(cached_sources) >= len(uniq) and np.isin(uniq, cached_sources).all():
                self._cache.move_to_end(key)
                return table, np.searchsorted(cached_sources, src), steps
        if steps is not None:
            table = np.empty((len(steps), len(uniq), self.n_satellites))
            for i, k in enumerate(steps):
                table[i] = dijkstra(self.graph(int(k)), directed=False, indices=uniq)
            return table, np.searchsorted(uniq, src), None
        if table_sources is not None:
            uniq = np.union1d(uniq, np.asarray(table_sources, dtype=np.int64))
        table = np.empty((self.n_time_steps, len(uniq), self.n_satellites))
        for k in range(self.n_time_steps):
            table[k] = dijkstra(self.graph(k), directed=False, indices=uniq)
        self._remember(uniq, table)
        return table, np.searchsorted(uniq, src), None

    def _remember(self, sources: np.ndarray, table: np.ndarray) -> None:
        key = sources.tobytes()
        self._cache[key] = (sources, table)
        while len(self._cache) > 1 and sum(t.nbytes for _, t in self._cache.values()) > CACHE_BYTES:
            self._cache.popitem(last=False)

    def distances_from(self, sources) -> np.ndarray:
        """Shortest-path latency (K, len(sources), N) over every time step (see `distances`)."""
        return self.distances(sources)

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
