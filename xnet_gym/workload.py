"""Workloads that move: a run of serving windows whose routing drifts while the orbit turns.

A window is `tokens_per_window` tokens served over `time_steps_per_window` consecutive time
steps, so routing drift and orbital motion advance together. Each window's tokens are a mix
of sources (real traces, the scenario's own routing, synthetic Zipf profiles with their own
popularity ranking), in shares a schedule sets:

- `static`: the same `weights` in every window (no routing drift: orbit-only drift);
- `cycle`: one source leads with `dominant_share` for `dwell_windows` windows, then the next
  (a ground track passing regions with different task mixes), the others sharing the rest;
- `switch`: one source alone for `dwell_windows` windows, then another, drawn at random;
- `random-walk`: a Dirichlet random walk, `w_{t+1} ~ Dir(concentration * n * w_t + 0.05)`.

An episode draws one warm-up window (window 0: routing the operator has seen before serving
starts) and `windows` served windows. A source's tokens come as contiguous blocks at random
offsets, from the first `1 - test_share` of the trace (`split="train"`) or from its last
`test_share` (`split="test"`, held-out episodes), so training never sees a held-out token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .activation import MAX_TOKENS, ActivationTrace, load_esft, load_trace_npz, zipf_trace
from .errors import ScenarioError, TraceError, check_choice, check_int, check_number, field_error

SCHEDULES = ("static", "cycle", "switch", "random-walk")
SPLITS = ("train", "test")
SYNTHETIC_POOL_TOKENS = 16384      # tokens drawn once for a synthetic source; windows sample from them
MAX_WINDOWS = 10_000
WEIGHT_SUM_TOL = 1e-6
WALK_FLOOR = 0.05                  # keeps every Dirichlet parameter of the walk > 0


@dataclass(frozen=True)
class WorkloadSpec:
    """`[workload]` of a scenario file: what each serving window routes, and when."""
    sources: tuple[str, ...] = ("scenario",)
    schedule: str = "static"
    windows: int = 8
    tokens_per_window: int = 256
    time_steps_per_window: int = 1
    history_tokens: int | None = None          # routing the online policies fit on; None: one window
    weights: tuple[float, ...] | None = None   # the static mix; None: equal shares
    dominant_share: float = 0.7
    dwell_windows: int = 2
    concentration: float = 20.0
    test_share: float = 0.25

    def __post_init__(self):
        s = "workload"
        src = self.sources
        if isinstance(src, str) or not isinstance(src, (tuple, list)) or not src:
            raise field_error(ScenarioError, f"{s}.sources", src,
                              "must be a non-empty list of sources: 'scenario', 'zipf:<alpha>', or a trace "
                              "path (.npz file or ESFT folder)")
        for i, one in enumerate(src):
            if not isinstance(one, str) or not one:
                raise field_error(ScenarioError, f"{s}.sources[{i}]", one, "must be a non-empty string")
            if one.startswith("zipf:"):
                _zipf_alpha(one, f"{s}.sources[{i}]")
        object.__setattr__(self, "sources", tuple(src))
        check_choice(ScenarioError, f"{s}.schedule", self.schedule, SCHEDULES)
        check_int(ScenarioError, f"{s}.windows", self.windows, 1, MAX_WINDOWS)
        check_int(ScenarioError, f"{s}.tokens_per_window", self.tokens_per_window, 1, MAX_TOKENS)
        check_int(ScenarioError, f"{s}.time_steps_per_window", self.time_steps_per_window, 1)
        if self.history_tokens is not None:
            check_int(ScenarioError, f"{s}.history_tokens", self.history_tokens, 1, MAX_TOKENS)
        if self.weights is not None:
            w = self.weights
            if isinstance(w, str) or not isinstance(w, (tuple, list)) or len(w) != len(src):
                raise field_error(ScenarioError, f"{s}.weights", w, f"must be one share per source ({len(src)})")
            w = tuple(check_number(ScenarioError, f"{s}.weights[{i}]", v, 0.0, 1.0) for i, v in enumerate(w))
            if abs(sum(w) - 1.0) > WEIGHT_SUM_TOL:
                raise field_error(ScenarioError, f"{s}.weights", list(w), f"must sum to 1 (they sum to {sum(w):.6g})")
            object.__setattr__(self, "weights", w)
        object.__setattr__(self, "dominant_share", check_number(ScenarioError, f"{s}.dominant_share",
                                                                self.dominant_share, 0.0, 1.0))
        check_int(ScenarioError, f"{s}.dwell_windows", self.dwell_windows, 1)
        object.__setattr__(self, "concentration", check_number(ScenarioError, f"{s}.concentration",
                                                               self.concentration, 0.0, 1e6, low_open=True))
        object.__setattr__(self, "test_share", check_number(ScenarioError, f"{s}.test_share", self.test_share,
                                                            0.0, 1.0, low_open=True))
        if self.test_share >= 1.0:
            raise field_error(ScenarioError, f"{s}.test_share", self.test_share,
                              "must be < 1: training needs tokens too")

    @property
    def fit_tokens(self) -> int:
        """Tokens of routing history the online policies fit on."""
        return self.history_tokens or self.tokens_per_window


def _zipf_alpha(source: str, field: str) -> float:
    try:
        alpha = float(source.split(":", 1)[1])
    except ValueError:
        raise field_error(ScenarioError, field, source, "a synthetic source is 'zipf:<alpha>', alpha a number") \
            from None
    return check_number(ScenarioError, field, alpha, 0.0, 50.0)


@dataclass(frozen=True, eq=False)
class Sources:
    """The loaded sources of a workload: one trace each and its train / test token ranges."""
    traces: tuple[ActivationTrace, ...]
    names: tuple[str, ...]
    test_start: np.ndarray        # (n,) first token of each source's held-out tail

    def token_range(self, i: int, split: str) -> tuple[int, int]:
        n = self.traces[i].n_tokens
        return (0, int(self.test_start[i])) if split == "train" else (int(self.test_start[i]), n)


def load_sources(spec: WorkloadSpec, scenario, scenario_trace: ActivationTrace,
                 rng: np.random.Generator) -> Sources:
    """Each source's trace, checked against the model and against the window sizes.
    `scenario_trace` is the scenario's own routing; synthetic sources draw from `rng`."""
    from .instance import check_trace_fits  # instance imports scenario, which imports this module

    m = scenario.model
    traces, starts = [], []
    for i, src in enumerate(spec.sources):
        field = f"workload.sources[{i}]"
        if src == "scenario":
            trace = scenario_trace
        elif src.startswith("zipf:"):
            trace = zipf_trace(m.layers, m.experts, m.top_k, SYNTHETIC_POOL_TOKENS, _zipf_alpha(src, field), rng)
        else:
            path = scenario.resolve(src)
            if not path.exists():
                raise field_error(ScenarioError, field, src, f"no such file or folder ({path})")
            try:
                trace = load_esft(path, m.experts, m.top_k) if path.is_dir() else load_trace_npz(path, m.experts)
            except TraceError as exc:
                raise field_error(ScenarioError, field, src, str(exc)) from None
            check_trace_fits(trace, m, field)
        n = trace.n_tokens
        test = max(1, math.ceil(spec.test_share * n))
        start = n - test
        for split, have in (("train", start), ("test", test)):
            if spec.tokens_per_window > have:
                raise field_error(ScenarioError, "workload.tokens_per_window", spec.tokens_per_window,
                                  f"a window longer than {field} ({src}) allows: its {split} split has "
                                  f"{have} tokens (test_share {spec.test_share})")
        traces.append(trace)
        starts.append(start)
    return Sources(tuple(traces), spec.sources, np.asarray(starts, dtype=np.int64))


def mix_weights(spec: WorkloadSpec, n_windows: int, rng: np.random.Generator) -> np.ndarray:
    """(n_windows, n_sources) each window's source shares under the schedule (rows sum to 1)."""
    n = len(spec.sources)
    if spec.schedule == "static":
        w = np.full(n, 1.0 / n) if spec.weights is None else np.asarray(spec.weights)
        return np.broadcast_to(w, (n_windows, n)).copy()
    if spec.schedule == "random-walk":
        out = np.empty((n_windows, n))
        w = rng.dirichlet(np.ones(n))
        for j in range(n_windows):           # a walk: each window depends on the last
            out[j] = w
            w = rng.dirichlet(spec.concentration * n * w + WALK_FLOOR)
        return out
    lead = np.empty(n_windows, dtype=np.int64)
    if spec.schedule == "cycle":
        lead[:] = (np.arange(n_windows) // spec.dwell_windows + rng.integers(n)) % n
    else:                                     # switch: a new leader, never the same one twice running
        current = int(rng.integers(n))
        for j in range(n_windows):
            if j and j % spec.dwell_windows == 0 and n > 1:
                current = (current + 1 + int(rng.integers(n - 1))) % n
            lead[j] = current
    if spec.schedule == "switch" or n == 1:
        return np.eye(n)[lead]
    out = np.full((n_windows, n), (1.0 - spec.dominant_share) / (n - 1))
    out[np.arange(n_windows), lead] = spec.dominant_share
    return out


@dataclass(frozen=True, eq=False)
class Windows:
    """One episode's windows: window 0 is the warm-up, 1..W are served."""
    traces: tuple[ActivationTrace, ...]     # (W + 1) traces of tokens_per_window tokens, every layer
    time_steps: np.ndarray                  # (W + 1, time_steps_per_window) indices into the topology's steps
    weights: np.ndarray                     # (W + 1, n_sources) the mix each window was drawn from

    @property
    def n_served(self) -> int:
        return len(self.traces) - 1

    def history(self, window: int, tokens: int) -> ActivationTrace:
        """The last `tokens` tokens served before `window` (window 0, the warm-up, included)."""
        parts, need = [], tokens
        for j in range(window - 1, -1, -1):
            x = self.traces[j].experts
            take = min(need, x.shape[1])
            parts.append(x[:, x.shape[1] - take:])
            need -= take
            if need == 0:
                break
        first = self.traces[0]
        return ActivationTrace(np.concatenate(parts[::-1], axis=1), first.n_experts, check=False)

    def pooled(self) -> ActivationTrace:
        """Every served window's tokens (the offline view of the whole run)."""
        first = self.traces[1]
        return ActivationTrace(np.concatenate([t.experts for t in self.traces[1:]], axis=1), first.n_experts,
                               check=False)


def draw_windows(spec: WorkloadSpec, sources: Sources, n_time_steps: int, rng: np.random.Generator,
                 split: str = "train", start_step: int | None = None) -> Windows:
    """One episode's warm-up and served windows, every draw from `rng`."""
    check_choice(ScenarioError, "split", split, SPLITS)
    s = spec.time_steps_per_window
    if s > n_time_steps:
        raise field_error(ScenarioError, "workload.time_steps_per_window", s,
                          f"must be <= the scenario's evaluation.time_steps ({n_time_steps})")
    n_windows = spec.windows + 1
    weights = mix_weights(spec, n_windows, rng)
    first = int(rng.integers(n_time_steps)) if start_step is None else start_step
    steps = (first + np.arange(n_windows)[:, None] * s + np.arange(s)[None, :]) % n_time_steps
    traces = []
    for j in range(n_windows):
        counts = rng.multinomial(spec.tokens_per_window, weights[j])
        blocks = []
        for i in np.flatnonzero(counts):
            lo, hi = sources.token_range(int(i), split)
            at = int(rng.integers(lo, hi - counts[i] + 1))
            blocks.append(sources.traces[i].experts[:, at: at + counts[i]])
        x = np.concatenate(blocks, axis=1)
        traces.append(ActivationTrace(x, sources.traces[0].n_experts, check=False))
    return Windows(tuple(traces), steps.astype(np.int64), weights)
