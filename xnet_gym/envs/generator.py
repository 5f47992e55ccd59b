"""The only source of per-episode randomness for the placement envs.

`PlacementGenerator(rng, options) -> Episode` draws, from the env's `np_random` only: the layer
(ExpertPlacement, unless fixed), the gateways (with `layer_strategy="random-gateway"`), a fresh
activation profile (synthetic sources) or a token window (trace sources), and the subset of
time slots used for training. The scenario's topology is built once, from the scenario seed.
"""

from __future__ import annotations

import numpy as np

from ..activation import ActivationTrace, clustered_trace, coactivation_from_sets, zipf_layer_sets, zipf_trace
from ..analytic import analytic_placement, sort_match
from ..errors import ScenarioError, field_error
from ..instance import Instance, build_instance
from ..latency import (evaluate, evaluate_stages, expected_stage_cost_s, mean_stage_cost_s, slot_leg_costs_s,
                       stage_total_s)
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


class PlacementGenerator:
    def __init__(self, scenario="paper", *, whole_model: bool, layer: int | None = None,
                 randomize_activation: bool = True, train_slots: int | None = None,
                 tokens: int | None = None, expert_order: str = "index", objective: str | None = None,
                 route: str | None = None, layer_strategy: str = "central", slots: int | None = None):
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
        self._tables: dict[int, tuple] = {}
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
            layer = options.get("layer", self.layer)
            layer = int(rng.integers(L)) if layer is None else _int_kwarg("options['layer']", layer, 0, L - 1)
            layers = np.array([layer])
        if self.layer_strategy == "central":
            if not self.whole_model and "trace" not in options:
                return self._expert_episode(rng, int(layers[0]))
            gateways = base.layout.central_gateways
        else:
            gateways = random_subnet_gateways(base.layout, rng)
        inst = base.with_trace(self._trace(rng, layers, options))
        if self.train_slots is not None:
            inst = inst.with_slots(np.sort(rng.choice(len(base.slots), self.train_slots, replace=False)))
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
            member = np.zeros((E, len(s)), dtype=bool)
            member[s.T, np.arange(len(s))[None, :]] = True
            membership.append(member)
        analytic = Placement(gateways, experts)
        if self.whole_model:
            reference = evaluate(inst, analytic).latency_s
        else:
            reference = float(evaluate_stages(inst, analytic, layers, split=False).stage_s[0])
        return Episode(lambda: inst, layers, analytic, cand, n_cand, cost, cost_norm, rate_norm, probs, rank,
                       seat_rank, order, coact.astype(np.float32), analytic_idx, tuple(sets), tuple(membership),
                       float(reference), self.whole_model, E, inst.trace.top_k, inst.capacity, L)

    # ------------------------------------------------------------------ ExpertPlacement
    def _layer_tables(self, layer: int):
        """Candidates of a layer (central gateways) and their per-slot leg costs over every
        slot of the scenario, from the evaluator's `slot_leg_costs_s`: computed once, sliced
        per episode."""
        hit = self._tables.get(layer)
        if hit is None:
            base = self.base
            g = base.layout.central_gateways
            cand = base.layout.candidates(layer, g[layer])
            hit = self._tables[layer] = (cand, slot_leg_costs_s(base, g, layer, cand), base.expert_time_s[cand])
        return hit

    def _expert_episode(self, rng: np.random.Generator, layer: int) -> Episode:
        """ExpertPlacement with the paper's fixed gateways: everything from the layer's tables
        and the profile's distinct active sets; the episode's Instance is built only if asked."""
        base = self.base
        E, k, C = base.n_experts, base.trace.top_k, self.n_max
        a = base.scenario.activation
        drawn = None
        if a.source == "zipf" and self.randomize_activation:
            drawn = zipf_layer_sets(E, k, self.tokens or a.tokens, a.alpha, rng)
        if drawn is not None:
            sets, counts = drawn
            trace = None
        else:
            trace = self._trace(rng, np.array([layer]), {})
            sets, counts = trace.active_sets(layer)
        T = int(counts.sum())
        slots = base.slots
        if self.train_slots is not None and self.train_slots < len(slots):
            # A uniform random subset: the smallest train_slots of i.i.d. uniform keys.
            slots = np.sort(np.argpartition(rng.random(len(slots)), self.train_slots)[: self.train_slots])
        cand, table, t_cand = self._layer_tables(layer)
        n = len(cand)
        slot_cost = table[slots]
        cs = mean_stage_cost_s(slot_cost, t_cand)
        p = np.bincount(sets.ravel(), weights=np.repeat(counts, k), minlength=E) / T
        by_pop = np.lexsort((np.arange(E), -p))
        rank = np.empty((1, E), dtype=np.float32)
        rank[0, by_pop] = self._rank_values
        by_cost = np.lexsort((cand, cs))
        seat_rank = np.ones((1, C), dtype=np.float32)
        seat_rank[0, by_cost] = self._seat_values[:n]
        if self.expert_order == "index":
            order = np.arange(E)
        elif self.expert_order == "frequency":
            order = by_pop
        else:
            order = rng.permutation(E)
        seat = sort_match(p, cand, cs, base.capacity)
        idx = np.searchsorted(cand, seat)
        reference = stage_total_s(slot_cost[:, idx], t_cand[idx], seat, sets, counts, p, k, base.objective,
                                  base.capacity)
        experts = self._base_analytic.experts.copy()
        experts[layer] = seat
        member = np.zeros((E, len(sets)), dtype=bool)
        member[sets.T, np.arange(len(sets))[None, :]] = True
        lo = cs.min()
        span = cs.max() - lo
        norm = ((cs - lo) / span if span > 0 else np.zeros(n)).astype(np.float32)
        if n == C:
            cost, cost_norm, cand_pad, rate_norm = cs[None], norm[None], cand[None], self._rate_norm[cand][None]
        else:   # pad to the scenario's largest candidate count
            cost = np.full((1, C), np.inf)
            cost[0, :n] = cs
            cost_norm = np.ones((1, C), dtype=np.float32)
            cost_norm[0, :n] = norm
            cand_pad = np.full((1, C), -1, dtype=np.int64)
            cand_pad[0, :n] = cand
            rate_norm = np.zeros((1, C), dtype=np.float32)
            rate_norm[0, :n] = self._rate_norm[cand]

        def make_instance():
            tr = trace
            if tr is None:
                tokens = np.repeat(sets, counts, axis=0)
                experts_all = base.trace.experts.astype(tokens.dtype) if T == base.trace.n_tokens else \
                    np.resize(base.trace.experts, (base.n_layers, T, k)).astype(tokens.dtype)
                experts_all[layer] = tokens
                tr = ActivationTrace(experts_all, E, source=base.trace.source, check=False)
                tr._sets[layer] = (sets, counts)
            return base.with_trace(tr).with_slots(slots)

        return Episode(make_instance, np.array([layer]), Placement(base.layout.central_gateways, experts),
                       cand_pad, np.array([n]), cost, cost_norm, rate_norm, p[None, :], rank, seat_rank,
                       order[None, :], coactivation_from_sets(sets, counts, E)[None].astype(np.float32), idx[None, :],
                       ((sets, counts / T),), (member,), reference, False, E, k, base.capacity, base.n_layers,
                       slot_cost_s=slot_cost, candidate_time_s=t_cand, set_counts=counts)

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
