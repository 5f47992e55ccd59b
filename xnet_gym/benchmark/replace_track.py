"""Re-placement tracks: `ExpertReplace-v0` episodes in the benchmark suite.

Instance i of such a track is the held-out episode (`split="test"`) the env draws on
`reset(seed=seeds[i])`: a layer, a run of windows and their time steps. A policy is a
re-placement spec of `xnet-gym replace` (a baseline, `greedy`, `lookahead`, an SB3 zip).
Its score on an instance is the mean over windows of the window's latency over the closed
form fit on that window (what the env's return is minus), so the table's "× closed form"
column is the same quantity as everywhere else: 1.0 is the per-window closed form with free
moves. For the JSON's latencies the reference of an instance is its mean per-window closed
form latency, and a policy's latency that reference times its score. The hash covers each
episode's layer, candidates, time steps, every window's routing of the layer and every
window's reference latency (to the nanosecond).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .policies import is_replace_spec, replace_runner
from .suite import Track, _ns, arrays_digest, check_instances_digest, digests_sha256

# `--baselines` on a re-placement track: the baselines and the players.
REPLACE_BASELINES = ("static", "static:fit=pooled", "periodic-resolve", "periodic-resolve:history_tokens=1024",
                     "periodic-resolve:history_tokens=1024,polish=true", "periodic-resolve:history_tokens=10000000",
                     "oracle", "greedy")


def episode_digest(episode) -> bytes:
    w = episode.windows
    refs = []
    for j in range(1, w.n_served + 1):
        inst = episode.window_instance(j)
        refs.append(episode.stage_latency_s(inst, episode.closed_form(inst)))
    parts = [np.array([episode.layer], np.int64), np.asarray(episode.candidates, np.int64),
             np.asarray(w.time_steps, np.int64), *(np.asarray(t.experts[episode.layer], np.int64) for t in w.traces),
             _ns(np.array(refs)), np.array([episode.expert_bytes, int(episode.budget_bytes)], np.int64)]
    return arrays_digest(parts)


def episodes_sha256(episodes) -> str:
    return digests_sha256(episodes, episode_digest)


def track_episodes(track: Track, limit: int | None = None):
    """(held-out envs, the track's episodes in seed order); close the envs when done."""
    envs = replace_runner().HeldOutEnvs(track.scenario)
    return envs, [envs.episode(s) for s in track.seeds[:limit]]


def run_replace_track(track: Track, specs: list, baselines: bool, limit: int | None, log: Callable[[str], None]):
    from .runner import TrackResult

    runner = replace_runner()

    skipped = [getattr(s, "name", s) for s in specs if not is_replace_spec(s)]
    if skipped:
        log(f"track {track.name}: skipping {', '.join(map(str, skipped))} (placement policies; a re-placement "
            "track runs the specs of `xnet-gym replace`)")
    names = list(dict.fromkeys([*(REPLACE_BASELINES if baselines else ()), *(s for s in specs if is_replace_spec(s))]))
    policies = [runner.parse_replace_policy(spec) for spec in names]
    t0 = time.perf_counter()
    envs, episodes = track_episodes(track, limit)
    try:
        seeds = list(track.seeds[:limit])
        digest = check_instances_digest(track, episodes_sha256(episodes), len(episodes))
        log(f"track {track.name}: {len(episodes)} episodes built in {time.perf_counter() - t0:.1f} s "
            f"(sha256 {digest[:12]})")
        _, scores, seconds = runner.run_policies(envs, policies, seeds, log)
    finally:
        envs.close()
    reference = np.array([np.mean([s.reference_s for s in run]) for run in next(iter(scores.values()))]) \
        if scores else np.zeros(0)
    result = TrackResult(track, digest, reference)
    for pol in policies:
        ratio = np.array([np.mean([s.ratio for s in run]) for run in scores[pol.name]])
        result.latency_s[pol.name] = ratio * reference
        result.wall_s[pol.name] = seconds[pol.name]
        result.same_gateways[pol.name] = np.ones(len(ratio), dtype=bool)
        result.kind[pol.name], result.batch[pol.name] = pol.kind, 1
    return result
