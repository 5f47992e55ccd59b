"""Where the satellites are on the map, and which satellites a gateway-to-gateway path uses."""

from __future__ import annotations

import numpy as np
from scipy.sparse.csgraph import dijkstra

from ..constellation import Constellation
from ..topology import Topology

EARTH_ROTATION_RAD_S = 7.2921159e-5


def lon_lat_deg(constellation: Constellation, time_step: int) -> tuple[np.ndarray, np.ndarray]:
    """(N,) Earth-fixed longitude in [-180, 180) and geocentric latitude of every satellite.

    Positions are inertial; the Earth is turned by its rotation since the scenario's first
    time step, taken as the moment Greenwich faces the inertial x axis (a map of relative
    positions, not of real ground tracks)."""
    r = constellation.positions_km[time_step]
    turn = EARTH_ROTATION_RAD_S * constellation.times_s[time_step]
    lon = np.degrees(np.arctan2(r[:, 1], r[:, 0]) - turn)
    lon = (lon + 180.0) % 360.0 - 180.0
    lat = np.degrees(np.arcsin(np.clip(r[:, 2] / np.linalg.norm(r, axis=1), -1.0, 1.0)))
    return lon, lat


def ring_path(topology: Topology, gateways: np.ndarray, time_step: int) -> list[np.ndarray]:
    """For each layer l, the satellites of the shortest ISL path from gateway l to gateway
    l + 1 (the last layer back to the first) at the time step; empty where none exists."""
    gateways = np.asarray(gateways, dtype=np.int64)
    sources, row = np.unique(gateways, return_inverse=True)
    _, pred = dijkstra(topology.graph(time_step), directed=False, indices=sources, return_predecessors=True)
    paths = []
    for layer in range(len(gateways)):          # a loop over layers and path hops, not satellites
        a, b = int(gateways[layer]), int(gateways[(layer + 1) % len(gateways)])
        p = pred[row[layer]]
        node, path = b, [b]
        while node != a and node >= 0:
            node = int(p[node])
            path.append(node)
        paths.append(np.array(path[::-1], dtype=np.int64) if node == a else np.empty(0, dtype=np.int64))
    return paths
