"""`eplb`: load balancing in the style of DeepSeek's EPLB, and nothing else.

Experts are packed greedily, heaviest activation load first, onto the least-loaded of the
layer's ceil(E / experts_per_satellite) fastest candidate satellites (ties: lower index),
respecting capacity. It never looks at path latency: it shows what balancing alone gives.
"""

from __future__ import annotations

import numpy as np

from xnet_gym.instance import Instance
from xnet_gym.placement import Placement


class EPLB:
    name = "eplb"
    randomized = False

    def solve(self, instance: Instance) -> Placement:
        g = instance.layout.central_gateways
        E, cap = instance.n_experts, instance.capacity
        experts = np.empty((instance.n_layers, E), dtype=np.int64)
        for layer in range(instance.n_layers):
            cand = instance.layout.candidates(layer, g[layer])
            n_bins = min(len(cand), -(-E // cap))
            bins = cand[np.lexsort((cand, -instance.rate_flops[cand]))[:n_bins]]
            load = np.zeros(n_bins)
            used = np.zeros(n_bins, dtype=np.int64)
            p = instance.trace.layer_probabilities(layer)
            for e in np.lexsort((np.arange(E), -p)):
                open_bins = np.flatnonzero(used < cap)
                b = open_bins[np.argmin(load[open_bins] / instance.rate_flops[bins[open_bins]])]
                experts[layer, e] = bins[b]
                load[b] += p[e]
                used[b] += 1
        return Placement(g, experts)
