"""The only source of per-episode randomness for the placement envs.

`PlacementGenerator(rng, options) -> Episode` draws, from the env's `np_random` only: the layer
(ExpertPlacement, unless fixed), the gateways (with `layer_strategy="random-gateway"`), a fresh
activation profile (synthetic sources) or a token window (trace sources), and the subset of
time slots used for training. The scenario's topology is built once, from the scenario seed.

ExpertPlacement with fixed (central) gateways and a synthetic zipf source draws its episodes
`block_size` at a time, with one vectorised call per quantity, and hands them out one per
reset: per-episode Python work is what an 8-step episode cannot afford. Same seed, same
episodes: a block belongs to one `np.random.Generator` object, and a seeded `reset` makes a
new one, which drops the block. `block_size=1` draws every episode on its own.
"""

from __future__ import annotations

import functools

import numpy as np

from ..activation import (
    ActivationTrace,
    clustered_trace,
    coactivation_from_sets,
    set_indicator,
    zipf_layer_sets,
    zipf_trace,
)
from ..analytic import analytic_placement, sort_match, sort_match_index
from ..errors import ScenarioError, field_error
from ..instance import Instance, build_instance
from ..latency import (
    evaluate,
    evaluate_stages,
    expected_stage_cost_s,
    mean_stage_cost_s,
    slot_leg_costs_s,
    stage_total_s,
)
from ..layers import random_subnet_gateways
from ..placement import Placement
from .types import Episode

EXPERT_ORDERS = ("index", "frequency", "random")
LAYER_STRATEGIES = ("central", "random-gateway")


def _int_kwarg(name, value, low, high=None, allow_none=True):
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise field_error(ScenarioError, name, value, f"must be an integer {rng}")
    return int(value)


def marginal_tables(indicator: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables behind the `candidate_marginal` observation, for B layers at once: from
    `set_indicator` (B, m, E) and token counts (B, m), a sparse (CSR) map from (layer b,
    expert e), flattened as b * E + e, to the active sets that contain e and P(set | e active):
    `offsets` (B * E + 1,), `set_index` and float32 `weight`. An env step then touches only the
    current expert's sets (a few of thousands on real traces), not all of them."""
    B, m, E = indicator.shape
    b, e, j = np.nonzero(np.swapaxes(indicator, 1, 2))          # sorted by (b, e), then j
    row = b * E + e
    joint = counts[b, j].astype(float)
    total = np.bincount(row, weights=joint, minlength=B * E)
    offsets = np.searchsorted(row, np.arange(B * E + 1))
    return offsets, j, (joint / total[row]).astype(np.float32)


def _layer_marginal(tables, i: int, E: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer i's view of `marginal_tables`: its E + 1 offsets into the shared set_index / weight."""
    offsets, set_index, weight = tables
    return offsets[i * E: (i + 1) * E + 1], set_index, weight


class PlacementGenerator:
    def __init__(self, scenario="paper", *, whole_model: bool, layer: int | None = None,
                 randomize_activation: bool = True, train_slots: int | None = None,
                 tokens: int | None = None, expert_order: str = "index", objective: str | None = None,
                 route: str | None = None, layer_strategy: str = "central", slots: int | None = None,
                 block_size: int = 64):
        if expert_order not in EXPERT_ORDERS:
            raise field_error(ScenarioError, "expert_order", expert_order, f"allowed: {', '.join(EXPERT_ORDERS)}")
        if layer_strategy not in LAYER_STRATEGIES:
            raise field_error(ScenarioError, "layer_strategy", layer_strategy,
                              f"allowed: {', '.join(LAYER_STRATEGIES)}")
        if not isinstance(randomize_activation, bool):
            raise field_error(ScenarioError, "randomize_activation", randomize_activation, "must be True or False")
        self.base: Instance = build_instance(scenario, slots=slots, objective=objective, route=route)
        L = self.base.n_layers
        if whole_model and layer is not None:
            raise field_error(ScenarioError, "layer", layer, "ModelPlacement places every layer; omit it")
        self.layer = _int_kwarg("layer", layer, 0, L - 1)
        self.train_slots = _int_kwarg("train_slots", train_slots, 1, len(self.base.slots))
        source = self.base.scenario.activation.source
        max_tokens = self.base.trace.n_tokens if source == "trace" else None
        self.tokens = _int_kwarg("tokens", tokens, 1, max_tokens)
        self.whole_model = whole_model
        self.expert_order = expert_order
        self.layer_strategy = layer_strategy
        self.randomize_activation = randomize_activation
        self.n_max = self.base.layout.max_candidates
        self._base_analytic = analytic_placement(self.base)
        rate = self.base.rate_flops
        self._rate_norm = (rate / rate.max()).astype(np.float32)
        self._stack = None
        self.block_size = _int_kwarg("block_size", block_size, 1, allow_none=False)
        self._block_rng, self._block_pos, self._block_len, self._block_data = None, 0, 0, None
        E = self.base.n_experts
        self._rank_values = (np.arange(E) / E).astype(np.float32)
        self._seat_values = np.minimum(np.arange(self.n_max) * self.base.capacity / E, 1.0).astype(np.float32)

    # --------------------------------------------------------------------------- drawing
    def _trace(self, rng: np.random.Generator, layers: np.ndarray, options: dict) -> ActivationTrace:
        base = self.base.trace
        if "trace" in options:
            trace = options["trace"]
            if not isinstance(trace, ActivationTrace):
                raise field_error(ScenarioError, "options['trace']", type(trace).__name__,
                                  "must be an xnet_gym.activation.ActivationTrace")
            return trace
        a, m = self.base.scenario.activation, self.base.model
        if a.source == "trace":
            T = self.tokens or base.n_tokens
            start = int(rng.integers(base.n_tokens - T + 1)) if self.randomize_activation else 0
            return base.window(start, T)
        if not self.randomize_activation:
            return base
        T = self.tokens or a.tokens
        n = len(layers)
        if a.source == "zipf":
            fresh = zipf_trace(n, m.experts, m.top_k, T, a.alpha, rng, shuffle=False)
        else:
            fresh = clustered_trace(n, m.experts, m.top_k, T, a.alpha, a.clusters, a.coactivation_strength, rng)
        if n == base.n_layers:
            return fresh
        # Only the episode's layer is scored; the others keep the scenario's trace, cut or
        # tiled to the episode's token count so the array stays rectangular.
        experts = base.experts.astype(fresh.experts.dtype) if T == base.n_tokens else \
            np.resize(base.experts, (base.n_layers, T, m.top_k)).astype(fresh.experts.dtype)
        experts[layers] = fresh.experts
        trace = ActivationTrace(experts, m.experts, source=fresh.source, check=False)
        for i, layer in enumerate(layers):
            trace._sets[int(layer)] = fresh.active_sets(i)     # known already: skip recounting
        return trace

    def __call__(self, rng: np.random.Generator, options: dict | None = None) -> Episode:
        options = dict(options or {})
        unknown = set(options) - {"layer", "trace"}
        if unknown:
            raise field_error(ScenarioError, "reset options", sorted(unknown), "allowed keys: layer, trace")
        base = self.base
        L, E = base.n_layers, base.n_experts
        if self.whole_model:
            layers = np.arange(L)
        else:
            pinned = options.get("layer")
            if pinned is not None:
                pinned = _int_kwarg("options['layer']", pinned, 0, L - 1)
            elif self.layer_strategy == "central" and "trace" not in options:
                return self._next_expert_episode(rng, None)
            layer = self.layer if pinned is None else pinned
            layers = np.array([int(rng.integers(L)) if layer is None else layer])
        if self.layer_strategy == "central":
            if not self.whole_model and "trace" not in options:
                return self._next_expert_episode(rng, None if pinned is None else int(layers[0]))
            gateways = base.layout.central_gateways
        else:
            gateways = random_subnet_gateways(base.layout, rng)
        inst = base.with_trace(self._trace(rng, layers, options))
        if self.train_slots is not None:
            inst = inst.with_slots(base.slots[np.sort(rng.choice(len(base.slots), self.train_slots, replace=False))])
        n, C = len(layers), self.n_max
        cand = np.full((n, C), -1, dtype=np.int64)
        n_cand = np.empty(n, dtype=np.int64)
        cost = np.full((n, C), np.inf)
        cost_norm = np.ones((n, C), dtype=np.float32)
        rate_norm = np.zeros((n, C), dtype=np.float32)
        probs = np.empty((n, E))
        rank = np.empty((n, E), dtype=np.float32)
        seat_rank = np.ones((n, C), dtype=np.float32)
        order = np.empty((n, E), dtype=np.int64)
        coact = np.empty((n, E, E))
        analytic_idx = np.empty((n, E), dtype=np.int64)
        sets, membership = [], []
        experts = self._base_analytic.experts.copy()
        for i, layer in enumerate(layers):
            c = base.layout.candidates(layer, gateways[layer])
            cs = expected_stage_cost_s(inst, gateways, layer, c)
            k = len(c)
            cand[i, :k], n_cand[i], cost[i, :k] = c, k, cs
            span = cs.max() - cs.min()
            cost_norm[i, :k] = (cs - cs.min()) / span if span > 0 else 0.0
            rate_norm[i, :k] = self._rate_norm[c]
            p = inst.trace.layer_probabilities(layer)
            probs[i] = p
            by_pop = np.lexsort((np.arange(E), -p))
            rank[i, by_pop] = np.arange(E) / E
            # Sort-match gives the r-th seat in cost order to the expert of popularity rank r,
            # so the same scale on both sides makes the closed form learnable as a match.
            by_cost = np.lexsort((c, cs))
            seat_rank[i, by_cost] = np.minimum(np.arange(k) * inst.capacity / E, 1.0)
            if self.expert_order == "index":
                order[i] = np.arange(E)
            elif self.expert_order == "frequency":
                order[i] = by_pop
            else:
                order[i] = rng.permutation(E)
            coact[i] = inst.trace.coactivation(layer)
            seat = sort_match(p, c, cs, inst.capacity)
            experts[layer] = seat
            analytic_idx[i] = np.searchsorted(c, seat)
            s, counts = inst.trace.active_sets(layer)
            sets.append((s, counts / inst.trace.n_tokens))
            membership.append(_layer_marginal(marginal_tables(set_indicator(s, E)[None], counts[None]), 0, E))
        analytic = Placement(gateways, experts)
        if self.whole_model:
            reference = evaluate(inst, analytic).latency_s
        else:
            reference = float(evaluate_stages(inst, analytic, layers, split=False).stage_s[0])
        return Episode(lambda: inst, layers, analytic, cand, n_cand, cost, cost_norm, rate_norm, probs, rank,
                       seat_rank, order, coact.astype(np.float32), analytic_idx, tuple(sets), tuple(membership),
                       float(reference), self.whole_model, E, inst.trace.top_k, inst.capacity, L)

    # ------------------------------------------------------------------ ExpertPlacement
    def _stacked_tables(self):
        """Every layer's candidates (central gateways), their per-slot leg costs over every slot
        of the scenario (the evaluator's `slot_leg_costs_s`), compute times and normalised
        rates, padded to the largest candidate count: computed once, gathered per block."""
        if self._stack is None:
            base = self.base
            L, S, C = base.n_layers, len(base.slots), self.n_max
            g = base.layout.central_gateways
            cand = np.full((L, C), -1, dtype=np.int64)
            legs = np.zeros((L, S, C))
            t = np.zeros((L, C))
            rate = np.zeros((L, C), dtype=np.float32)
            n = np.empty(L, dtype=np.int64)
            for layer in range(L):
                c = base.layout.candidates(layer, g[layer])
                m = n[layer] = len(c)
                cand[layer, :m] = c
                legs[layer, :, :m] = slot_leg_costs_s(base, g, layer, c)
                t[layer, :m] = base.expert_time_s[c]
                rate[layer, :m] = self._rate_norm[c]
            self._stack = (cand, legs, t, rate, n)
        return self._stack

    def _next_expert_episode(self, rng: np.random.Generator, layer: int | None) -> Episode:
        """ExpertPlacement with the paper's fixed gateways. Synthetic zipf profiles are drawn
        `block_size` episodes at a time from `rng` and handed out one per reset; a block is
        dropped when the env's generator changes (a seeded reset makes a new one), so the same
        seed still gives the same episodes. A pinned layer or a trace source draws one episode."""
        a = self.base.scenario.activation
        blockable = a.source == "zipf" and self.randomize_activation and layer is None
        if blockable and self._block_rng is rng and self._block_pos < self._block_len:
            self._block_pos += 1
            return self._block(self._block_pos - 1)
        # Cap a block's slot-cost gather at ~32 MB for scenarios with many slots and candidates.
        S, C = len(self.base.slots), self.n_max
        K = min(self.train_slots or S, S)
        B = max(1, min(self.block_size, (1 << 22) // (K * C))) if blockable else 1
        L, E, k = self.base.n_layers, self.base.n_experts, self.base.trace.top_k
        if layer is None:
            layers = np.full(B, self.layer) if self.layer is not None else rng.integers(L, size=B)
        else:
            layers = np.array([layer])
        drawn, trace = None, None
        if a.source == "zipf" and self.randomize_activation:
            drawn = zipf_layer_sets(E, k, self.tokens or a.tokens, a.alpha, rng, size=B)
        if drawn is None:          # a trace source, or too many top-k sets to enumerate
            blockable, layers = False, layers[:1]
            trace = self._trace(rng, layers, {})
            sets, counts = trace.active_sets(int(layers[0]))
            drawn = sets[None], counts[None]
        self._draw_block(rng, layers, *drawn, trace)
        if blockable:
            self._block_rng, self._block_pos = rng, 1
        else:
            self._block_rng = None    # the block is spent: the next reset draws again
        return self._block(0)

    def _draw_block(self, rng, layers, sets, counts, trace) -> None:
        """Everything fixed for B episodes (layer b, sets (B, m, k), counts (B, m)) in
        vectorised calls: slot subsets, stage costs, the closed form, its reference latency
        through the evaluator, observation tables and co-activation."""
        base = self.base
        E, k = base.n_experts, base.trace.top_k
        B = len(layers)
        cand_all, legs_all, t_all, rate_all, n_all = self._stacked_tables()
        S = legs_all.shape[1]
        K = self.train_slots if self.train_slots is not None else S
        if K < S:
            # A uniform random subset per episode: the K smallest of S i.i.d. uniform keys.
            slots = np.sort(np.argpartition(rng.random((B, S)), K, axis=1)[:, :K], axis=1)
            slot_cost = legs_all[layers[:, None], slots]                       # (B, K, C)
        else:
            slots = np.broadcast_to(np.arange(S), (B, S))
            slot_cost = legs_all[layers]
        cand, t_cand = cand_all[layers], t_all[layers]
        real = cand >= 0
        cs = np.where(real, mean_stage_cost_s(slot_cost, t_cand), np.inf)
        tokens = counts.sum(axis=1)
        onehot = set_indicator(sets, E)                                        # (B, m, E)
        p = (onehot * counts[:, :, None]).sum(axis=1) / tokens[:, None]        # exact: count / T
        by_pop = np.argsort(-p, axis=1, kind="stable")                         # ties: lower id first
        rank = np.empty((B, E), dtype=np.float32)
        np.put_along_axis(rank, by_pop, self._rank_values[None], axis=1)
        by_cost = np.lexsort((cand, cs), axis=-1)
        # Sort-match gives the r-th seat in cost order to the expert of popularity rank r,
        # so the same scale on both sides makes the closed form learnable as a match.
        seat_rank = np.empty(cs.shape, dtype=np.float32)
        np.put_along_axis(seat_rank, by_cost, self._seat_values[None], axis=1)
        if self.expert_order == "index":
            order = np.broadcast_to(np.arange(E), (B, E))
        elif self.expert_order == "frequency":
            order = by_pop
        else:
            order = rng.permuted(np.broadcast_to(np.arange(E), (B, E)), axis=1)
        idx = sort_match_index(p, cs, base.capacity, tiebreak=cand)
        seat = np.take_along_axis(cand, idx, axis=1)
        reference = stage_total_s(np.take_along_axis(slot_cost, idx[:, None, :], axis=2),
                                  np.take_along_axis(t_cand, idx, axis=1), seat, sets, counts, p, k,
                                  base.objective, base.capacity)
        lo = cs.min(axis=1, keepdims=True)
        span = np.where(real, cs, -np.inf).max(axis=1, keepdims=True) - lo
        cost_norm = np.where(real, (cs - lo) / np.where(span > 0, span, 1.0), 1.0).astype(np.float32)
        analytic = np.repeat(self._base_analytic.experts[None], B, axis=0)
        analytic[np.arange(B), layers] = seat
        self._block_len = B
        self._block_data = (layers[:, None], analytic, cand, n_all[layers][:, None], cs, cost_norm,
                            rate_all[layers], p, rank, seat_rank, order, idx, slot_cost, t_cand, sets, counts,
                            counts / tokens[:, None], marginal_tables(onehot, counts),
                            coactivation_from_sets(sets, counts, E, onehot).astype(np.float32), reference, slots,
                            trace)

    def _block(self, i: int) -> Episode:
        (layers, analytic, cand, n_cand, cs, cost_norm, rate, p, rank, seat_rank, order, idx, slot_cost, t_cand,
         sets, counts, weights, marginal, coact, reference, slots, trace) = self._block_data
        base = self.base
        j = slice(i, i + 1)
        make = functools.partial(self._expert_instance, int(layers[i, 0]), sets[i], counts[i], slots[i], trace)
        return Episode(make, layers[i], Placement(base.layout.central_gateways, analytic[i]), cand[j], n_cand[i],
                       cs[j], cost_norm[j], rate[j], p[j], rank[j], seat_rank[j], order[j], coact[j], idx[j],
                       ((sets[i], weights[i]),), (_layer_marginal(marginal, i, base.n_experts),), float(reference[i]), False, base.n_experts,
                       base.trace.top_k, base.capacity, base.n_layers,
                       slot_cost_s=slot_cost[i], candidate_time_s=t_cand[i], set_counts=counts[i])

    def _expert_instance(self, layer, sets, counts, slots, trace) -> Instance:
        """The Instance an ExpertPlacement episode stands for: its slots, and its trace (a
        drawn profile goes into the scenario's trace at `layer`, tokens grouped by set)."""
        base = self.base
        if trace is None:
            E, k = base.n_experts, base.trace.top_k
            keep = counts > 0
            sets, counts = sets[keep], counts[keep]
            tokens = np.repeat(sets, counts, axis=0)
            T = len(tokens)
            experts = base.trace.experts.astype(tokens.dtype) if T == base.trace.n_tokens else \
                np.resize(base.trace.experts, (base.n_layers, T, k)).astype(tokens.dtype)
            experts[layer] = tokens
            trace = ActivationTrace(experts, E, source=base.trace.source, check=False)
            trace._sets[layer] = (sets, counts)
        return base.with_trace(trace).with_slots(base.slots[slots])

    def objective_s(self, episode: Episode, placement: Placement, candidate_index=None) -> float:
        """What an episode is scored on, through the one evaluator: the token latency
        (ModelPlacement) or the placed layer's expert-stage latency (ExpertPlacement).
        `candidate_index` (n_layers, E), when the env knows it, spares a search."""
        if episode.whole_model:
            return evaluate(episode.instance, placement).latency_s
        if episode.slot_cost_s is not None and (
                candidate_index is not None or np.array_equal(placement.gateways, episode.base.gateways)):
            layer = int(episode.layers[0])
            sats = placement.experts[layer]
            idx = candidate_index[0] if candidate_index is not None else \
                np.searchsorted(episode.candidates[0, : episode.n_candidates[0]], sats)
            sets, _ = episode.set_members[0]
            return stage_total_s(episode.slot_cost_s[:, idx], episode.candidate_time_s[idx], sats, sets,
                                 episode.set_counts, episode.probabilities[0], episode.top_k,
                                 self.base.objective, episode.capacity)
        return float(evaluate_stages(episode.instance, placement, episode.layers, split=False).stage_s[0])
