"""`periodic-resolve`: every `period` windows, fit the closed form on the last `history_tokens`
tokens served (on the coming window's time steps) and move towards it within the budget.

When every change the target needs fits the window's budget, the layer jumps to the target.
Otherwise it takes the target's changes one at a time, best first: each change puts one
expert on its target candidate (a move to a free seat, or a swap with an expert there that is
not on its own target), scored on the same history by `LayerMoves` (the evaluator's
reductions), and the one that lowers the estimated latency most is applied, until the budget
is spent or no change towards the target helps. `polish=True` first runs steepest descent
from the closed form on the history, so the target is the searched placement.
"""

from __future__ import annotations

import numpy as np

from xnet_gym.baselines.steepest_descent import descend
from xnet_gym.errors import ScenarioError, check_bool, check_int
from xnet_gym.moves import LayerMoves
from xnet_gym.replacement import ReplaceEpisode

from .run import ReplaceRun


def moved_count(start: np.ndarray, assignment: np.ndarray) -> int:
    return int(np.count_nonzero(start != assignment))


def towards(moves: LayerMoves, start: np.ndarray, target: np.ndarray, budget_experts: int) -> np.ndarray:
    """Move `moves` (now at `start`) towards `target`, at most `budget_experts` experts away
    from `start`, best estimated change first. Returns the assignment reached."""
    if moved_count(start, target) <= budget_experts:
        moves.set_assignment(target)
        return target.copy()
    while True:
        a, load = moves.views()
        best_s, best = moves.total_s, None
        for e in np.flatnonzero(a != target).tolist():     # the target's changes: at most E a round
            c = int(target[e])
            if load[c] < moves.capacity:
                change = ("move", int(e), c)
                after = a.copy()
                after[e] = c
            else:
                on_c = np.flatnonzero((a == c) & (a != target))
                if len(on_c) == 0:
                    continue
                back = on_c[target[on_c] == a[e]]
                f = int(back[0] if len(back) else on_c[0])
                change = ("swap", int(e), f)
                after = a.copy()
                after[e], after[f] = a[f], a[e]
            if moved_count(start, after) > budget_experts:
                continue
            s = moves.move_latency_s(int(e), c) if change[0] == "move" else moves.swap_latency_s(change[1], change[2])
            if s < best_s:
                best_s, best = s, change
        if best is None:
            return moves.assignment
        if best[0] == "move":
            moves.move(best[1], best[2])
        else:
            moves.swap(best[1], best[2])


class PeriodicResolve:
    name = "periodic-resolve"

    def __init__(self, period: int = 1, history_tokens: int | None = None, polish: bool = False):
        self.period = check_int(ScenarioError, "period", period, 1)
        self.history_tokens = None if history_tokens is None else check_int(ScenarioError, "history_tokens",
                                                                            history_tokens, 1)
        self.polish = check_bool(ScenarioError, "polish", polish)

    def solve(self, episode: ReplaceEpisode) -> ReplaceRun:
        current = episode.start
        out = []
        for j in range(1, episode.n_served + 1):
            if (j - 1) % self.period == 0:
                history = episode.history_instance(j, self.history_tokens)
                target = episode.closed_form(history)
                moves = LayerMoves.for_layer(history, episode.placement(current), episode.layer)
                if self.polish:
                    polished = LayerMoves.for_layer(history, episode.placement(target), episode.layer)
                    descend(polished)
                    target = polished.assignment
                current = towards(moves, current, target, episode.budget_experts)
            out.append(current.copy())
        return ReplaceRun(out)
