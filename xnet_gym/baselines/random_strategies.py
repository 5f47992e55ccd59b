"""The paper's random baselines (RandIntra-CG, RandIntra, RandPlace; see docs/model.md). Each draws from its own seed.

RandIntra-CG: ring subnets, central gateway, experts uniformly at random in the subnet.
RandIntra:    ring subnets, a random gateway in the subnet, random experts in the subnet.
RandPlace:    gateways anywhere (distinct), experts anywhere but on their layer's gateway.
Every random expert draw respects `experts_per_satellite` (each satellite offers that many seats).
"""

from __future__ import annotations

import numpy as np

from xnet_gym.errors import ScenarioError, check_int
from xnet_gym.instance import Instance
from xnet_gym.layers import random_gateways, random_subnet_gateways
from xnet_gym.placement import Placement


def _random_experts(pools, n_experts: int, capacity: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack([rng.choice(np.repeat(pool, capacity), size=n_experts, replace=False) for pool in pools])


class _Random:
    name = ""
    randomized = True
    paper_strategy = True

    def __init__(self, seed: int = 0):
        self.seed = check_int(ScenarioError, "seed", seed, 0)

    def solve(self, instance: Instance) -> Placement:
        rng = np.random.default_rng(self.seed)
        g = self._gateways(instance, rng)
        pools = [self._pool(instance, layer, g[layer]) for layer in range(instance.n_layers)]
        return Placement(g, _random_experts(pools, instance.n_experts, instance.capacity, rng))

    def _gateways(self, instance: Instance, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError            # each strategy draws its gateways its own way

    def _pool(self, instance, layer, gateway):
        return instance.layout.candidates(layer, gateway)


class RandIntraCG(_Random):
    name = "RandIntra-CG"

    def _gateways(self, instance, rng):
        return instance.layout.central_gateways.copy()


class RandIntra(_Random):
    name = "RandIntra"

    def _gateways(self, instance, rng):
        return random_subnet_gateways(instance.layout, rng)


class RandPlace(_Random):
    name = "RandPlace"

    def _gateways(self, instance, rng):
        return random_gateways(instance.n_satellites, instance.n_layers, rng)

    def _pool(self, instance, layer, gateway):
        sats = np.arange(instance.n_satellites)
        return sats[sats != gateway]
