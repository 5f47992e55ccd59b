"""Run policies on tracks: every policy on the same instances, each timed per instance.

Ratios are to the closed form's latency on the same instance (the episode's reference, from
the one evaluator) and to the best known latency: the lowest of this run and of the suite's
stored record (`best_known.json`, for tracks whose instances hash the same).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from .policies import Episode, is_replace_spec, parse_policy
from .replace_track import run_replace_track
from .suite import REPLACE_ENV, Track, check_instances

BEST_KNOWN_FILE = Path(__file__).with_name("best_known.json")
# A policy wins an instance when it is faster than the closed form by more than rounding.
WIN_MARGIN = 1e-9


def baseline_specs(track: Track) -> list[str]:
    """`--baselines`: the closed form, the paper's random strategies, steepest descent, local
    search, and anneal at each of the track's budgets."""
    return (["analytic", "RandIntra-CG", "RandIntra", "RandPlace", "steepest-descent", "local-search"]
            + [f"anneal@{b:g}s" for b in track.budgets_s] + [f"anneal@{n}it" for n in track.iterations])


@dataclass
class TrackResult:
    track: Track
    instances_sha256: str
    reference_s: np.ndarray                          # the closed form's latency per instance
    latency_s: dict[str, np.ndarray] = field(default_factory=dict)
    same_gateways: dict[str, np.ndarray] = field(default_factory=dict)
    wall_s: dict[str, np.ndarray] = field(default_factory=dict)
    kind: dict[str, str] = field(default_factory=dict)
    batch: dict[str, int] = field(default_factory=dict)
    best_known_s: np.ndarray | None = None
    best_known_by: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len(self.reference_s) == len(self.track.seeds)

    def rows(self) -> list[dict]:
        out = []
        for name, lat in self.latency_s.items():
            ratio = lat / self.reference_s
            to_best = lat / self.best_known_s if self.best_known_s is not None else np.full_like(lat, np.nan)
            out.append({
                "track": self.track.name, "group": self.track.group, "policy": name, "kind": self.kind[name],
                "instances": len(lat),
                "geomean_x_closed_form": _geomean(ratio), "geomean_x_best_known": _geomean(to_best),
                "win_rate": float(np.mean(ratio < 1.0 - WIN_MARGIN)),
                "best_x_closed_form": float(ratio.min()), "worst_x_closed_form": float(ratio.max()),
                "mean_latency_s": float(lat.mean()), "s_per_instance": float(self.wall_s[name].mean()),
                "batch": self.batch[name]})
        return out


def _geomean(x: np.ndarray) -> float:
    return float(math.exp(np.mean(np.log(x))))


def load_best_known(path: Path = BEST_KNOWN_FILE) -> dict:
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def run_track(track: Track, specs: list, baselines: bool = False, limit: int | None = None,
              stored: dict | None = None, log: Callable[[str], None] = print, policies: dict | None = None
              ) -> TrackResult:
    """Every policy of `specs` (command-line specs, or policy objects such as
    `callable_policy(fn)`) and the baselines on the track's instances (the first `limit`).
    `policies` caches parsed specs across tracks (a model loads once)."""
    if track.env == REPLACE_ENV:
        # Episodes of windows, scored against the per-window closed form; no best-known record.
        return run_replace_track(track, specs, baselines, limit, log)
    skipped = [s for s in specs if is_replace_spec(s)]
    if skipped:
        log(f"track {track.name}: skipping {', '.join(skipped)} (re-placement policies run on the drift tracks)")
        specs = [s for s in specs if not is_replace_spec(s)]
    policies = {} if policies is None else policies
    t0 = time.perf_counter()
    problems = track.problems(limit)
    digest = check_instances(track, problems)
    log(f"track {track.name}: {len(problems)} instances built in {time.perf_counter() - t0:.1f} s "
        f"(sha256 {digest[:12]})")
    result = TrackResult(track, digest, np.array([p.reference_s for p in problems]))
    envs: dict = {}
    episodes = [Episode(track, i, p, envs) for i, p in enumerate(problems)]
    for spec in [*(baseline_specs(track) if baselines else []), *specs]:
        if not isinstance(spec, str):
            policy = spec
        else:
            if spec not in policies:
                policies[spec] = parse_policy(spec)
            policy = policies[spec]
        if policy.name in result.latency_s:
            continue
        prepare = getattr(policy, "prepare", None)
        if prepare is not None:                     # env construction and model checks are not timed
            prepare(episodes[0])
        lat, wall = np.empty(len(episodes)), np.empty(len(episodes))
        same = np.empty(len(episodes), dtype=bool)
        for i, ep in enumerate(episodes):
            start = time.perf_counter()
            lat[i], same[i] = policy.play(ep)
            wall[i] = time.perf_counter() - start
        result.latency_s[policy.name], result.wall_s[policy.name] = lat, wall
        result.same_gateways[policy.name] = same
        result.kind[policy.name], result.batch[policy.name] = policy.kind, policy.batch
        log(f"  {policy.name:<36} geomean x closed form {_geomean(lat / result.reference_s):.4f}   "
            f"{wall.mean():.4f} s/instance")
    for env in envs.values():
        env.close()
    _best_known(result, (stored or {}).get(track.name))
    return result


def _best_known(result: TrackResult, record: dict | None) -> None:
    """The lowest latency per instance on the episode's gateways, of this run and of a stored
    record of the same instances."""
    # The closed form's own latency is always known, so every instance has a best known.
    names = ["analytic", *(n for n in result.latency_s if n != "analytic")]
    stack = np.stack([result.reference_s] + [np.where(result.same_gateways[n], result.latency_s[n], np.inf)
                                             for n in names[1:]])
    best = stack.min(axis=0)
    by = [names[i] for i in stack.argmin(axis=0)]
    if record and record.get("instances_sha256") == result.instances_sha256 and result.complete:
        old = np.asarray(record["latency_s"], dtype=float)
        for i in np.flatnonzero(old < best):
            best[i], by[i] = old[i], record["found_by"][i]
    result.best_known_s, result.best_known_by = best, by


def update_best_known(results: list[TrackResult], path: Path = BEST_KNOWN_FILE) -> None:
    """Fold complete tracks' best latencies into the stored record (written atomically)."""
    data = load_best_known(path)
    for r in results:
        if r.complete and r.best_known_s is not None:
            data[r.track.name] = {"instances_sha256": r.instances_sha256,
                                  "latency_s": [float(x) for x in r.best_known_s], "found_by": r.best_known_by}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
