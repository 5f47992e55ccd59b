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
from typing import NamedTuple

import numpy as np

from ..activation import (ActivationTrace, clustered_trace, coactivation_from_sets, set_indicator, zipf_layer_sets,
                          zipf_sets_enumerable, zipf_trace)
from ..analytic import analytic_placement, sort_match_index
from ..errors import ScenarioError, check_int, field_error
from ..instance import Instance, build_instance
from ..latency import evaluate, evaluate_stages, mean_stage_cost_s, slot_leg_costs_s, stage_total_s
from ..layers import random_subnet_gateways
from ..placement import Placement
from .types import Episode

EXPERT_ORDERS = ("index", "frequency", "random")
LAYER_STRATEGIES = ("central", "random-gateway")


def _int_kwarg(name, value, low, high=None, allow_none=True):
    if value is None and allow_none:
        return None
    return check_int(ScenarioError, name, value, low, high)


def marginal_tables(indicator: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tables behind the `candidate_marginal` observation, for B layers at once: from
    `set_indicator` (B, m, E) and token counts (B, m), a sparse (CSR) map from (layer b,
    expert e), flattened as b * E + e, to the active sets that contain e and P(set | e active):
    `offsets` (B * E + 1,), `set_index` and float32 `weight`. An env step then touches only the
    current expert's sets (a few of thousands on real traces), not all of them."""
    B, m, E = indicator.shape
    # Zero-count sets (padding, unseen sets) are left out: an expert with no tokens gets no
    # entries, and its marginal is its own cost.
    b, e, j = np.nonzero(np.swapaxes(indicator, 1, 2) * (counts > 0)[:, None, :])   # sorted by (b, e), then j
    row = b * E + e
    joint = counts[b, j].astype(float)
    total = np.bincount(row, weights=joint, minlength=B * E)
    offsets = np.searchsorted(row, np.arange(B * E + 1))
    return offsets, j, (joint / total[row]).astype(np.float32)


def _layer_marginal(tables, i: int, E: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer i's view of `marginal_tables`: its E + 1 offsets into the shared set_index / weight."""
    offsets, set_index, weight = tables
    return offsets[i * E: (i + 1) * E + 1], set_index, weight


class _Block(NamedTuple):
    """B rows drawn together (ExpertPlacement: one episode a row; ModelPlacement: one layer a
    row). Fields as in `Episode`, with a leading row axis."""
    layers: np.ndarray
    gateways: np.ndarray
    analytic: np.ndarray          # (B, L, E) analytic experts, row b's layer sort-matched
    candidates: np.ndarray
    n_candidates: np.ndarray
    cost_s: np.ndarray
    cost_norm: np.ndarray
    rate_norm: np.ndarray
    probabilities: np.ndarray
    rank_norm: np.ndarray
    seat_rank: np.ndarray
    order: np.ndarray
    analytic_index: np.ndarray
    seat: np.ndarray              # (B, E) satellites of the sort-match
    slot_cost_s: np.ndarray       # (B, K, C)
    candidate_time_s: np.ndarray
    sets: np.ndarray              # (B, m, k)
    counts: np.ndarray            # (B, m)
    weights: np.ndarray           # (B, m) counts / tokens
    marginal: tuple               # marginal_tables of all rows
    coactivation: np.ndarray
    reference_s: np.ndarray | None
    slots: np.ndarray             # (B, K) slot positions
    trace: ActivationTrace | None


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
        a, m = self.base.scenario.activation, self.base.model
        self._exact_zipf = a.source == "zipf" and randomize_activation and zipf_sets_enumerable(m.experts, m.top_k)
        self.block_size = _int_kwarg("block_size", block_size, 1, allow_none=False)
        self._block_rng, self._block_pos, self._block_len, self._block_data = None, 0, 0, None
        E = self.base.n_experts
        self._rank_values = (np.arange(E) / E).astype(np.float32)
        self._seat_values = np.minimum(np.arange(self.n_max) * self.base.capacity / E, 1.0).astype(np.float32)

    # --------------------------------------------------------------------------- drawing
    def _trace(self, rng: np.random.Generator, layers: np.ndarray) -> ActivationTrace:
        """The episode's trace when its profiles are not drawn as exact zipf sets: a token
        window of a trace source, the scenario's own trace, or fresh synthetic layers."""
        base = self.base.trace
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
        if "trace" in options:
            trace = options["trace"]
            if not isinstance(trace, ActivationTrace):
                raise field_error(ScenarioError, "options['trace']", type(trace).__name__,
                                  "must be an xnet_gym.activation.ActivationTrace")
            self.base.with_trace(trace)                 # checks its shape against the model
        L = self.base.n_layers
        if self.whole_model:
            if options.get("layer") is not None:
                raise field_error(ScenarioError, "options['layer']", options["layer"],
                                  "ModelPlacement places every layer; omit it")
            return self._model_episode(rng, options)
        pinned = options.get("layer")
        if pinned is not None:
            pinned = _int_kwarg("options['layer']", pinned, 0, L - 1)
        return self._next_expert_episode(rng, pinned, options)

    # ------------------------------------------------------------------ episode tables
    def _stacked_tables(self):
        """Every layer's candidates with the central gateways, their per-slot leg costs over
        every slot of the scenario (the evaluator's `slot_leg_costs_s`), compute times and
        normalised rates, padded to the largest candidate count: computed once."""
        if self._stack is None:
            self._stack = self._layer_tables(self.base.layout.central_gateways, np.arange(self.base.n_layers))
        return self._stack

    def _layer_tables(self, gateways: np.ndarray, layers: np.ndarray):
        base, C = self.base, self.n_max
        n, S = len(layers), len(base.slots)
        cand = np.full((n, C), -1, dtype=np.int64)
        legs = np.zeros((n, S, C))
        t = np.zeros((n, C))
        rate = np.zeros((n, C), dtype=np.float32)
        n_cand = np.empty(n, dtype=np.int64)
        for i, layer in enumerate(layers):
            c = base.layout.candidates(layer, gateways[layer])
            m = n_cand[i] = len(c)
            cand[i, :m] = c
            legs[i, :, :m] = slot_leg_costs_s(base, gateways, layer, c)
            t[i, :m] = base.expert_time_s[c]
            rate[i, :m] = self._rate_norm[c]
        return cand, legs, t, rate, n_cand

    def _tables_for(self, rng: np.random.Generator, layers: np.ndarray):
        """(gateways, per-row tables) for the episode's layers: the cached central ones, or
        fresh ones for gateways drawn with `layer_strategy="random-gateway"`."""
        if self.layer_strategy == "central":
            stack = self._stacked_tables()
            return self.base.layout.central_gateways, tuple(a[layers] for a in stack)
        gateways = random_subnet_gateways(self.base.layout, rng)
        return gateways, self._layer_tables(gateways, layers)

    def _profiles(self, rng: np.random.Generator, layers: np.ndarray, options: dict):
        """Active sets (n, m, k) and token counts (n, m) of each row's layer, and the trace they
        come from (None for exact zipf draws, whose trace is built only if asked for). Rows of
        a trace are padded to one m with zero-count sets, which weigh nothing anywhere."""
        a, base = self.base.scenario.activation, self.base
        if "trace" not in options and self._exact_zipf:
            drawn = zipf_layer_sets(base.n_experts, base.trace.top_k, self.tokens or a.tokens, a.alpha, rng,
                                    size=len(layers))
            return (*drawn, None)
        trace = options["trace"] if "trace" in options else self._trace(rng, layers)
        per_layer = [trace.active_sets(int(layer)) for layer in layers]
        m = max(len(c) for _, c in per_layer)
        sets = np.empty((len(layers), m, base.trace.top_k), dtype=np.int64)
        counts = np.zeros((len(layers), m), dtype=np.int64)
        for i, (s, c) in enumerate(per_layer):
            sets[i, : len(s)], sets[i, len(s):], counts[i, : len(c)] = s, s[0], c
        return sets, counts, trace

    def _slot_subsets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, K) sorted positions in the scenario's slots: a uniform random subset per row,
        the K smallest of S i.i.d. uniform keys (all slots without `train_slots`)."""
        S = len(self.base.slots)
        K = self.train_slots if self.train_slots is not None else S
        if K >= S:
            return np.broadcast_to(np.arange(S), (n, S))
        return np.sort(np.argpartition(rng.random((n, S)), K, axis=1)[:, :K], axis=1)

    # ------------------------------------------------------------------ ExpertPlacement
    def _next_expert_episode(self, rng: np.random.Generator, layer: int | None, options: dict) -> Episode:
        """One layer per episode. With the paper's gateways and exact zipf profiles, episodes
        are drawn `block_size` at a time from `rng` and handed out one per reset; a block is
        dropped when the env's generator changes (a seeded reset makes a new one), so the same
        seed still gives the same episodes. Otherwise one episode is drawn per reset."""
        blockable = self.layer_strategy == "central" and self._exact_zipf and layer is None and "trace" not in options
        if blockable and self._block_rng is rng and self._block_pos < self._block_len:
            self._block_pos += 1
            return self._expert_from_block(self._block_pos - 1)
        # Cap a block's slot-cost gather at ~32 MB for scenarios with many slots and candidates.
        S, C = len(self.base.slots), self.n_max
        K = min(self.train_slots or S, S)
        B = max(1, min(self.block_size, (1 << 22) // (K * C))) if blockable else 1
        L = self.base.n_layers
        if layer is None:
            layer = self.layer
        layers = rng.integers(L, size=B) if layer is None else np.full(B, layer)
        sets, counts, trace = self._profiles(rng, layers, options)
        gateways, tables = self._tables_for(rng, layers)
        self._block_data = self._draw_block(rng, layers, gateways, tables, sets, counts, self._slot_subsets(rng, B),
                                            trace, expert_reference=True)
        self._block_len = len(layers)
        self._block_rng, self._block_pos = (rng, 1) if blockable else (None, 0)
        return self._expert_from_block(0)

    def _draw_block(self, rng, layers, gateways, tables, sets, counts, slots, trace, expert_reference: bool):
        """Everything fixed for B rows (row b: model layer b's candidates `tables`, its active
        sets (B, m, k) and counts (B, m), its slot positions (B, K)) in vectorised calls:
        stage costs, the closed form, observation tables, co-activation and, for
        ExpertPlacement rows, the closed form's stage latency through the evaluator."""
        base = self.base
        E, k = base.n_experts, base.trace.top_k
        B = len(layers)
        cand, legs, t_cand, rate, n_cand = tables
        slot_cost = legs[np.arange(B)[:, None], slots]                        # (B, K, C)
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
        reference = None
        if expert_reference:
            reference = stage_total_s(np.take_along_axis(slot_cost, idx[:, None, :], axis=2),
                                      np.take_along_axis(t_cand, idx, axis=1), seat, sets, counts, p, k,
                                      base.objective, base.capacity)
        lo = cs.min(axis=1, keepdims=True)
        span = np.where(real, cs, -np.inf).max(axis=1, keepdims=True) - lo
        cost_norm = np.where(real, (cs - lo) / np.where(span > 0, span, 1.0), 1.0).astype(np.float32)
        analytic = np.repeat(self._base_analytic.experts[None], B, axis=0)
        analytic[np.arange(B), layers] = seat
        return _Block(layers, np.asarray(gateways, dtype=np.int64), analytic, cand, n_cand, cs, cost_norm, rate, p,
                      rank, seat_rank, order, idx, seat, slot_cost, t_cand, sets, counts, counts / tokens[:, None],
                      marginal_tables(onehot, counts),
                      coactivation_from_sets(sets, counts, E, onehot).astype(np.float32), reference, slots, trace)

    def _expert_from_block(self, i: int) -> Episode:
        b, base = self._block_data, self.base
        j = slice(i, i + 1)
        make = functools.partial(self._episode_instance, b.layers[j], b.sets[j], b.counts[j], b.slots[i], b.trace)
        return Episode(make, b.layers[j], Placement(b.gateways, b.analytic[i]), b.candidates[j], b.n_candidates[j],
                       b.cost_s[j], b.cost_norm[j], b.rate_norm[j], b.probabilities[j], b.rank_norm[j],
                       b.seat_rank[j], b.order[j], b.coactivation[j], b.analytic_index[j],
                       ((b.sets[i], b.weights[i]),), (_layer_marginal(b.marginal, i, base.n_experts),),
                       float(b.reference_s[i]), False, base.n_experts, base.trace.top_k, base.capacity,
                       base.n_layers, slot_cost_s=b.slot_cost_s[i], candidate_time_s=b.candidate_time_s[i],
                       set_counts=b.counts[i])

    # ------------------------------------------------------------------ ModelPlacement
    def _model_episode(self, rng: np.random.Generator, options: dict) -> Episode:
        """Every layer, one shared slot subset, scored on token latency by `evaluate`."""
        base = self.base
        L, E = base.n_layers, base.n_experts
        layers = np.arange(L)
        sets, counts, trace = self._profiles(rng, layers, options)
        gateways, tables = self._tables_for(rng, layers)
        row = self._slot_subsets(rng, 1)
        slots = np.broadcast_to(row, (L, row.shape[1]))
        b = self._draw_block(rng, layers, gateways, tables, sets, counts, slots, trace, expert_reference=False)
        experts = b.analytic[0].copy()
        experts[layers] = b.seat
        placement = Placement(b.gateways, experts)
        inst = self._episode_instance(layers, b.sets, b.counts, b.slots[0], b.trace)
        reference = evaluate(inst, placement, split=False).latency_s
        return Episode(lambda: inst, layers, placement, b.candidates, b.n_candidates, b.cost_s, b.cost_norm,
                       b.rate_norm, b.probabilities, b.rank_norm, b.seat_rank, b.order, b.coactivation,
                       b.analytic_index, tuple(zip(b.sets, b.weights)),
                       tuple(_layer_marginal(b.marginal, i, E) for i in range(L)), float(reference), True, E,
                       base.trace.top_k, base.capacity, L)

    def _episode_instance(self, layers, sets, counts, slots, trace) -> Instance:
        """The Instance an episode stands for: its slots, and its trace (drawn profiles go into
        the scenario's trace at their layers, tokens grouped by set)."""
        base = self.base
        if trace is None:
            E, k = base.n_experts, base.trace.top_k
            T = int(counts[0].sum())
            experts = base.trace.experts.astype(np.int64) if T == base.trace.n_tokens else \
                np.resize(base.trace.experts, (base.n_layers, T, k)).astype(np.int64)
            known = {}
            for layer, s, c in zip(layers, sets, counts):
                keep = c > 0
                experts[layer] = np.repeat(s[keep], c[keep], axis=0)
                known[int(layer)] = (s[keep], c[keep])
            trace = ActivationTrace(experts, E, source=base.trace.source, check=False)
            trace._sets.update(known)               # known already: skip recounting
        return base.with_trace(trace).with_slots(base.slots[slots])

    def objective_s(self, episode: Episode, placement: Placement, candidate_index=None) -> float:
        """What an episode is scored on, through the one evaluator: the token latency
        (ModelPlacement) or the placed layer's expert-stage latency (ExpertPlacement).
        `candidate_index` (n_layers, E), when the env knows it, spares a search."""
        if episode.whole_model:
            return evaluate(episode.instance, placement, split=False).latency_s
        layer = int(episode.layers[0])
        sats = placement.experts[layer]
        idx = None
        if episode.slot_cost_s is not None and candidate_index is not None:
            idx = candidate_index[0]
        elif episode.slot_cost_s is not None and np.array_equal(placement.gateways, episode.base.gateways):
            cand = episode.candidates[0, : episode.n_candidates[0]]
            idx = np.minimum(np.searchsorted(cand, sats), len(cand) - 1)
            if not np.array_equal(cand[idx], sats):      # an expert off the episode's candidates
                idx = None
        if idx is not None:
            sets, _ = episode.set_members[0]
            return stage_total_s(episode.slot_cost_s[:, idx], episode.candidate_time_s[idx], sats, sets,
                                 episode.set_counts, episode.probabilities[0], episode.top_k,
                                 self.base.objective, episode.capacity)
        return float(evaluate_stages(episode.instance, placement, episode.layers, split=False).stage_s[0])
