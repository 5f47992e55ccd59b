"""`anneal`: simulated annealing over each layer's moves and swaps, from the closed form; the
project's best-known search.

Local search stops at the first placement no single move or swap improves. Annealing also
accepts a worse neighbour with probability exp(-increase / T), so it can leave such a local
optimum; T falls geometrically from `initial_temperature` to `final_temperature` (both
relative to the layer's starting stage latency) as the layer's share of the budget is used.
The best placement seen is kept, so the result is never worse than the start. Each trial is
scored incrementally with the evaluator's own functions (`xnet_gym.moves`), bit for bit the
latency `evaluate` gives. A final first-improvement pass (local search's neighbourhood)
polishes the best placement.

The budget: `time_budget_s` of wall time in all, split evenly over the layers still to do;
`iterations` per layer, if given, makes a run independent of machine speed (with a seed,
then the same bits everywhere). The search stops at whichever comes first.
"""

from __future__ import annotations

import math
import time

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.errors import ScenarioError, check_int, check_positive, field_error
from xnet_gym.instance import Instance
from xnet_gym.moves import LayerMoves
from xnet_gym.placement import Placement

from .layer_subset import check_layers, check_start, layers_to_search
from .local_search import climb


class Anneal:
    name = "anneal"
    randomized = True
    budget_parameter = "time_budget_s"

    def __init__(self, time_budget_s: float = 30.0, seed: int = 0, iterations: int | None = None,
                 initial_temperature: float = 0.02, final_temperature: float = 1e-5, swap_share: float = 0.5,
                 start: Placement | None = None, layers=None):
        self.time_budget_s = check_positive(ScenarioError, "time_budget_s", time_budget_s)
        self.seed = check_int(ScenarioError, "seed", seed, 0)
        self.iterations = None if iterations is None else check_int(ScenarioError, "iterations", iterations, 1)
        self.initial_temperature = check_positive(ScenarioError, "initial_temperature", initial_temperature)
        self.final_temperature = check_positive(ScenarioError, "final_temperature", final_temperature)
        if self.final_temperature > self.initial_temperature:
            raise field_error(ScenarioError, "final_temperature", final_temperature,
                              f"must not exceed initial_temperature = {initial_temperature}")
        if not 0.0 <= swap_share <= 1.0:
            raise field_error(ScenarioError, "swap_share", swap_share, "must be in [0, 1]")
        self.swap_share = float(swap_share)
        self.start = check_start(start)
        self.layers = check_layers(layers)
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        rng = np.random.default_rng(self.seed)
        current = self.start or analytic_placement(instance)
        t0 = time.perf_counter()
        deadline = t0 + self.time_budget_s
        layers = layers_to_search(self.layers, instance)
        L = len(layers)
        trials = accepted = improved_layers = 0
        for done_layers, layer in enumerate(layers):
            layer_deadline = time.perf_counter() + (deadline - time.perf_counter()) / (L - done_layers)
            moves = LayerMoves.for_layer(instance, current, layer)
            start_s = moves.total_s
            _, best = self._anneal(moves, rng, layer_deadline)
            trials += self._trials
            accepted += self._accepted
            moves.set_assignment(best)
            climb(moves, layer_deadline + 0.1 * self.time_budget_s / L)
            if moves.total_s < start_s:
                improved_layers += 1
            current = current.with_layer(layer, moves.candidates[moves.assignment])
        self.last_info = {"trials": trials, "accepted": accepted, "improved_layers": improved_layers,
                          "wall_s": time.perf_counter() - t0}
        return current

    def _anneal(self, moves: LayerMoves, rng: np.random.Generator, deadline: float):
        E, C = moves.n_experts, moves.n_candidates
        t_start = time.perf_counter()
        span = max(deadline - t_start, 1e-9)
        T0 = self.initial_temperature * moves.total_s
        log_ratio = math.log(self.final_temperature / self.initial_temperature)
        best_s, best = moves.total_s, moves.assignment
        self._trials = self._accepted = 0
        n = self.iterations
        done = 0.0
        # Draws in chunks: one NumPy call per 256 trials, not four per trial.
        chunk = 256
        i = 0
        while True:
            xs, ys, cs = (rng.integers(E, size=chunk), rng.integers(E, size=chunk), rng.integers(C, size=chunk))
            kinds, us = rng.random(chunk) < self.swap_share, rng.random(chunk)
            for x, y, c, is_swap, u in zip(xs.tolist(), ys.tolist(), cs.tolist(), kinds.tolist(), us.tolist()):
                if n is not None:
                    if i >= n:
                        return best_s, best
                    done = i / n
                if i % 64 == 0:
                    now = time.perf_counter()
                    if now >= deadline:
                        return best_s, best
                    if n is None:
                        done = (now - t_start) / span
                i += 1
                if is_swap:
                    if not moves.can_swap(x, y):
                        continue
                    new_s = moves.swap_latency_s(x, y)
                else:
                    if not moves.can_move(x, c):
                        continue
                    new_s = moves.move_latency_s(x, c)
                self._trials += 1
                delta = new_s - moves.total_s
                T = T0 * math.exp(log_ratio * min(done, 1.0))
                if delta <= 0.0 or u < math.exp(-delta / T):
                    if is_swap:
                        moves.swap(x, y)
                    else:
                        moves.move(x, c)
                    self._accepted += 1
                    if moves.total_s < best_s:
                        best_s, best = moves.total_s, moves.assignment
