"""The one latency evaluator (docs/model.md). Everything scores placements here.

Token latency per time step and token:
    T = t_lm + sum_l [ t_attn(l) + max_{e in A_l} ( d(g_l, s_e) + m_e t_expert(s_e) + d(s_e, g_next) ) ]
with m_e the number of the token's active experts on s_e's satellite (back-to-back compute).
`objective = "weighted"` replaces the max by sum_e (p_e / k) (...) with m_e = 1. A leg with no
path in a time step costs `outage_penalty_s`. The trace is compressed into distinct active sets per
layer, so the cost is O(time steps x distinct sets x k) per layer, not O(time steps x tokens).

Shapes: `n_t` is the number of time steps, `k` the top-k (active experts per token), `m` the
number of distinct active sets, `E` the experts of a layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .instance import Instance
from .placement import Placement
from .set_values import worst_per_set


def _legs(instance: Instance, gateways: np.ndarray, layers: np.ndarray, sats: np.ndarray):
    """Path legs of each (layer, satellite) pair over the instance's time steps.

    Returns (propagation_s, unreachable_legs), both (n_t, n): the finite part of
    d(g_l, s) + d(s, g_next) and how many of the two legs have no path.
    """
    # Only the gateways these layers need, only at the instance's time steps.
    first = gateways[layers]
    after = first if instance.route == "return" else gateways[(layers + 1) % len(gateways)]
    # A table over every time step covers all the gateways, so one table serves every layer.
    topo, steps = instance.topology, instance.time_steps
    leg_in = topo.path_latencies(first, sats, steps, table_sources=gateways)
    leg_out = topo.path_latencies(after, sats, steps, table_sources=gateways)
    bad_in, bad_out = np.isinf(leg_in), np.isinf(leg_out)
    prop = np.where(bad_in, 0.0, leg_in) + np.where(bad_out, 0.0, leg_out)
    return prop, bad_in.astype(np.int8) + bad_out


def leg_costs_s(instance: Instance, gateways, layer: int, sats) -> np.ndarray:
    """(n_t, n) d(g_l, s) + d(s, g_next) of each satellite in each time step, a missing leg at the
    outage penalty: the per-time-step input of every stage cost (closed form, env tables, MILP)."""
    sats = np.asarray(sats, dtype=np.int64)
    prop, bad = _legs(instance, np.asarray(gateways, dtype=np.int64), np.full(len(sats), layer), sats)
    return prop + bad * instance.outage_penalty_s


def mean_stage_cost_s(leg_costs_s: np.ndarray, expert_time_s: np.ndarray) -> np.ndarray:
    """(..., n) mean over time steps (axis -2) of the legs plus one expert's compute."""
    return leg_costs_s.mean(axis=-2) + expert_time_s


def expected_stage_cost_s(instance: Instance, gateways, layer: int, sats) -> np.ndarray:
    """(n,) the closed form's per-satellite cost: mean over time steps of both legs (outages at
    the penalty) plus one expert's compute time. Under `weighted` a layer's stage latency is
    exactly sum_e (p_e / k) * this cost at s_e."""
    sats = np.asarray(sats, dtype=np.int64)
    return mean_stage_cost_s(leg_costs_s(instance, gateways, layer, sats), instance.expert_time_s[sats])


def stage_total_s(leg_cost_s: np.ndarray, expert_time_s: np.ndarray, sats: np.ndarray, sets: np.ndarray,
                  counts: np.ndarray, probabilities: np.ndarray, top_k: int, objective: str,
                  capacity: int = 2):
    """One layer's expected expert-stage latency from its experts' per-time-step path legs.

    leg_cost_s (..., n_t, E): d(g, s_e) + d(s_e, g_next) per time step, outages at the penalty;
    expert_time_s (..., E): one expert's compute on its satellite; sats (..., E): the
    satellites (for back-to-back compute; with `capacity` 1 no two can share); sets (..., m, k)
    / counts (..., m): the layer's distinct active sets and their token counts (a zero count
    is allowed); probabilities (..., E).
    Leading axes are a batch of independent layers (the envs score a block of episodes in one
    call); without them the result is a float. `evaluate_stages` and the envs' per-episode
    scoring both reduce through this function.
    """
    n_t = leg_cost_s.shape[-2]
    if objective == "weighted":
        # Slot sums over a contiguous last axis: NumPy then sums each row the same way
        # whatever the batch shape, so block and per-episode scores agree to the last bit.
        mean_s = np.ascontiguousarray(np.swapaxes(leg_cost_s, -1, -2)).sum(axis=-1) / n_t
        total = ((mean_s + expert_time_s) * probabilities).sum(axis=-1) / top_k
        return float(total) if np.ndim(total) == 0 else total
    worst = worst_per_set_s(leg_cost_s, expert_time_s, sats, sets, capacity)
    # The same reduction with or without a batch axis, so that a block-scored reference and
    # a per-episode score of the same placement agree to the last bit.
    total = max_total_s(worst, counts, n_t)
    return float(total) if sets.ndim == 2 else total


def max_total_s(worst: np.ndarray, counts: np.ndarray, n_t: int):
    """The `max` objective from `worst_per_set_s`: the token-weighted mean over sets and time steps."""
    return (worst * counts).sum(axis=-1) / max_normaliser(counts, n_t)


def max_normaliser(counts: np.ndarray, n_t: int):
    """The token-time-steps `max_total_s` averages over; the total is linear in each set's
    worst value, so a change of sum(counts * worst) by d changes the total by d / this."""
    return counts.sum(axis=-1) * n_t


def _per_set(leg_cost_s, expert_time_s, sats, sets, capacity, want_who):
    """The compiled reduction (`set_values.worst_per_set`) over any leading axes."""
    n_t, E = leg_cost_s.shape[-2:]
    lead, (m, k) = sets.shape[:-2], sets.shape[-2:]
    n = math.prod(lead)
    column = np.broadcast_to(np.arange(E), (n, E))
    return worst_per_set(leg_cost_s.reshape(n, n_t, E), expert_time_s.reshape(n, E), column, sats.reshape(n, E),
                         sets.reshape(n, m, k), capacity, want_who), lead


def stage_total_by_candidate_s(leg_cost_s: np.ndarray, candidate_time_s: np.ndarray, candidate_index: np.ndarray,
                               candidates: np.ndarray, sets: np.ndarray, counts: np.ndarray,
                               probabilities: np.ndarray, top_k: int, objective: str, capacity: int):
    """`stage_total_s` of a batch of layers given per-candidate tables, leg_cost_s (B, n_t, C),
    candidate_time_s (B, C) and candidates (B, C), and each expert's candidate
    `candidate_index` (B, E). Under `max` the compiled reduction reads each member's legs
    from its candidate's column (no gather); under `weighted` the experts' legs are gathered
    with one flat `take`. Either way the result is `stage_total_s`'s, bit for bit."""
    B, n_t, C = leg_cost_s.shape
    if objective == "max":
        # Candidate indices stand for satellites: two experts share a satellite iff an index.
        worst = worst_per_set(leg_cost_s, candidate_time_s, candidate_index, candidate_index, sets, capacity)
        return max_total_s(worst, counts, n_t)
    rows = np.arange(B)
    where = (rows[:, None] * n_t + np.arange(n_t))[:, :, None] * C + candidate_index[:, None, :]     # (B, n_t, E)
    legs = np.take(np.ascontiguousarray(leg_cost_s).reshape(-1), where)
    return stage_total_s(legs, np.take_along_axis(candidate_time_s, candidate_index, axis=1),
                         np.take_along_axis(candidates, candidate_index, axis=1), sets, counts, probabilities, top_k,
                         objective, capacity)


def worst_per_set_s(leg_cost_s: np.ndarray, expert_time_s: np.ndarray, sats: np.ndarray, sets: np.ndarray,
                    capacity: int) -> np.ndarray:
    """(..., m) sum over time steps of each active set's slowest member (legs + back-to-back
    compute): the `max` objective before weighting by token counts. Each set's value depends
    only on its own members, bit for bit, so `LayerMoves` can recompute a few sets alone."""
    worst, lead = _per_set(leg_cost_s, expert_time_s, sats, sets, capacity, False)
    return worst.reshape(*lead, sets.shape[-2])


def worst_and_slowest_per_set(leg_cost_s: np.ndarray, expert_time_s: np.ndarray, sats: np.ndarray,
                              sets: np.ndarray, capacity: int) -> tuple[np.ndarray, np.ndarray]:
    """`worst_per_set_s` (the same bits) and, from the same pass, (..., m, n_t) the position in
    each set (0..k-1) of its slowest member in each time step (the first on ties)."""
    (worst, who), lead = _per_set(leg_cost_s, expert_time_s, sats, sets, capacity, True)
    m, n_t = sets.shape[-2], leg_cost_s.shape[-2]
    return worst.reshape(*lead, m), who.reshape(*lead, m, n_t)


@dataclass(frozen=True)
class StageCosts:
    """Expected expert-stage latency of each evaluated layer (s/token), split by kind."""
    layers: np.ndarray
    stage_s: np.ndarray
    propagation_s: np.ndarray
    compute_s: np.ndarray
    outage_s: np.ndarray
    unreachable_legs: np.ndarray   # expected unreachable legs per token
    legs: np.ndarray               # legs per token


def evaluate_stages(instance: Instance, placement: Placement, layers=None, split: bool = True) -> StageCosts:
    """Expert-stage latency max_{e in A_l}(...) (or its weighted surrogate) of `layers`.

    `split=False` skips the propagation / compute / outage split (left as NaN) for callers
    that need only the total, such as the env's per-episode scoring."""
    L, E = placement.experts.shape
    layers = np.arange(L) if layers is None else np.atleast_1d(np.asarray(layers, dtype=np.int64))
    gateways = placement.gateways
    sats = placement.experts[layers]                                   # (n_l, E)
    prop, bad = _legs(instance, gateways, np.repeat(layers, E), sats.ravel())
    n_t = len(instance.time_steps)
    prop = prop.reshape(n_t, len(layers), E)
    bad = bad.reshape(n_t, len(layers), E)
    penalty = instance.outage_penalty_s
    t_exp = instance.expert_time_s
    k = instance.trace.top_k
    T = instance.trace.n_tokens
    out = np.zeros((4, len(layers)))
    unreachable = np.zeros(len(layers))
    for i, layer in enumerate(layers):
        p = instance.trace.layer_probabilities(layer)
        unreachable[i] = (bad[:, i, :] @ p).mean()
        if not split:
            sets, counts = instance.trace.active_sets(layer)
            total = stage_total_s(prop[:, i, :] + bad[:, i, :] * penalty, t_exp[sats[i]], sats[i], sets, counts,
                                  p, k, instance.objective, instance.capacity)
            out[:, i] = (total, np.nan, np.nan, np.nan)
            continue
        if instance.objective == "weighted":
            w = p / k
            c_prop = (prop[:, i, :] @ w).mean()
            c_out = (bad[:, i, :] @ w).mean() * penalty
            c_cmp = t_exp[sats[i]] @ w
            out[:, i] = (c_prop + c_out + c_cmp, c_prop, c_cmp, c_out)
            continue
        sets, counts = instance.trace.active_sets(layer)              # (n, k), (n,)
        s = sats[i][sets]                                             # (n, k)
        mult = (s[:, :, None] == s[:, None, :]).sum(axis=2)
        compute = mult * t_exp[s]                                     # (n, k)
        legs_prop = prop[:, i, :][:, sets]                            # (n_t, n, k)
        legs_out = bad[:, i, :][:, sets] * penalty
        total = legs_prop + legs_out + compute
        w = counts / (T * n_t)
        arg = total.argmax(axis=2)[..., None]
        parts = np.stack([legs_prop, legs_out, np.broadcast_to(compute, total.shape)])
        c_prop, c_out, c_cmp = np.take_along_axis(parts, arg[None], axis=3)[..., 0].sum(axis=1) @ w
        out[:, i] = (c_prop + c_out + c_cmp, c_prop, c_cmp, c_out)
    return StageCosts(layers, out[0], out[1], out[2], out[3], unreachable, np.full(len(layers), 2.0 * k))


@dataclass(frozen=True)
class LatencyReport:
    """Expected token latency (s/token) of a full-model placement and its split."""
    latency_s: float
    propagation_s: float
    compute_s: float
    outage_s: float
    outage_rate: float          # share of path legs that found no route
    layer_s: np.ndarray         # (L,) t_attn + expert stage (+ gateway hop for route="return")
    stage_s: np.ndarray         # (L,) expert stage only
    objective: str
    route: str

    def to_dict(self) -> dict:
        return {"latency_s": self.latency_s, "propagation_s": self.propagation_s,
                "compute_s": self.compute_s, "outage_s": self.outage_s,
                "outage_rate": self.outage_rate, "layer_s": self.layer_s.tolist(),
                "objective": self.objective, "route": self.route}


def evaluate(instance: Instance, placement: Placement, split: bool = True) -> LatencyReport:
    """Expected token latency of a full-model placement over the instance's time steps and tokens.

    `split=False` skips the propagation / compute / outage split (NaN in the report), about
    4x faster, for callers that need only `latency_s`, `layer_s` and `stage_s`, such as
    ModelPlacement's scoring."""
    instance.validate(placement)
    g = placement.gateways
    model = instance.model
    stages = evaluate_stages(instance, placement, split=split)
    t_attn = model.attn_flops / instance.rate_flops[g]
    t_lm = model.lm_head_flops / instance.rate_flops[g[0]]
    hop_prop_s, hop_outage_s = np.zeros(len(g)), np.zeros(len(g))
    unreachable, legs = stages.unreachable_legs.sum(), stages.legs.sum()
    if instance.route == "return":
        # The hidden state comes back to g_l and then hops once to g_{l+1}.
        hop = instance.topology.path_latencies(g, np.roll(g, -1), instance.time_steps, table_sources=g)
        bad = ~np.isfinite(hop)
        hop_prop_s = np.where(bad, 0.0, hop).mean(axis=0)
        hop_outage_s = bad.mean(axis=0) * instance.outage_penalty_s
        unreachable += bad.mean(axis=0).sum()
        legs += len(g)
    layer_s = t_attn + stages.stage_s + hop_prop_s + hop_outage_s
    compute = t_lm + t_attn.sum() + stages.compute_s.sum()
    return LatencyReport(
        latency_s=float(t_lm + layer_s.sum()),
        propagation_s=float((stages.propagation_s + hop_prop_s).sum()),
        compute_s=float(compute),
        outage_s=float((stages.outage_s + hop_outage_s).sum()),
        outage_rate=float(unreachable / legs),
        layer_s=layer_s,
        stage_s=stages.stage_s,
        objective=instance.objective,
        route=instance.route,
    )


def token_latencies_s(instance: Instance, placement: Placement) -> np.ndarray:
    """(tokens,) each token's latency under the physical `max` model, averaged over the
    instance's time steps: t_lm + sum_l [t_attn(l) + its active set's slowest expert leg and
    compute + the gateway hop of route="return"]. Under `objective="max"` their mean is
    `evaluate(...).latency_s` (up to summation order); under `weighted` the surrogate has no
    per-token form, and these are still the physical latencies."""
    instance.validate(placement)
    g = placement.gateways
    L, E = placement.experts.shape
    fixed = evaluate(instance.with_objective("max") if instance.objective != "max" else instance,
                     placement, split=False)
    per_token = np.full(instance.trace.n_tokens, fixed.latency_s - fixed.stage_s.sum())
    layers = np.arange(L)
    prop, bad = _legs(instance, g, np.repeat(layers, E), placement.experts.ravel())
    n_t = len(instance.time_steps)
    legs = (prop + bad * instance.outage_penalty_s).reshape(n_t, L, E)
    for layer in range(L):                      # a loop over layers; tokens are vectorised
        sets, _ = instance.trace.active_sets(layer)
        sats = placement.experts[layer]
        worst = worst_per_set_s(legs[:, layer, :], instance.expert_time_s[sats], sats, sets, instance.capacity)
        per_token += worst[instance.trace.token_set_index(layer)] / n_t
    return per_token
