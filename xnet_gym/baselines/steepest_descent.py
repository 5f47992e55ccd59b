"""`steepest-descent`: from the closed form, take the move or swap that lowers the layer's
latency most, until none lowers it.

The neighbourhood is `ExpertRefine-v0`'s (move an expert to a free seat, swap two experts),
scored all at once by `LayerMoves.neighbourhood_latency_s` (the evaluator's reductions), and
ties go to the first action in the env's order (moves expert-major, then swaps in
upper-triangle order). It stops on the same rule as the env's `greedy_action()`, so it ends
on the placement the `greedy` player reaches through the env when the episode's move limit
does not bind. Deterministic: no seed, no clock; `max_steps` bounds the work.

`solve_many(instances)` runs many instances in lockstep (`descend_many`): every round
scores the neighbourhood of each instance still descending, on worker threads (the scoring
kernels release the GIL, so both cores work), then applies each one's best change. Each
instance takes exactly the changes its own `solve` takes: the same placement, bit for bit.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import ScenarioError, check_int, field_error
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

    def solve_many(self, instances, threads: int = 2, layers_each=None) -> list[Placement]:
        """`solve` on each instance, the instances' layers descending in lockstep.
        `layers_each`, a list of layer lists (one per instance), overrides `layers`."""
        threads = check_int(ScenarioError, "threads", threads, 1)
        current = [self.start or analytic_placement(inst) for inst in instances]
        if layers_each is None:
            layers = [layers_to_search(self.layers, inst) for inst in instances]
        else:
            if isinstance(layers_each, (str, bytes)) or len(layers_each) != len(instances):
                raise field_error(ScenarioError, "layers_each", layers_each,
                                  f"must be one layer list (or None) per instance: {len(instances)} of them")
            layers = [layers_to_search(check_layers(ls), inst) for ls, inst in zip(layers_each, instances)]
        for round_ in range(max((len(ls) for ls in layers), default=0)):       # the k-th layer of each
            todo = [i for i, ls in enumerate(layers) if round_ < len(ls)]
            moves = [LayerMoves.for_layer(instances[i], current[i], layers[i][round_]) for i in todo]
            descend_many(moves, self.max_steps, threads)
            for i, mv in zip(todo, moves):
                current[i] = current[i].with_layer(layers[i][round_], mv.candidates[mv.assignment])
        return current


def best_change(moves: LayerMoves) -> int | None:
    """The steepest change: its index in (moves expert-major, then swaps in upper-triangle
    order), the first on ties, or None when none saves more than `IMPROVES`."""
    E = moves.n_experts
    x, y = np.triu_indices(E, 1)
    move_s, swap_s = moves.neighbourhood_latency_s()
    after = np.concatenate([move_s.ravel(), swap_s[x, y]])
    best = int(np.argmin(after))
    return best if after[best] < moves.total_s * (1.0 - IMPROVES) else None


def apply_change(moves: LayerMoves, change: int) -> None:
    E, C = moves.n_experts, moves.n_columns
    if change < E * C:
        moves.move(change // C, change % C)
    else:
        x, y = np.triu_indices(E, 1)
        moves.swap(int(x[change - E * C]), int(y[change - E * C]))


def descend(moves: LayerMoves, max_steps: int | None = None) -> int:
    """Steepest descent on one layer, in place. Returns the number of changes made."""
    return descend_many([moves], max_steps, threads=1)[0]


def descend_many(moves: list[LayerMoves], max_steps: int | None = None, threads: int = 2) -> list[int]:
    """Steepest descent on many layers in lockstep, in place: each round scores every
    still-descending layer's neighbourhood (on `threads` worker threads), then applies each
    one's best change. Returns each layer's number of changes."""
    steps = [0] * len(moves)
    active = [i for i in range(len(moves)) if max_steps is None or max_steps > 0]
    pool = ThreadPoolExecutor(threads) if threads > 1 and len(moves) > 1 else None
    try:
        while active:
            found = list(pool.map(best_change, [moves[i] for i in active]) if pool is not None
                         else map(best_change, [moves[i] for i in active]))
            still = []
            for i, change in zip(active, found):
                if change is None:
                    continue
                apply_change(moves[i], change)
                steps[i] += 1
                if max_steps is None or steps[i] < max_steps:
                    still.append(i)
            active = still
    finally:
        if pool is not None:
            pool.shutdown()
    return steps
