"""`steepest-descent`: from the closed form, take the move or swap that lowers the layer's
latency most, until none lowers it.

The neighbourhood is `ExpertRefine-v0`'s (move an expert to a free seat, swap two experts),
scored all at once by `LayerMoves.neighbourhood_latency_s` (the evaluator's reductions), and
ties go to the first action in the env's order (moves expert-major, then swaps in
upper-triangle order). It stops on the same rule as the env's `greedy_action()`, so it ends
on the placement the `greedy` player reaches through the env when the episode's move limit
does not bind. Deterministic: no seed, no clock; `max_steps` bounds the work.
"""

from __future__ import annotations

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import ScenarioError, check_int
from xnet_gym.instance import Instance
from xnet_gym.moves import LayerMoves
from xnet_gym.placement import Placement

from .layer_subset import check_layers, check_start, layers_to_search

IMPROVES = 1e-12     # the env's rule: a change counts when it saves more than this share


class SteepestDescent:
    name = "steepest-descent"
    randomized = False

    def __init__(self, max_steps: int | None = None, start: Placement | None = None, layers=None):
        self.max_steps = None if max_steps is None else check_int(ScenarioError, "max_steps", max_steps, 0)
        self.start = check_start(start)
        self.layers = check_layers(layers)
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        current = self.start or analytic_placement(instance)
        steps = 0
        for layer in layers_to_search(self.layers, instance):
            moves = LayerMoves.for_layer(instance, current, layer)
            steps += descend(moves, self.max_steps)
            current = current.with_layer(layer, moves.candidates[moves.assignment])
        self.last_info = {"steps": steps}
        return current


def descend(moves: LayerMoves, max_steps: int | None = None) -> int:
    """Steepest descent on one layer, in place. Returns the number of changes made."""
    E = moves.n_experts
    x, y = np.triu_indices(E, 1)
    steps = 0
    while max_steps is None or steps < max_steps:
        move_s, swap_s = moves.neighbourhood_latency_s()
        after = np.concatenate([move_s.ravel(), swap_s[x, y]])
        best = int(np.argmin(after))
        if not after[best] < moves.total_s * (1.0 - IMPROVES):
            break
        C = move_s.shape[1]
        if best < E * C:
            moves.move(best // C, best % C)
        else:
            moves.swap(int(x[best - E * C]), int(y[best - E * C]))
        steps += 1
    return steps
