"""Layer placement: which subnet and which gateway satellite serve each MoE layer.

The paper's ring: cut the along-track slots into contiguous arcs (`numpy.array_split`);
subnet m = every plane x arc m; layer l lives in subnet l // layers_per_subnet; its gateway
is the subnet's central satellite (plane P // 2, the arc's middle slot). Expert candidates
are the subnet minus the layer's gateway, in increasing satellite index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ScenarioError, field_error


def check_seats(candidates: int, capacity: int, experts: int) -> None:
    """The one seat check: a layer's `candidates` satellites, `capacity` experts each, must
    seat its `experts`."""
    if candidates * capacity < experts:
        raise field_error(ScenarioError, "placement.experts_per_satellite", capacity,
                          f"the smallest subnet has {candidates} expert candidates, giving {candidates * capacity} "
                          f"seats for {experts} experts; raise experts_per_satellite or use more planes/slots")


@dataclass(frozen=True, eq=False)
class RingLayout:
    subnets: tuple[np.ndarray, ...]
    subnet_of_layer: np.ndarray     # (L,)
    central_gateways: np.ndarray    # (L,)

    @property
    def n_layers(self) -> int:
        return len(self.subnet_of_layer)

    def subnet(self, layer: int) -> np.ndarray:
        return self.subnets[self.subnet_of_layer[layer]]

    def candidates(self, layer: int, gateway: int | None = None) -> np.ndarray:
        g = self.central_gateways[layer] if gateway is None else gateway
        sats = self.subnet(layer)
        return sats[sats != g]

    @property
    def max_candidates(self) -> int:
        return max(len(s) for s in self.subnets) - 1


def ring_layout(plane: np.ndarray, slot: np.ndarray, n_planes: int, sats_per_plane: int,
                layers: int, layers_per_subnet: int = 1) -> RingLayout:
    n_subnets = -(-layers // layers_per_subnet)
    if sats_per_plane < n_subnets:
        raise field_error(ScenarioError, "constellation.sats_per_plane", sats_per_plane,
                          f"must be >= the number of ring subnets ({n_subnets}); "
                          f"set placement.layers_per_subnet")
    arcs = np.array_split(np.arange(sats_per_plane), n_subnets)
    index = np.arange(len(plane))
    subnets, centrals = [], []
    for arc in arcs:
        members = index[np.isin(slot, arc)]
        subnets.append(members)
        mid_slot = arc[len(arc) // 2]
        # A Walker shell has exactly one satellite at (P // 2, mid_slot); an inferred TLE grid
        # may not, so take the member of the middle plane nearest to that slot.
        in_plane = members[plane[members] == n_planes // 2]
        pool = in_plane if len(in_plane) else members
        centrals.append(pool[np.argmin(np.abs(slot[pool] - mid_slot))])
    subnet_of_layer = np.arange(layers) // layers_per_subnet
    return RingLayout(tuple(subnets), subnet_of_layer, np.asarray(centrals)[subnet_of_layer])


def random_subnet_gateways(layout: RingLayout, rng: np.random.Generator) -> np.ndarray:
    """RandIntra: a uniformly random gateway inside each ring subnet (shared by its layers)."""
    per_subnet = np.array([s[rng.integers(len(s))] for s in layout.subnets])
    return per_subnet[layout.subnet_of_layer]


def random_gateways(n_satellites: int, layers: int, rng: np.random.Generator) -> np.ndarray:
    """RandPlace: L distinct gateways anywhere in the constellation."""
    return rng.choice(n_satellites, size=layers, replace=False)
