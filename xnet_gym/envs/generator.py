"""The only source of per-episode randomness for the placement envs.

A generator is anything that follows the `Generator` protocol: a `spec` (the sizes every
episode shares, from which the env builds its spaces) and a call `generator(rng, options)
-> Problem` that draws from `rng` (the env's `np_random`) only. `Problem.from_instance`
builds a problem from any `Instance`, so a custom generator can be a few lines (a fixed list
of instances, a curriculum, replayed traces):

    class FixedInstances:
        def __init__(self, instances):
            self.instances = instances
            self.spec = ProblemSpec.of(instances[0])
        def __call__(self, rng, options=None):
            inst = self.instances[rng.integers(len(self.instances))]
            return Problem.from_instance(inst, layers=[0], spec=self.spec)

    gymnasium.make("xnet_gym/ExpertPlacement-v0", generator=FixedInstances([...]))

`PlacementGenerator` is the default. From the env's `np_random` only, it draws the layer
(ExpertPlacement, unless fixed), the gateways (`layer_strategy="random-gateway"`), a fresh
activation profile (synthetic sources) or a token window (trace sources), and the subset of
time steps used for training. The scenario's topology is built once, from the scenario seed.

ExpertPlacement with fixed (central) gateways and a synthetic zipf source draws its episodes
`block_size` at a time, with one vectorised call per quantity, and hands them out one per
reset: per-episode Python work is what an 8-step episode cannot afford. Same seed, same
episodes: a block belongs to one `np.random.Generator` object, and a seeded `reset` makes a
new one, which drops the block. `block_size=1` draws every episode on its own.
"""

from __future__ import annotations

import functools
from typing import Literal, Protocol, get_args, runtime_checkable

import numpy as np

from ..activation import (
    ActivationTrace,
    batched_active_sets,
    clustered_trace,
    zipf_layer_sets,
    zipf_sets_enumerable,
    zipf_trace,
)
from ..analytic import analytic_placement
from ..errors import ScenarioError, check_bool, check_choice, check_int, field_error
from ..instance import Instance, build_instance
from ..layers import random_subnet_gateways
from ..scenario import MAX_TOKENS
from .problem import (
    EXPERT_ORDERS,
    CandidateTables,
    LayerRows,
    Problem,
    ProblemSpec,
    build_rows,
    finish_problem,
    stack_active_sets,
)

LayerStrategy = Literal["central", "random-gateway"]
LAYER_STRATEGIES: tuple[str, ...] = get_args(LayerStrategy)
RESET_OPTIONS = ("layer", "trace")


@runtime_checkable
class Generator(Protocol):
    """What an env needs from a generator: fixed sizes, and one problem per reset."""
    spec: ProblemSpec

    def __call__(self, rng: np.random.Generator, options: dict | None = None) -> Problem: ...


class ReplayProblem:
    """A generator that hands out one given `Problem` on every reset: replays an episode (a
    batched sub-env's, `ExpertPlacementVectorEnv.problem(i)`) or plays a chosen layer of an
    instance (`Problem.from_instance(instance, layers=[l])`) in the single env."""

    def __init__(self, problem: Problem):
        self.problem, self.spec = problem, problem.spec

    def __call__(self, rng: np.random.Generator, options: dict | None = None) -> Problem:
        return self.problem


def resolve_generator(generator, episode, scope: str) -> Generator:
    """An env's `generator=` kwarg: the default PlacementGenerator over the env's episode
    config (`xnet_gym.envs.episode.EpisodeConfig`) when None, else a checked user generator."""
    if generator is None:
        return PlacementGenerator(episode.scenario, scope=scope, **episode.generator_kwargs())
    if not isinstance(generator, Generator):
        raise ScenarioError(f"generator = {type(generator).__name__}: needs a `spec` attribute and a "
                            f"__call__(rng, options) -> Problem (see xnet_gym.envs.generator.Generator)")
    return generator


def _optional_int(name: str, value, low: int, high: int | None = None) -> int | None:
    return None if value is None else check_int(ScenarioError, name, value, low, high)


class PlacementGenerator:
    """The default generator over one scenario; `scope="stage"` draws one layer per episode
    (ExpertPlacement), `scope="token"` every layer (ModelPlacement)."""

    def __init__(self, scenario="paper", *, scope: str, layer: int | None = None,
                 randomize_activation: bool = True, train_time_steps: int | None = None,
                 tokens: int | None = None, expert_order: str = "index", objective: str | None = None,
                 route: str | None = None, layer_strategy: str = "central", time_steps: int | None = None,
                 block_size: int = 64):
        check_choice(ScenarioError, "expert_order", expert_order, EXPERT_ORDERS)
        check_choice(ScenarioError, "layer_strategy", layer_strategy, LAYER_STRATEGIES)
        check_bool(ScenarioError, "randomize_activation", randomize_activation)
        self._instance_args = {"scenario": scenario, "time_steps": time_steps, "objective": objective, "route": route}
        self.base: Instance = build_instance(**self._instance_args)
        self.spec = ProblemSpec.of(self.base)
        L = self.base.n_layers
        if scope == "token" and layer is not None:
            raise field_error(ScenarioError, "layer", layer, "ModelPlacement places every layer; omit it")
        self.scope = scope
        self.layer = _optional_int("layer", layer, 0, L - 1)
        self.train_time_steps = _optional_int("train_time_steps", train_time_steps, 1, len(self.base.time_steps))
        source = self.base.scenario.activation.source
        max_tokens = self.base.trace.n_tokens if source == "trace" else MAX_TOKENS
        self.tokens = _optional_int("tokens", tokens, 1, max_tokens)
        synthetic_tokens = self.base.scenario.activation.tokens
        # Tokens per drawn profile (a window of a trace, or a fresh synthetic profile).
        self._profile_tokens: int = self.tokens or (self.base.trace.n_tokens if source == "trace" or
                                                    synthetic_tokens is None else synthetic_tokens)
        self.expert_order = expert_order
        self.layer_strategy = layer_strategy
        self.randomize_activation = randomize_activation
        self.block_size = check_int(ScenarioError, "block_size", block_size, 1)
        a, m = self.base.scenario.activation, self.base.model
        self._exact_zipf = a.source == "zipf" and randomize_activation and zipf_sets_enumerable(m.experts, m.top_k)
        self._base_analytic = analytic_placement(self.base)
        self._central: CandidateTables | None = None
        self._block: LayerRows | None = None
        self._block_rng: np.random.Generator | None = None
        self._block_pos = 0

    def __getstate__(self):
        # Ship the recipe, not the products: the scenario's instance (orbits, links, tens of MB
        # on `paper`) is rebuilt bit for bit from its seed, and the candidate tables are a
        # cache. The pre-drawn block and the Generator it belongs to travel with the env: pickled
        # together with the env's `np_random`, they stay the same object, so a copy's next
        # unseeded resets hand out the same episodes as the original's.
        state = self.__dict__.copy()
        state.update(base=None, _central=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.base = build_instance(**self._instance_args)

    # --------------------------------------------------------------------------- drawing
    def __call__(self, rng: np.random.Generator, options: dict | None = None) -> Problem:
        options = dict(options or {})
        unknown = set(options) - set(RESET_OPTIONS)
        if unknown:
            raise field_error(ScenarioError, "reset options", sorted(unknown),
                              f"allowed keys: {', '.join(RESET_OPTIONS)}")
        if "trace" in options:
            trace = options["trace"]
            if not isinstance(trace, ActivationTrace):
                raise field_error(ScenarioError, "options['trace']", type(trace).__name__,
                                  "must be an xnet_gym.activation.ActivationTrace")
            self.base.with_trace(trace)                 # checks its shape against the model
        if self.scope == "token":
            if options.get("layer") is not None:
                raise field_error(ScenarioError, "options['layer']", options["layer"],
                                  "ModelPlacement places every layer; omit it")
            return self._model_problem(rng, options)
        pinned = _optional_int("options['layer']", options.get("layer"), 0, self.base.n_layers - 1)
        return self._layer_problem(rng, pinned, options)

    def _layer_problem(self, rng: np.random.Generator, layer: int | None, options: dict) -> Problem:
        """One layer per episode, from the current block when there is one for this `rng`."""
        blockable = (self.layer_strategy == "central" and self._exact_zipf and layer is None
                     and "trace" not in options)
        if blockable and self._block is not None and self._block_rng is rng and self._block_pos < len(self._block):
            self._block_pos += 1
            return self._from_block(self._block_pos - 1)
        S, C = len(self.base.time_steps), self.spec.n_candidates_max
        K = min(self.train_time_steps or S, S)
        if layer is None:
            layer = self.layer
        if blockable:
            # Cap a block's leg-cost gather at ~32 MB for scenarios with many time steps and candidates.
            B = max(1, min(self.block_size, (1 << 22) // (K * C)))
            self._block = self.draw_rows(rng, B, layer)
            self._block_gateways, self._block_trace = self.base.layout.central_gateways, None
            self._block_rng, self._block_pos = rng, 1
            return self._from_block(0)
        B = 1
        layers = rng.integers(self.base.n_layers, size=B) if layer is None else np.full(B, layer)
        sets, counts, trace = self._profiles(rng, layers, options)
        gateways = self._gateways(rng)
        steps = self._time_step_subsets(rng, B)
        tables, columns = self._tables(gateways, layers, steps)
        self._block = build_rows(self.spec, layers, tables, steps, sets, counts, expert_order=self.expert_order,
                                 rng=rng, score_stages=True, time_steps_are_columns=columns)
        self._block_gateways, self._block_trace = gateways, trace
        self._block_rng, self._block_pos = None, 0
        return self._from_block(0)

    def draw_rows(self, rng: np.random.Generator, n: int, layer: int | None = None) -> LayerRows:
        """`n` independent stage episodes' rows in vectorised calls (the batched vector env's
        reset, and the single env's block): the same draws, in the same order, as the
        single env, so with `block_size=n` the single env's k-th block is this call's k-th
        result for the same rng. Paper (central) gateways only: drawn gateways need
        shortest paths per episode."""
        if self.scope != "stage" or self.layer_strategy != "central":
            raise field_error(ScenarioError, "layer_strategy", self.layer_strategy,
                              "rows are drawn in batches only for ExpertPlacement with 'central' gateways "
                              "(drawn gateways need their own shortest paths per episode)")
        if layer is None:
            layer = self.layer
        layers = rng.integers(self.base.n_layers, size=n) if layer is None else np.full(n, layer)
        if self._exact_zipf:
            a = self.base.scenario.activation
            drawn = zipf_layer_sets(self.base.n_experts, self.spec.top_k, self._profile_tokens, a.alpha, rng, size=n)
            assert drawn is not None                    # _exact_zipf says the set space is enumerable
            sets, counts = drawn
        else:
            sets, counts = batched_active_sets(self._window_experts(rng, layers), self.base.n_experts)
        steps = self._time_step_subsets(rng, n)
        tables, columns = self._tables(self.base.layout.central_gateways, layers, steps)
        return build_rows(self.spec, layers, tables, steps, sets, counts, expert_order=self.expert_order,
                          rng=rng, score_stages=True, time_steps_are_columns=columns)

    def _window_experts(self, rng: np.random.Generator, layers: np.ndarray) -> np.ndarray:
        """(n, T, k) experts of each row's profile, drawn as `_trace` draws one episode's: a
        token window of a trace source, fresh synthetic tokens, or the scenario's own trace."""
        base, T, n = self.base.trace, self._profile_tokens, len(layers)
        if self.base.scenario.activation.source == "trace":
            starts = rng.integers(base.n_tokens - T + 1, size=n) if self.randomize_activation else np.zeros(n, int)
            return base.experts[layers[:, None], starts[:, None] + np.arange(T)]
        if not self.randomize_activation:
            return base.experts[layers]
        return self._fresh_trace(rng, n).experts

    def problem(self, rows: LayerRows, i: int) -> Problem:
        """Row `i` of `draw_rows`' result as a one-episode Problem (its instance, reference
        placement and reference latency), the object the single env's episode carries."""
        make = functools.partial(self._episode_instance, rows, i, None)
        return finish_problem(rows, i, 1, self.base.layout.central_gateways, self._base_analytic.experts, "stage",
                              self.spec, make)

    def _from_block(self, i: int) -> Problem:
        block = self._block
        assert block is not None
        make = functools.partial(self._episode_instance, block, i, self._block_trace)
        return finish_problem(block, i, 1, self._block_gateways, self._base_analytic.experts, "stage", self.spec, make)

    def _model_problem(self, rng: np.random.Generator, options: dict) -> Problem:
        """Every layer, one shared subset of time steps, scored on token latency."""
        L = self.base.n_layers
        layers = np.arange(L)
        sets, counts, trace = self._profiles(rng, layers, options)
        gateways = self._gateways(rng)
        one = self._time_step_subsets(rng, 1)
        steps = np.broadcast_to(one, (L, one.shape[1]))
        tables, columns = self._tables(gateways, layers, steps)
        rows = build_rows(self.spec, layers, tables, steps, sets, counts, expert_order=self.expert_order, rng=rng,
                          score_stages=False, time_steps_are_columns=columns)
        return finish_problem(rows, 0, L, gateways, self._base_analytic.experts, "token", self.spec,
                              functools.partial(self._episode_instance, rows, 0, trace))

    # ------------------------------------------------------------------ ingredients
    def _gateways(self, rng: np.random.Generator) -> np.ndarray:
        """The paper's central gateways, or one drawn per subnet (`layer_strategy="random-gateway"`)."""
        if self.layer_strategy == "central":
            return self.base.layout.central_gateways
        return random_subnet_gateways(self.base.layout, rng)

    def _tables(self, gateways: np.ndarray, layers: np.ndarray, steps: np.ndarray) -> tuple[CandidateTables, bool]:
        """Candidate tables of `layers`, their time axis already cut to `steps`. Central
        gateways: every layer over every time step, computed once and cut per block. Drawn
        gateways: only the episode's layers, gateways and time steps (one row of `steps`,
        shared by the episode's rows), so a reset costs milliseconds and caches nothing."""
        if self.layer_strategy == "central":
            if self._central is None:
                self._central = CandidateTables.build(self.base, gateways, np.arange(self.base.n_layers),
                                                      self.spec.n_candidates_max)
            c = self._central
            # One gather straight to the rows' time steps, not a copy of every time step first.
            legs = c.leg_cost_s[layers[:, None], steps]                                   # (B, K, C)
            return CandidateTables(c.candidates[layers], c.n_candidates[layers], legs, c.candidate_time_s[layers],
                                   c.candidate_rate_flops[layers]), True
        assert len(steps) == 1 or (steps == steps[0]).all()          # one episode: one subset
        return CandidateTables.build(self.base, gateways, layers, self.spec.n_candidates_max, steps[0]), True

    def _profiles(self, rng: np.random.Generator, layers: np.ndarray, options: dict):
        """Active sets (n, m, k) and token counts (n, m) of each row's layer, and the trace they
        come from (None for exact zipf draws, whose trace is built only if asked for)."""
        a, base = self.base.scenario.activation, self.base
        if "trace" not in options and self._exact_zipf:
            drawn = zipf_layer_sets(base.n_experts, self.spec.top_k, self._profile_tokens, a.alpha, rng,
                                    size=len(layers))
            return (*drawn, None)
        trace = options["trace"] if "trace" in options else self._trace(rng, layers)
        return (*stack_active_sets(trace, layers, self.spec.top_k), trace)

    def _trace(self, rng: np.random.Generator, layers: np.ndarray) -> ActivationTrace:
        """The episode's trace when its profiles are not drawn as exact zipf sets: a token
        window of a trace source, the scenario's own trace, or fresh synthetic layers."""
        base = self.base.trace
        if self.base.scenario.activation.source == "trace":
            T = self._profile_tokens
            start = int(rng.integers(base.n_tokens - T + 1)) if self.randomize_activation else 0
            return base.window(start, T)
        if not self.randomize_activation:
            return base
        fresh = self._fresh_trace(rng, len(layers))
        if len(layers) == base.n_layers:
            return fresh
        known = {int(layer): fresh.active_sets(i) for i, layer in enumerate(layers)}
        return self._splice(layers, fresh.experts, known, self._profile_tokens)

    def _fresh_trace(self, rng: np.random.Generator, n: int) -> ActivationTrace:
        """`n` fresh synthetic layer profiles of `_profile_tokens` tokens (zipf or clustered)."""
        a, m, T = self.base.scenario.activation, self.base.model, self._profile_tokens
        if a.source == "zipf":
            return zipf_trace(n, m.experts, m.top_k, T, a.alpha, rng, shuffle=False)
        return clustered_trace(n, m.experts, m.top_k, T, a.alpha, a.clusters, a.coactivation_strength, rng)

    def _splice(self, layers: np.ndarray, experts: np.ndarray, known: dict, tokens: int) -> ActivationTrace:
        """The scenario's trace with `layers` replaced by drawn profiles (`experts` (n, T, k)).
        Only those layers are scored; the others are cut or tiled to T tokens so the array
        stays rectangular."""
        base = self.base.trace
        out = base.experts.astype(np.int64) if tokens == base.n_tokens else \
            np.resize(base.experts, (base.n_layers, tokens, base.top_k)).astype(np.int64)
        out[layers] = experts
        return ActivationTrace(out, base.n_experts, source=base.source, check=False, known_sets=known)

    def _time_step_subsets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, K) sorted positions in the scenario's time steps: a uniform random subset per
        row, the K smallest of S i.i.d. uniform keys (all of them without `train_time_steps`)."""
        S = len(self.base.time_steps)
        K = self.train_time_steps if self.train_time_steps is not None else S
        if K >= S:
            return np.broadcast_to(np.arange(S), (n, S))
        return np.sort(np.argpartition(rng.random((n, S)), K, axis=1)[:, :K], axis=1)

    def _episode_instance(self, batch: LayerRows, first: int, trace: ActivationTrace | None) -> Instance:
        """The Instance an episode stands for (rows from `first` of `batch`): its time steps,
        and its trace (drawn profiles go into the scenario's trace at their layers, tokens
        grouped by set)."""
        rows = batch if self.scope == "token" else batch.row(first)
        if trace is None:
            T = int(rows.counts[0].sum())
            known, parts = {}, []
            for layer, s, c in zip(rows.layers, rows.sets, rows.counts):
                keep = c > 0
                parts.append(np.repeat(s[keep], c[keep], axis=0))
                known[int(layer)] = (s[keep], c[keep])
            trace = self._splice(rows.layers, np.stack(parts), known, T)
        return self.base.with_trace(trace).with_time_steps(self.base.time_steps[rows.time_steps[0]])
