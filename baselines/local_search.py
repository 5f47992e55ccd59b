"""`local-search`: swap-and-move hill climbing from the analytic placement, on the exact
objective (the evaluator's per-layer stage latency), within a time budget.

Moves per layer: swap the satellites of two experts; move an expert to a candidate with a
free seat. First improvement, repeated until a full pass improves nothing or time runs out.
It never returns worse than its start.
"""

from __future__ import annotations

import time

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import ScenarioError, check_positive, field_error
from xnet_gym.instance import Instance
from xnet_gym.latency import evaluate_stages
from xnet_gym.placement import Placement


class LocalSearch:
    name = "local-search"
    randomized = False
    budget_parameter = "time_budget_s"

    def __init__(self, time_budget_s: float = 30.0, start: Placement | None = None):
        self.time_budget_s = check_positive(ScenarioError, "time_budget_s", time_budget_s)
        if start is not None and not isinstance(start, Placement):
            raise field_error(ScenarioError, "start", type(start).__name__, "must be an xnet_gym Placement or None")
        self.start = start
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        current = self.start or analytic_placement(instance)
        deadline = time.perf_counter() + self.time_budget_s
        E, cap = instance.n_experts, instance.capacity
        improved_moves, passes = 0, 0

        def stage(p, layer):
            return evaluate_stages(instance, p, [layer], split=False).stage_s[0]

        for layer in range(instance.n_layers):
            cand = instance.layout.candidates(layer, current.gateways[layer])
            best = stage(current, layer)
            sats = current.experts[layer].copy()
            improved = True
            while improved and time.perf_counter() < deadline:
                improved = False
                passes += 1
                for a in range(E):
                    for b in range(a + 1, E):
                        if sats[a] == sats[b]:
                            continue
                        trial = sats.copy()
                        trial[a], trial[b] = sats[b], sats[a]
                        v = stage(current.with_layer(layer, trial), layer)
                        if v < best - 1e-15:
                            best, sats, improved = v, trial, True
                            improved_moves += 1
                    load = {int(s): int(c) for s, c in zip(*np.unique(sats, return_counts=True))}
                    for s in cand:
                        if s == sats[a] or load.get(int(s), 0) >= cap:
                            continue
                        trial = sats.copy()
                        trial[a] = s
                        v = stage(current.with_layer(layer, trial), layer)
                        if v < best - 1e-15:
                            best, sats, improved = v, trial, True
                            improved_moves += 1
                            load = {int(x): int(c) for x, c in zip(*np.unique(sats, return_counts=True))}
                    if time.perf_counter() >= deadline:
                        break
            current = current.with_layer(layer, sats)
        self.last_info = {"improving_moves": improved_moves, "passes": passes,
                          "hit_time_budget": time.perf_counter() >= deadline}
        return current
