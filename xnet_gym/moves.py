"""One layer's stage latency under moves and swaps of its experts, scored incrementally.

Refinement (the `ExpertRefine-v0` env, local search, annealing) changes one or two experts
at a time. Under the `max` objective a change touches only the active sets holding a moved
expert, so `LayerMoves` keeps each set's time-summed slowest member and recomputes only
those sets, through `latency.worst_per_set_s`, the evaluator's own function. Each set's
value depends only on its members, so the totals are the same bits as
`latency.stage_total_s` (and `evaluate_stages`) on the changed placement, not an
approximation of them. Under `weighted` the total is recomputed whole (it is O(E)).

Candidates are indexed 0..C-1 within the layer's subnet; an assignment maps each expert to
a candidate index.
"""

from __future__ import annotations

import numpy as np

from .errors import PlacementError, field_error
from .latency import leg_costs_s, max_total_s, stage_total_s, worst_per_set_s


class LayerMoves:
    """Incremental stage latency of one layer's placement (see the module docstring).

    leg_cost_s (n_t, C): both legs per time step and candidate, outages at the penalty;
    candidate_time_s (C,): one expert's compute; sets (m, k) and counts (m,): the layer's
    distinct active sets and token counts; probabilities (E,); assignment (E,): the start.
    """

    def __init__(self, leg_cost_s: np.ndarray, candidate_time_s: np.ndarray, sets: np.ndarray, counts: np.ndarray,
                 probabilities: np.ndarray, top_k: int, objective: str, capacity: int, assignment: np.ndarray,
                 n_candidates: int | None = None):
        self._legs = np.ascontiguousarray(leg_cost_s)
        self._t = np.asarray(candidate_time_s, dtype=np.float64)
        self._sets, self._counts = np.asarray(sets), np.asarray(counts)
        self._p = np.asarray(probabilities, dtype=np.float64)
        self.top_k, self.objective, self.capacity = int(top_k), objective, int(capacity)
        self.n_t, C = self._legs.shape
        self.n_candidates = C if n_candidates is None else int(n_candidates)
        self.n_experts = len(self._p)
        self.candidates = np.arange(C)      # satellite ids, where known (`for_layer`)
        a = np.asarray(assignment, dtype=np.int64).copy()
        if a.shape != (self.n_experts,) or a.min() < 0 or a.max() >= self.n_candidates:
            raise field_error(PlacementError, "assignment", a.tolist(),
                              f"must give each of the {self.n_experts} experts a candidate in "
                              f"[0, {self.n_candidates - 1}]")
        self._load = np.bincount(a, minlength=C)
        if self._load.max() > self.capacity:
            raise field_error(PlacementError, "assignment", a.tolist(),
                              f"puts more than capacity {self.capacity} experts on a candidate")
        self._a = a
        # Sets holding each expert (CSR): a move rescores only these.
        flat = self._sets.ravel()
        by_expert = np.argsort(flat, kind="stable")
        self._set_of = by_expert // self._sets.shape[1]
        self._start = np.searchsorted(flat[by_expert], np.arange(self.n_experts + 1))
        self._worst = (worst_per_set_s(self._legs[:, a], self._t[a], a, self._sets, self.capacity)
                       if objective == "max" else None)
        self.total_s = self._total(a, self._worst)

    @classmethod
    def for_layer(cls, instance, placement, layer: int) -> LayerMoves:
        """The layer of a full-model placement, over the instance's time steps."""
        gateways = placement.gateways
        cand = instance.layout.candidates(layer, gateways[layer])
        a = np.searchsorted(cand, placement.experts[layer])
        if np.any(a >= len(cand)) or np.any(cand[np.minimum(a, len(cand) - 1)] != placement.experts[layer]):
            raise field_error(PlacementError, f"placement.experts[{layer}]", placement.experts[layer].tolist(),
                              "must lie on the layer's candidate satellites")
        sets, counts = instance.trace.active_sets(layer)
        moves = cls(leg_costs_s(instance, gateways, layer, cand), instance.expert_time_s[cand], sets, counts,
                    instance.trace.layer_probabilities(layer), instance.trace.top_k, instance.objective,
                    instance.capacity, a)
        moves.candidates = cand
        return moves

    # ---------------------------------------------------------------------------- reading
    @property
    def assignment(self) -> np.ndarray:
        return self._a.copy()

    @property
    def load(self) -> np.ndarray:
        return self._load.copy()

    def views(self) -> tuple[np.ndarray, np.ndarray]:
        """Read-only views of (assignment, load), for per-step readers that must not copy."""
        a, load = self._a.view(), self._load.view()
        a.flags.writeable = load.flags.writeable = False
        return a, load

    def can_move(self, expert: int, candidate: int) -> bool:
        """A move to a free seat of another real candidate."""
        return (0 <= candidate < self.n_candidates and candidate != self._a[expert]
                and self._load[candidate] < self.capacity)

    def can_swap(self, x: int, y: int) -> bool:
        return self._a[x] != self._a[y]

    def _sets_of(self, experts) -> np.ndarray:
        if len(experts) == 1:
            e = experts[0]
            return self._set_of[self._start[e]:self._start[e + 1]]
        parts = [self._set_of[self._start[e]:self._start[e + 1]] for e in experts]
        return np.unique(np.concatenate(parts))

    def _total(self, a: np.ndarray, worst: np.ndarray | None) -> float:
        if worst is None:
            return stage_total_s(self._legs[:, a], self._t[a], a, self._sets, self._counts, self._p, self.top_k,
                                 "weighted")
        return float(max_total_s(worst, self._counts, self.n_t))

    def _after(self, experts: list[int], candidates: list[int]):
        a = self._a.copy()
        a[experts] = candidates
        if self._worst is None:
            return self._total(a, None), a, None
        idx = self._sets_of(experts)
        worst = self._worst.copy()
        worst[idx] = worst_per_set_s(self._legs[:, a], self._t[a], a, self._sets[idx], self.capacity)
        return self._total(a, worst), a, worst

    def bottleneck_share(self) -> np.ndarray:
        """(E,) for each expert, the share of its tokens' time steps in which it is its active
        set's slowest member (the one the max waits for); 0 for an inactive expert. Under
        `weighted` there is no bottleneck: all zeros."""
        E = self.n_experts
        if self._worst is None:
            return np.zeros(E)
        a = self._a
        pos = worst_per_set_s(self._legs[:, a], self._t[a], a, self._sets, self.capacity, slowest=True)  # (m, n_t)
        who = np.take_along_axis(self._sets, pos, axis=1)                                               # (m, n_t)
        weight = np.broadcast_to(self._counts[:, None], who.shape)
        slow = np.bincount(who.ravel(), weights=weight.ravel(), minlength=E)
        active = np.bincount(self._sets.ravel(), weights=np.repeat(self._counts, self._sets.shape[1]),
                             minlength=E) * self.n_t
        return np.divide(slow, active, out=np.zeros(E), where=active > 0)

    # --------------------------------------------------------------------------- scoring
    def move_latency_s(self, expert: int, candidate: int) -> float:
        """Stage latency if `expert` moved to `candidate` (not applied)."""
        return self._after([expert], [candidate])[0]

    def swap_latency_s(self, x: int, y: int) -> float:
        """Stage latency if experts `x` and `y` exchanged candidates (not applied)."""
        return self._after([x, y], [self._a[y], self._a[x]])[0]

    def move(self, expert: int, candidate: int) -> float:
        if not self.can_move(expert, candidate):
            raise field_error(PlacementError, "move", (expert, candidate),
                              "needs a free seat on another real candidate")
        self._load[self._a[expert]] -= 1
        self._load[candidate] += 1
        self.total_s, self._a, self._worst = self._after([expert], [candidate])
        return self.total_s

    def swap(self, x: int, y: int) -> float:
        if not self.can_swap(x, y):
            raise field_error(PlacementError, "swap", (x, y), "needs two experts on different candidates")
        self.total_s, self._a, self._worst = self._after([x, y], [self._a[y], self._a[x]])
        return self.total_s

    def set_assignment(self, assignment: np.ndarray) -> float:
        """Jump to another assignment (rescored whole)."""
        fresh = LayerMoves(self._legs, self._t, self._sets, self._counts, self._p, self.top_k, self.objective,
                           self.capacity, assignment, self.n_candidates)
        self._a, self._load, self._worst, self.total_s = fresh._a, fresh._load, fresh._worst, fresh.total_s
        return self.total_s
