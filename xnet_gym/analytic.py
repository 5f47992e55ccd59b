"""The paper's closed-form intra-layer placement (sort-match), the envs' reference.

Sort experts by activation probability (descending; ties: lower expert id first), sort the
layer's candidate satellites by expected stage cost (ascending; ties: lower satellite index
first), and match rank to rank. With `experts_per_satellite = c` each satellite offers c
seats, so the cheapest satellites fill up first. By the rearrangement inequality this is the
exact optimum of the separable `weighted` objective; under `max` it is a heuristic.
"""

from __future__ import annotations

import numpy as np

from .instance import Instance
from .latency import expected_stage_cost_s
from .placement import Placement


def sort_match_index(probabilities: np.ndarray, costs_s: np.ndarray, capacity: int = 1,
                     tiebreak: np.ndarray | None = None) -> np.ndarray:
    """(..., E) candidate index per expert: the most active expert gets the cheapest seat.
    Ties: lower expert id first; cheaper-equal candidates by `tiebreak` (default: index).
    Leading axes are a batch of independent layers."""
    E, n = probabilities.shape[-1], costs_s.shape[-1]
    expert_order = np.lexsort((np.broadcast_to(np.arange(E), probabilities.shape), -probabilities), axis=-1)
    tie = np.arange(n) if tiebreak is None else tiebreak
    seat_order = np.lexsort((np.broadcast_to(tie, costs_s.shape), costs_s), axis=-1)
    seats = np.repeat(seat_order, capacity, axis=-1)[..., :E]
    out = np.empty(probabilities.shape, dtype=np.int64)
    np.put_along_axis(out, expert_order, seats, axis=-1)
    return out


def sort_match(probabilities: np.ndarray, candidates: np.ndarray, costs_s: np.ndarray,
               capacity: int = 1) -> np.ndarray:
    """(E,) satellite per expert: the most active expert gets the cheapest seat."""
    return candidates[sort_match_index(probabilities, costs_s, capacity, tiebreak=candidates)]


def layer_costs(instance: Instance, gateways: np.ndarray, layer: int) -> tuple[np.ndarray, np.ndarray]:
    """The layer's candidates (subnet minus its gateway) and their expected stage costs."""
    cand = instance.layout.candidates(layer, gateways[layer])
    return cand, expected_stage_cost_s(instance, gateways, layer, cand)


def analytic_placement(instance: Instance, gateways=None) -> Placement:
    """Space-XNet: ring layers, central gateways (unless given), sort-match in every layer."""
    g = instance.layout.central_gateways if gateways is None else np.asarray(gateways, dtype=np.int64)
    probs = instance.trace.probabilities()
    experts = np.empty((instance.n_layers, instance.n_experts), dtype=np.int64)
    for layer in range(instance.n_layers):
        cand, cost = layer_costs(instance, g, layer)
        experts[layer] = sort_match(probs[layer], cand, cost, instance.capacity)
    return Placement(g, experts)
