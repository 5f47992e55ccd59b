"""Score your own placement function with the evaluator, next to the closed form.

    python examples/score_your_placement.py [SCENARIO]

`my_placement` puts each layer's experts on the candidates nearest (by expected stage cost)
to the layer's gateway, ignoring how often each expert is used. The paper's closed form
matches popularity to cost; the evaluator says by how much that helps.
"""

import sys

import numpy as np

from xnet_gym.analytic import analytic_placement, layer_costs
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate
from xnet_gym.placement import Placement


def my_placement(instance) -> Placement:
    """Cheapest candidates, experts in id order (popularity ignored)."""
    gateways = instance.layout.central_gateways
    experts = np.empty((instance.n_layers, instance.n_experts), dtype=np.int64)
    for layer in range(instance.n_layers):
        candidates, cost_s = layer_costs(instance, gateways, layer)
        seats = np.repeat(candidates[np.argsort(cost_s, kind="stable")], instance.capacity)
        experts[layer] = seats[: instance.n_experts]
    return Placement(gateways, experts)


if __name__ == "__main__":
    instance = build_instance(sys.argv[1] if len(sys.argv) > 1 else "tiny")
    mine = evaluate(instance, my_placement(instance))
    closed_form = evaluate(instance, analytic_placement(instance))
    print(f"my placement:   {mine.latency_s:.6f} s/token (propagation {mine.propagation_s:.6f}, "
          f"compute {mine.compute_s:.6f}, outage {mine.outage_s:.6f})")
    print(f"closed form:    {closed_form.latency_s:.6f} s/token")
    print(f"ratio mine / closed form: {mine.latency_s / closed_form.latency_s:.4f}")
