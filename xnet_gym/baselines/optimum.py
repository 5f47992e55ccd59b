"""`optimum`: the exact best expert placement of every layer, gateways fixed (central).

Token latency is a sum over layers of per-layer expectations, so with the gateways fixed the
model-wide optimum is the per-layer optimum, layer by layer.

- `weighted`: an assignment problem (`scipy.optimize.linear_sum_assignment`) of experts to
  seats (each candidate offers `experts_per_satellite` seats).
- `max`: a MILP (`scipy.optimize.milp`, HiGHS). x[e, s] places expert e on candidate s;
  the trace is compressed into its distinct active sets A with frequencies w_A, and the
  objective is sum_A w_A mean_k max_{e in A} cost_k(s_e). With one expert per satellite the
  max is written over sorted cost thresholds (`_threshold_rows`, a strong formulation); with
  several, co-located members of A add t_expert each (`_big_m_rows`). Candidates dominated in every slot by at least
  E others are dropped first (exact). A layer that hits `time_limit_s` keeps the best
  placement found and `last_info` reports the proven bound and gap.
- `BruteForce`: every placement of a layer, for tiny instances (the tests' oracle).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp
from scipy.sparse import coo_matrix

from xnet_gym.analytic import analytic_placement, layer_costs
from xnet_gym.errors import ScenarioError, check_int, check_positive, field_error
from xnet_gym.instance import Instance
from xnet_gym.latency import evaluate, evaluate_stages, leg_costs_s
from xnet_gym.placement import Placement

from .layer_subset import check_layers, layers_to_search


def _slot_costs(instance: Instance, gateways, layer: int, cand: np.ndarray) -> np.ndarray:
    """(K, n) one expert's stage cost on each candidate in each slot (outage legs at the penalty)."""
    return leg_costs_s(instance, gateways, layer, cand) + instance.expert_time_s[cand][None, :]


class Optimum:
    name = "optimum"
    randomized = False
    budget_parameter = "time_limit_s"     # what `xnet-gym compare --time-limit` sets

    def __init__(self, time_limit_s: float = 10.0, mip_rel_gap: float = 1e-6, layers=None):
        """`time_limit_s` bounds each layer's MILP (so a model takes at most L times it);
        `layers` solves only those layers (the others keep the closed form's experts)."""
        self.layers = check_layers(layers)
        self.time_limit_s = check_positive(ScenarioError, "time_limit_s", time_limit_s)
        self.mip_rel_gap = check_positive(ScenarioError, "mip_rel_gap", mip_rel_gap)
        if self.mip_rel_gap >= 1:
            raise field_error(ScenarioError, "mip_rel_gap", mip_rel_gap, "must be in (0, 1)")
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        g = instance.layout.central_gateways
        cap = instance.capacity
        experts = analytic_placement(instance).experts.copy()
        bound, value, proven = 0.0, 0.0, True
        for layer in layers_to_search(self.layers, instance):
            cand, mean_cost = layer_costs(instance, g, layer)
            p = instance.trace.layer_probabilities(layer)
            if instance.objective == "weighted":
                seats = np.repeat(np.arange(len(cand)), cap)
                rows, cols = linear_sum_assignment(np.outer(p, mean_cost[seats]))
                experts[layer, rows] = cand[seats[cols]]
                v = float(p @ mean_cost[seats[cols]] / instance.trace.top_k)
                bound, value = bound + v, value + v
                continue
            sats, v, b, ok = self._milp_layer(instance, g, layer, cand, self.time_limit_s)
            experts[layer] = sats
            value += v
            bound += b
            proven &= ok
        placement = Placement(g, experts)
        # The stages are the only part the MILP chooses; the rest of the token latency is fixed.
        latency = evaluate(instance, placement, split=False).latency_s
        self.last_info = {"optimal": proven, "stage_sum_s": value, "stage_bound_s": bound,
                          "mip_gap": (value - bound) / value if value > 0 else 0.0,
                          "latency_lower_bound_s": latency - (value - bound)}
        return placement

    def _milp_layer(self, instance, g, layer, cand_all, time_limit_s):
        E, cap = instance.n_experts, instance.capacity
        cost_all = _slot_costs(instance, g, layer, cand_all)         # (K, n)
        keep = _undominated(cost_all, E)
        cand, cost = cand_all[keep], cost_all[:, keep]
        n = len(cand)
        sets, counts = instance.trace.active_sets(layer)
        w = counts / counts.sum()
        nx = E * n
        if cap > 1 and sets.shape[1] > 1:
            obj, rows, cols, vals, lb, const = _big_m_rows(instance, cand, cost, sets, w, nx)
        else:
            obj, rows, cols, vals, lb, const = _threshold_rows(cost, sets, w, nx)
        n_aux = len(obj)
        width = nx + n_aux
        A_aux = coo_matrix((vals, (rows, cols)), shape=(len(lb), width))
        # Each expert on exactly one candidate; each candidate at most `cap` experts.
        assign = coo_matrix((np.ones(nx), (np.repeat(np.arange(E), n), np.arange(nx))), shape=(E, width))
        seat = coo_matrix((np.ones(nx), (np.tile(np.arange(n), E), np.arange(nx))), shape=(n, width))
        constraints = [LinearConstraint(A_aux, lb, np.inf), LinearConstraint(assign, 1, 1),
                       LinearConstraint(seat, 0, cap)]
        integrality = np.concatenate([np.ones(nx), np.zeros(n_aux)])
        bounds = Bounds(np.zeros(width), np.concatenate([np.ones(nx), np.full(n_aux, np.inf)]))
        res = milp(np.concatenate([np.zeros(nx), obj]), constraints=constraints, integrality=integrality,
                   bounds=bounds, options={"time_limit": time_limit_s, "mip_rel_gap": self.mip_rel_gap,
                                           "disp": False})
        base = analytic_placement(instance)
        v0 = float(evaluate_stages(instance, base, [layer], split=False).stage_s[0])
        dual = getattr(res, "mip_dual_bound", None)
        bound = const + float(dual) if dual is not None and np.isfinite(dual) else 0.0
        if res.x is None:
            # HiGHS in scipy takes no start; with no incumbent the closed form stands in.
            return base.experts[layer], v0, min(bound, v0), False
        sats = cand[np.argmax(res.x[:nx].reshape(E, n), axis=1)]
        v = float(evaluate_stages(instance, base.with_layer(layer, sats), [layer], split=False).stage_s[0])
        ok = res.status == 0
        if not ok and v0 < v:
            # A time-limited incumbent can be worse than the closed form: keep the better.
            sats, v = base.experts[layer], v0
        return sats, v, min(bound if not ok else v, v), ok


def _threshold_rows(cost: np.ndarray, sets: np.ndarray, w: np.ndarray, nx: int):
    """Strong formulation of sum_A w_A mean_k max_{e in A} cost_k(s_e) (no contention).

    With slot k's candidate costs sorted, theta_0 <= theta_1 <= ..., the max is
    theta_0 + sum_i (theta_i - theta_{i-1}) [max >= theta_i]; y[A, k, i] >= the mass of any
    member of A on candidates costing >= theta_i. Its LP bound is far tighter than z >= cost.
    """
    K, n = cost.shape
    m, k = sets.shape
    order = np.argsort(cost, axis=1, kind="stable")
    srt = np.take_along_axis(cost, order, axis=1)
    delta = np.diff(srt, axis=1)                                   # (K, n - 1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[None, :], axis=1)
    # mask[kk, i, s]: candidate s costs >= theta_{i+1} in slot kk.
    kk, ii, ss = np.nonzero(rank[:, None, :] >= np.arange(1, n)[None, :, None])
    n_y = m * K * (n - 1)
    obj = (w[:, None, None] / K * delta[None, :, :]).ravel()
    const = float(w.sum() * srt[:, 0].mean())
    pair = np.arange(m * k)
    a_of, e_of = pair // k, sets.ravel()
    row_base = kk * (n - 1) + ii                                    # (P,) within one (A, j) block
    rows_x = (pair[:, None] * (K * (n - 1)) + row_base[None, :]).ravel()
    cols_x = (e_of[:, None] * (cost.shape[1]) + ss[None, :]).ravel()
    rows_y = np.arange(m * k * K * (n - 1))
    y_of_row = (a_of[:, None] * (K * (n - 1)) + np.arange(K * (n - 1))[None, :]).ravel()
    rows = np.concatenate([rows_y, rows_x])
    cols = np.concatenate([nx + y_of_row, cols_x])
    vals = np.concatenate([np.ones(len(rows_y)), -np.ones(len(rows_x))])
    assert len(obj) == n_y
    return obj, rows, cols, vals, np.zeros(len(rows_y)), const


def _big_m_rows(instance, cand, cost, sets, w, nx):
    """z[A, k] >= cost_k(s) + t_exp(s) * (other members of A on s) - M (1 - x[e, s]) for each
    member e and candidate s: co-located members compute back to back (capacity > 1)."""
    K, n = cost.shape
    m, k = sets.shape
    t_exp = instance.expert_time_s[cand]
    big_m = float(t_exp.max() * (k - 1) + np.ptp(cost))
    a_i, j_i, k_i, s_i = (x.ravel() for x in np.meshgrid(np.arange(m), np.arange(k), np.arange(K), np.arange(n),
                                                         indexing="ij"))
    R = len(a_i)
    e_i = sets[a_i, j_i]
    others = np.array([[f for f in range(k) if f != j] for j in range(k)])    # (k, k-1)
    f_e = sets[a_i[:, None], others[j_i]]                                     # (R, k-1)
    r = np.arange(R)
    rows = np.concatenate([r, r, np.repeat(r, k - 1)])
    cols = np.concatenate([nx + a_i * K + k_i, e_i * n + s_i, (f_e * n + s_i[:, None]).ravel()])
    vals = np.concatenate([np.ones(R), -cost[k_i, s_i] - big_m, np.repeat(-t_exp[s_i], k - 1)])
    obj = np.repeat(w / K, K)
    return obj, rows, cols, vals, np.full(R, -big_m), 0.0


def _undominated(cost: np.ndarray, n_experts: int) -> np.ndarray:
    """Candidates that may appear in an optimum. A candidate is dropped when at least
    `n_experts` others are no worse in every slot (strictly better somewhere, or equal with a
    lower index): some dominating satellite is then empty in any placement, and moving the
    expert there lowers no max and adds no contention. Exact, and it shrinks the MILP a lot."""
    le = (cost[:, :, None] <= cost[:, None, :]).all(axis=0)          # le[a, b]: a no worse than b
    lt = (cost[:, :, None] < cost[:, None, :]).any(axis=0)
    n = cost.shape[1]
    index_first = np.arange(n)[:, None] < np.arange(n)[None, :]
    dominates = le & (lt | index_first)
    np.fill_diagonal(dominates, False)
    return dominates.sum(axis=0) < n_experts


class BruteForce:
    """Every placement of every layer (tiny instances only): the exact oracle for tests."""

    name = "brute-force"
    randomized = False

    def __init__(self, max_placements: int = 200_000):
        self.max_placements = check_int(ScenarioError, "max_placements", max_placements, 1)

    def solve(self, instance: Instance) -> Placement:
        base = analytic_placement(instance)
        g, E, cap = base.gateways, instance.n_experts, instance.capacity
        experts = base.experts.copy()
        for layer in range(instance.n_layers):
            cand = instance.layout.candidates(layer, g[layer])
            if len(cand) ** E > self.max_placements:
                raise field_error(ScenarioError, "brute force size", f"{len(cand)}^{E}",
                                  f"more than {self.max_placements} placements; use the optimum solver")
            best, best_sats = np.inf, None
            for combo in itertools.product(range(len(cand)), repeat=E):
                if cap < E and np.bincount(combo, minlength=len(cand)).max() > cap:
                    continue
                sats = cand[list(combo)]
                v = evaluate_stages(instance, base.with_layer(layer, sats), [layer], split=False).stage_s[0]
                if v < best - 1e-15:
                    best, best_sats = v, sats
            experts[layer] = best_sats
        return Placement(g, experts)
