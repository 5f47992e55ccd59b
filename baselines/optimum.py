"""`optimum`: the exact best expert placement of every layer, gateways fixed (central).

Token latency is a sum over layers of per-layer expectations, so with the gateways fixed the
model-wide optimum is the per-layer optimum, layer by layer.

- `weighted`: an assignment problem (`scipy.optimize.linear_sum_assignment`) of experts to
  seats (each candidate offers `experts_per_satellite` seats).
- `max`: a MILP (`scipy.optimize.milp`, HiGHS). x[e, s] places expert e on candidate s;
  the trace is compressed into its distinct active sets A with frequencies w_A; z[A, k] is
  the set's stage latency in slot k, linearised as z[A, k] >= cost_k(s) x[e, s] summed over s
  for every e in A (capacity > 1 adds t_expert(s) for each co-located member of A, with a
  big-M); minimise sum_A w_A mean_k z[A, k]. Candidates dominated in every slot by at least
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
from xnet_gym.errors import ScenarioError, field_error
from xnet_gym.instance import Instance
from xnet_gym.latency import _legs, evaluate_stages
from xnet_gym.placement import Placement


def _slot_costs(instance: Instance, gateways, layer: int, cand: np.ndarray) -> np.ndarray:
    """(K, n) one expert's stage cost on each candidate in each slot (outage legs at the penalty)."""
    prop, bad = _legs(instance, gateways, np.full(len(cand), layer), cand)
    return prop + bad * instance.outage_penalty_s + instance.expert_time_s[cand][None, :]


class Optimum:
    name = "optimum"
    randomized = False

    def __init__(self, time_limit_s: float = 10.0, mip_rel_gap: float = 1e-6):
        """`time_limit_s` bounds each layer's MILP (so a model takes at most L times it)."""
        if not time_limit_s > 0:
            raise field_error(ScenarioError, "time_limit_s", time_limit_s, "must be > 0")
        self.time_limit_s = time_limit_s
        self.mip_rel_gap = mip_rel_gap
        self.last_info: dict = {}

    def solve(self, instance: Instance) -> Placement:
        g = instance.layout.central_gateways
        E, cap = instance.n_experts, instance.capacity
        experts = np.empty((instance.n_layers, E), dtype=np.int64)
        bound, value, proven = 0.0, 0.0, True
        for layer in range(instance.n_layers):
            cand, mean_cost = layer_costs(instance, g, layer)
            if E > len(cand) * cap:
                raise field_error(ScenarioError, "placement.experts_per_satellite", cap,
                                  f"layer {layer} has {len(cand)} candidates x {cap} seats < {E} experts")
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
        self.last_info = {"optimal": proven, "stage_sum_s": value, "stage_bound_s": bound,
                          "mip_gap": (value - bound) / value if value > 0 else 0.0}
        return Placement(g, experts)

    def _milp_layer(self, instance, g, layer, cand_all, time_limit_s):
        E, cap = instance.n_experts, instance.capacity
        cost_all = _slot_costs(instance, g, layer, cand_all)         # (K, n)
        keep = _undominated(cost_all, E)
        cand, cost = cand_all[keep], cost_all[:, keep]
        n = len(cand)
        K = cost.shape[0]
        sets, counts = instance.trace.active_sets(layer)
        m, k = sets.shape
        w = counts / counts.sum()
        nx = E * n
        nz = m * K
        c = np.concatenate([np.zeros(nx), np.repeat(w / K, K)])
        # z[A, kk] - sum_s cost_k(s) x[e, s] >= 0 for each member e of A and slot kk.
        a_i, j_i, k_i = (g_.ravel() for g_ in np.meshgrid(np.arange(m), np.arange(k), np.arange(K), indexing="ij"))
        R = len(a_i)
        e_i = sets[a_i, j_i]
        z_col = nx + a_i * K + k_i
        rows = [np.arange(R), np.repeat(np.arange(R), n)]
        cols = [z_col, ((e_i * n)[:, None] + np.arange(n)).ravel()]
        vals = [np.ones(R), -cost[k_i].ravel()]
        lb = [np.zeros(R)]
        if cap > 1 and k > 1:
            # Co-located members of A compute back to back: for e on s,
            # z >= cost_k(s) + t_exp(s) * (#other members of A on s) - M (1 - x[e, s]).
            t_exp = instance.expert_time_s[cand]
            big_m = float(t_exp.max() * (k - 1))
            s_i = np.tile(np.arange(n), R)
            r2 = R + np.arange(R * n)
            rep = np.repeat(np.arange(R), n)
            others = np.array([[f for f in range(k) if f != j] for j in range(k)])     # (k, k-1)
            f_e = sets[a_i[rep][:, None], others[j_i[rep]]]                           # (R n, k-1)
            rows += [r2, r2, np.repeat(r2, k - 1)]
            cols += [z_col[rep], e_i[rep] * n + s_i, (f_e * n + s_i[:, None]).ravel()]
            vals += [np.ones(R * n), -cost[k_i[rep], s_i] - big_m, np.repeat(-t_exp[s_i], k - 1)]
            lb.append(np.full(R * n, -big_m))
        r = R + (R * n if cap > 1 and k > 1 else 0)
        lb_extra = np.concatenate(lb)
        rows, cols, vals = [np.concatenate(rows)], [np.concatenate(cols)], [np.concatenate(vals)]
        A_z = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(r, nx + nz))
        # Each expert on exactly one candidate; each candidate at most `cap` experts.
        assign = coo_matrix((np.ones(nx), (np.repeat(np.arange(E), n), np.arange(nx))), shape=(E, nx + nz))
        seat = coo_matrix((np.ones(nx), (np.tile(np.arange(n), E), np.arange(nx))), shape=(n, nx + nz))
        constraints = [LinearConstraint(A_z, lb_extra, np.inf),
                       LinearConstraint(assign, 1, 1), LinearConstraint(seat, 0, cap)]
        integrality = np.concatenate([np.ones(nx), np.zeros(nz)])
        bounds = Bounds(np.zeros(nx + nz), np.concatenate([np.ones(nx), np.full(nz, np.inf)]))
        # Warm knowledge: the analytic placement is feasible; HiGHS in scipy takes no start,
        # so keep it as a fallback if the time limit leaves no incumbent.
        res = milp(c, constraints=constraints, integrality=integrality, bounds=bounds,
                   options={"time_limit": time_limit_s, "mip_rel_gap": self.mip_rel_gap, "disp": False})
        fallback = analytic_placement(instance).experts[layer]
        if res.x is None:
            v = float(evaluate_stages(instance, analytic_placement(instance), [layer], split=False).stage_s[0])
            return fallback, v, float(getattr(res, "mip_dual_bound", 0.0) or 0.0), False
        x = res.x[:nx].reshape(E, n)
        sats = cand[np.argmax(x, axis=1)]
        base = analytic_placement(instance)
        v = float(evaluate_stages(instance, base.with_layer(layer, sats), [layer], split=False).stage_s[0])
        ok = res.status == 0
        if not ok:
            # A time-limited incumbent can be worse than the closed form: keep the better.
            v0 = float(evaluate_stages(instance, base, [layer], split=False).stage_s[0])
            if v0 < v:
                sats, v = fallback, v0
        b = float(res.mip_dual_bound) if getattr(res, "mip_dual_bound", None) is not None else v
        return sats, v, min(b, v), ok


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
        self.max_placements = max_placements

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
