"""`local-search`: swap-and-move hill climbing from the analytic placement, on the exact
objective (the evaluator's per-layer stage latency), within a time budget.

Moves per layer: swap the satellites of two experts; move an expert to a candidate with a
free seat. First improvement, in a fixed order (for each expert a: its swaps with b > a,
then its moves in candidate order), repeated until a full pass improves nothing or time runs
out. It never returns worse than its start. `ExpertRefine-v0` offers exactly these moves, so
the same climb played through the env lands on the same placement.
"""

from __future__ import annotations

import time

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import ScenarioError, check_positive
from xnet_gym.instance import Instance
from xnet_gym.moves import LayerMoves
from xnet_gym.placement import Placement

from .layer_subset import check_layers, check_start, layers_to_search


class LocalSearch:
    name = "local-search"
    randomized = False
    budget_parameter = "time_budget_s"

    def __init__(self, time_budget_s: float = 30.0, start: Placement | None = None, layers=None):
        self.time_budget_s = check_positive(ScenarioError, "time_budget_s", time_budget_s)
        self.layers = check_layers(layers)
        self.start = check_start(start)
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        current = self.start or analytic_placement(instance)
        deadline = time.perf_counter() + self.time_budget_s
        improved_moves, passes = 0, 0
        for layer in layers_to_search(self.layers, instance):
            # Trials are scored incrementally, the same bits as evaluate_stages (xnet_gym.moves).
            moves = LayerMoves.for_layer(instance, current, layer)
            improving, layer_passes = climb(moves, deadline)
            improved_moves += improving
            passes += layer_passes
            current = current.with_layer(layer, moves.candidates[moves.assignment])
        self.last_info = {"improving_moves": improved_moves, "passes": passes,
                          "hit_time_budget": time.perf_counter() >= deadline}
        return current


def climb(moves: LayerMoves, deadline: float) -> tuple[int, int]:
    """First-improvement swaps and moves on one layer until a pass improves nothing or the
    deadline passes. Returns (improving moves, passes)."""
    E = moves.n_experts
    improving = passes = 0
    improved = True
    while improved and time.perf_counter() < deadline:
        improved = False
        passes += 1
        for a in range(E):
            for b in range(a + 1, E):
                if moves.can_swap(a, b) and moves.swap_latency_s(a, b) < moves.total_s - 1e-15:
                    moves.swap(a, b)
                    improved = True
                    improving += 1
            for c in range(moves.n_candidates):
                if moves.can_move(a, c) and moves.move_latency_s(a, c) < moves.total_s - 1e-15:
                    moves.move(a, c)
                    improved = True
                    improving += 1
            if time.perf_counter() >= deadline:
                break
    return improving, passes
