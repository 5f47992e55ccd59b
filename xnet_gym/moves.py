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
from .latency import (
    leg_costs_s,
    max_normaliser,
    max_total_s,
    stage_total_s,
    worst_and_slowest_per_set,
    worst_per_set_s,
)
from .set_values import neighbourhood_deltas, replaced_values


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
        self.n_columns = C                  # the candidate axis of the neighbourhood's (E, C) moves
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
        self._views: tuple[np.ndarray, np.ndarray] | None = None
        # Sets holding each expert (CSR): a move rescores only these.
        flat = self._sets.ravel()
        self._by_expert = by_expert = np.argsort(flat, kind="stable")
        self._set_member_by_expert = by_expert.astype(np.int64)
        self._set_of = by_expert // self._sets.shape[1]
        self._start = np.searchsorted(flat[by_expert], np.arange(self.n_experts + 1))
        self._worst: np.ndarray | None = None
        self._who: np.ndarray | None = None
        # The neighbourhood's per-set values (m, k, C), kept between steps: a change makes
        # only the sets holding a moved expert stale, and only those are scored again.
        self._replaced: np.ndarray | None = None
        self._stale: list[np.ndarray] = []
        self._slow: np.ndarray = np.zeros(self.n_experts)
        if objective == "max":
            self._worst, pos = worst_and_slowest_per_set(self._legs[:, a], self._t[a], a, self._sets, self.capacity)
            # Who each set waits for in each time step, and per expert the token-weighted count:
            # kept up to date by each applied move, so the bottleneck share costs O(E) a step.
            self._who = np.take_along_axis(self._sets, pos, axis=1)                      # (m, n_t)
            self._slow = np.bincount(self._who.ravel(), weights=np.repeat(self._counts, self.n_t),
                                     minlength=self.n_experts)
        self._active = np.bincount(self._sets.ravel(), weights=np.repeat(self._counts, self._sets.shape[1]),
                                   minlength=self.n_experts) * self.n_t
        self.total_s = self._total(a, self._worst)

    def __getstate__(self):
        # Views do not survive pickling as views (they come back as copies that moves would
        # no longer update): rebuild them after unpickling.
        return {**self.__dict__, "_views": None}

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
        """Read-only views of (assignment, load), for per-step readers that must not copy.
        Moves change the arrays in place, so the views stay current."""
        if self._views is None:
            a, load = self._a.view(), self._load.view()
            a.flags.writeable = load.flags.writeable = False
            self._views = (a, load)
        return self._views

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

    def _apply(self, experts: list[int], candidates: list[int]) -> float:
        """Commit a change in place: the rescored sets' worst values and slowest members, in one pass."""
        a = self._a
        a[experts] = candidates
        if self._worst is not None:
            assert self._who is not None
            idx = self._sets_of(experts)
            worst, pos = worst_and_slowest_per_set(self._legs[:, a], self._t[a], a, self._sets[idx], self.capacity)
            sets = self._sets[idx]
            who = sets[np.arange(len(idx))[:, None], pos]
            # One bincount adds the new slowest members and takes out the old ones; integer
            # token counts make the running sums exact in float64.
            w = np.repeat(self._counts[idx], who.shape[1])
            self._slow += np.bincount(np.concatenate([who.ravel(), self._who[idx].ravel()]),
                                      weights=np.concatenate([w, -w]), minlength=self.n_experts)
            self._who[idx] = who
            self._worst[idx] = worst
            self._stale.append(idx)
        self.total_s = self._total(a, self._worst)
        return self.total_s

    def bottleneck_share(self) -> np.ndarray:
        """(E,) for each expert, the share of its tokens' time steps in which it is its active
        set's slowest member (the one the max waits for); 0 for an inactive expert. Under
        `weighted` there is no bottleneck: all zeros. Kept up to date by each move: O(E)."""
        return np.divide(self._slow, self._active, out=np.zeros(self.n_experts), where=self._active > 0)

    # --------------------------------------------------------------------------- scoring
    def move_latency_s(self, expert: int, candidate: int) -> float:
        """Stage latency if `expert` moved to `candidate` (not applied)."""
        return self._after([expert], [candidate])[0]

    def swap_latency_s(self, x: int, y: int) -> float:
        """Stage latency if experts `x` and `y` exchanged candidates (not applied)."""
        return self._after([x, y], [self._a[y], self._a[x]])[0]

    def neighbourhood_latency_s(self) -> tuple[np.ndarray, np.ndarray]:
        """The stage latency after every move and every swap at once (nothing is applied):
        (E, C) for moving expert e to candidate c and (E, E) for swapping x and y (symmetric).
        An infeasible change (its own candidate, a full or padded one, two experts on one
        candidate) reads the current total, as `action_latency_s` does. Equal to
        `move_latency_s` / `swap_latency_s` up to summation order (1e-12 relative; the set
        values themselves are the evaluator's bits), at the cost of about one full
        evaluation per candidate instead of one per action."""
        E = self.n_experts
        a = self._a
        if self._worst is None:
            return self._weighted_neighbourhood_s()
        norm = max_normaliser(self._counts, self.n_t)
        delta, swap_delta = neighbourhood_deltas(self._replaced_now(), self._worst, self._counts, self._sets, a,
                                                 self._set_member_by_expert, self._start, E)
        move_s = self.total_s + delta / norm
        swap_s = self.total_s + swap_delta / norm
        move_s[~self.movable()] = self.total_s
        swap_s[a[:, None] == a[None, :]] = self.total_s
        return move_s, swap_s

    def _replaced_now(self) -> np.ndarray:
        """(m, k, C) every set's value with member i on candidate c (`set_values.replaced_values`)
        for the current assignment, rescoring only the sets changes made stale since the last read."""
        if self._replaced is None:
            m, k = self._sets.shape
            self._replaced = np.empty((m, k, self._legs.shape[1]))
            self._legs_t = np.ascontiguousarray(self._legs.T)
            stale = np.arange(m)
        elif self._stale:
            stale = np.unique(np.concatenate(self._stale))
        else:
            return self._replaced
        self._stale = []
        replaced_values(self._legs_t, self._t, self._a, self._sets, self.capacity, stale, self._replaced)
        return self._replaced

    def movable(self) -> np.ndarray:
        """(E, C) the feasible moves (`can_move` of every pair): a free seat on another real
        candidate. The refinement env's action mask is this, flattened."""
        C = self._legs.shape[1]
        free = np.zeros(C, dtype=bool)
        free[: self.n_candidates] = self._load[: self.n_candidates] < self.capacity
        return free[None, :] & (self._a[:, None] != np.arange(C)[None, :])

    def _weighted_neighbourhood_s(self) -> tuple[np.ndarray, np.ndarray]:
        # O(E) per placement: score every changed assignment whole, through the evaluator.
        E, C = self.n_experts, self._legs.shape[1]
        a = self._a
        moved = np.repeat(a[None, :], E * C, axis=0)
        moved[np.arange(E * C), np.repeat(np.arange(E), C)] = np.tile(np.arange(C), E)
        x, y = np.triu_indices(E, 1)
        swapped = np.repeat(a[None, :], len(x), axis=0)
        swapped[np.arange(len(x)), x], swapped[np.arange(len(x)), y] = a[y], a[x]
        out = []
        rows = max(1, (1 << 21) // (self.n_t * E))       # blocks of placements bound the gathered legs
        for batch in (moved, swapped):
            totals = np.empty(len(batch))
            for lo in range(0, len(batch), rows):
                part = batch[lo:lo + rows]
                legs = np.swapaxes(self._legs[:, part], 0, 1)                       # (B, n_t, E)
                totals[lo:lo + rows] = stage_total_s(legs, self._t[part], part, np.broadcast_to(
                    self._sets, (len(part), *self._sets.shape)), self._counts, self._p, self.top_k, "weighted")
            out.append(totals)
        move_s = out[0].reshape(E, C)
        swap_s = np.full((E, E), self.total_s)
        swap_s[x, y] = swap_s[y, x] = out[1]
        move_s[~self.movable()] = self.total_s
        swap_s[a[:, None] == a[None, :]] = self.total_s
        return move_s, swap_s

    def move(self, expert: int, candidate: int) -> float:
        if not self.can_move(expert, candidate):
            raise field_error(PlacementError, "move", (expert, candidate),
                              "needs a free seat on another real candidate")
        self._load[self._a[expert]] -= 1
        self._load[candidate] += 1
        return self._apply([expert], [candidate])

    def swap(self, x: int, y: int) -> float:
        if not self.can_swap(x, y):
            raise field_error(PlacementError, "swap", (x, y), "needs two experts on different candidates")
        return self._apply([x, y], [self._a[y], self._a[x]])

    def set_assignment(self, assignment: np.ndarray) -> float:
        """Jump to another assignment (rescored whole)."""
        fresh = LayerMoves(self._legs, self._t, self._sets, self._counts, self._p, self.top_k, self.objective,
                           self.capacity, assignment, self.n_candidates)
        self.__dict__.update(fresh.__dict__, candidates=self.candidates)
        return self.total_s
