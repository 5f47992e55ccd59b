"""The benchmark's frozen task suite: tracks of held-out instances, read from a TOML file.

A *track* fixes everything an instance depends on: the scenario (a preset, or a TOML path
relative to the suite file), the objective and route, the tokens per instance, the time
steps, and a list of reset seeds. Instance `i` of a track is the episode that
`gymnasium.make(track.env, **track.env_kwargs)` draws on `reset(seed=track.seeds[i])`: one
layer, a token window (or a fresh synthetic profile) and all of the scenario's time steps.
It is built from the seeds alone, so anyone gets the same instances; the suite file records a
SHA-256 of each track's instances (`instances_sha256`), and building a track checks it.

What the hash covers: every discrete part of each instance (layer, gateways, candidates,
time steps, active sets and their token counts) and its float tables (leg costs, compute
times, the closed form's latency) rounded to the nanosecond, so that a last-bit difference in
a platform's trigonometry does not change it while any change of physics does.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ScenarioError, check_choice, check_int, field_error
from ..scenario import OBJECTIVES, ROUTES

SUITE_FILE = Path(__file__).with_name("suite.toml")
SUITE_VERSION = 1
TRACK_KEYS = ("name", "group", "description", "env", "scenario", "objective", "route", "tokens", "time_steps",
              "seeds", "budgets_s", "iterations", "quick", "instances_sha256")
GROUPS = ("in-distribution", "ood-routing", "ood-constellation", "ood-model", "drift", "quick")
REPLACE_ENV = "xnet_gym/ExpertReplace-v0"      # re-placement tracks (`replace_track.py`)
TRACK_ENVS = ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ExpertRefine-v0", REPLACE_ENV)
MAX_SEED = 2**63 - 1          # what numpy's SeedSequence and gymnasium's reset take without wrapping


class BenchmarkError(ScenarioError):
    """Bad benchmark input: a suite file, a track name, a policy, or what a policy returned."""


@dataclass(frozen=True)
class Track:
    name: str
    group: str
    description: str
    env: str
    scenario: str                    # a preset name or an absolute path to a scenario TOML
    objective: str
    route: str | None
    tokens: int | None
    time_steps: int | None
    seeds: tuple[int, ...]
    budgets_s: tuple[float, ...]     # wall-time budgets of the anneal baseline
    iterations: tuple[int, ...]      # iteration budgets of the anneal baseline (clock-free)
    quick: bool
    instances_sha256: str | None

    @property
    def env_kwargs(self) -> dict:
        """The instance settings, as env keywords (every env of the suite takes them)."""
        kw: dict = {"scenario": self.scenario, "objective": self.objective}
        for key in ("route", "tokens", "time_steps"):
            if getattr(self, key) is not None:
                kw[key] = getattr(self, key)
        return kw

    def problems(self, limit: int | None = None) -> list:
        """The track's instances (`xnet_gym.envs.Problem`), in seed order: the episodes its
        env draws on those seeds. `limit` keeps the first N. (A re-placement track's
        instances are runs of windows: `replace_track.track_episodes`.)"""
        import gymnasium as gym

        if self.env == REPLACE_ENV:
            raise BenchmarkError(f"track {self.name}: a re-placement track's instances are episodes of windows "
                                 "(xnet_gym.benchmark.replace_track.track_episodes), not placement problems")
        env = gym.make(self.env, **self.env_kwargs)
        out = []
        for seed in self.seeds[:limit]:
            env.reset(seed=seed)
            out.append(env.unwrapped.problem)  # type: ignore[attr-defined]
        env.close()
        return out


@dataclass(frozen=True)
class Suite:
    version: int
    path: Path
    tracks: dict[str, Track] = field(default_factory=dict)

    def select(self, names=None, quick: bool = False) -> list[Track]:
        """Tracks by name (in suite order when none are named); `quick` keeps the quick ones."""
        if names:
            unknown = [n for n in names if n not in self.tracks]
            if unknown:
                raise field_error(BenchmarkError, "--track", unknown[0],
                                  f"unknown track; allowed: {', '.join(self.tracks)}")
            chosen = [self.tracks[n] for n in dict.fromkeys(names)]
        else:
            chosen = [t for t in self.tracks.values() if t.quick == quick]
        if quick:
            slow = [t.name for t in chosen if not t.quick]
            if slow:
                raise field_error(BenchmarkError, "--track", slow[0], "is not a quick track; --quick runs only "
                                  f"{', '.join(n for n, t in self.tracks.items() if t.quick)}")
        return chosen


def _tuple(path: str, value, kind: str, low: float, min_len: int = 0) -> tuple:
    if not isinstance(value, list) or len(value) < min_len:
        raise field_error(BenchmarkError, path, value,
                          f"must be a list of {kind}" + (f" (at least {min_len})" if min_len else ""))
    out: list[float] = []
    for i, v in enumerate(value):
        if kind == "integers":
            out.append(check_int(BenchmarkError, f"{path}[{i}]", v, int(low), MAX_SEED))
        else:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= low:
                raise field_error(BenchmarkError, f"{path}[{i}]", v, f"must be a finite number > {low:g}")
            out.append(float(v))
    return tuple(out)


def _track(table, index: int, folder: Path, names: set) -> Track:
    where = f"tracks[{index}]"
    if not isinstance(table, dict):
        raise field_error(BenchmarkError, where, table, "must be a table ([[tracks]])")
    unknown = sorted(set(table) - set(TRACK_KEYS))
    if unknown:
        raise field_error(BenchmarkError, f"{where}.{unknown[0]}", table[unknown[0]],
                          f"unknown key; allowed: {', '.join(TRACK_KEYS)}")
    for key in ("name", "group", "env", "scenario", "seeds"):
        if key not in table:
            raise BenchmarkError(f"{where}.{key} is missing: every track names it")
    name = table["name"]
    if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
        raise field_error(BenchmarkError, f"{where}.name", name, "must be a non-empty name of letters, digits, - and _")
    if name in names:
        raise field_error(BenchmarkError, f"{where}.name", name, "is already the name of another track")
    where = f"track {name}"
    check_choice(BenchmarkError, f"{where}: group", table["group"], GROUPS)
    check_choice(BenchmarkError, f"{where}: env", table["env"], TRACK_ENVS)
    scenario = table["scenario"]
    if not isinstance(scenario, str) or not scenario:
        raise field_error(BenchmarkError, f"{where}: scenario", scenario, "must be a preset name or a TOML path")
    if scenario.endswith(".toml"):
        path = (folder / scenario).resolve()
        if not path.is_file():
            raise field_error(BenchmarkError, f"{where}: scenario", scenario,
                              f"no such file (paths are relative to the suite file's folder, {folder})")
        scenario = str(path)
    objective = table.get("objective", "max")
    check_choice(BenchmarkError, f"{where}: objective", objective, OBJECTIVES)
    route = table.get("route")
    if route is not None:
        check_choice(BenchmarkError, f"{where}: route", route, ROUTES)
    tokens = table.get("tokens")
    time_steps = table.get("time_steps")
    if table["env"] == REPLACE_ENV:
        for key in ("tokens", "time_steps", "route", "objective", "budgets_s", "iterations"):
            if key in table:
                raise field_error(BenchmarkError, f"{where}: {key}", table[key],
                                  "a re-placement track takes its windows and budget from the scenario's "
                                  "[workload] and [migration] tables")
    digest = table.get("instances_sha256")
    if digest is not None and (not isinstance(digest, str) or len(digest) != 64):
        raise field_error(BenchmarkError, f"{where}: instances_sha256", digest, "must be 64 hex digits")
    quick = table.get("quick", False)
    if not isinstance(quick, bool):
        raise field_error(BenchmarkError, f"{where}: quick", quick, "must be true or false")
    seeds = _tuple(f"{where}: seeds", table["seeds"], "integers", 0, min_len=1)
    if len(set(seeds)) != len(seeds):
        raise field_error(BenchmarkError, f"{where}: seeds", list(seeds), "must not repeat a seed")
    return Track(
        name=name, group=table["group"], description=str(table.get("description", "")), env=table["env"],
        scenario=scenario, objective=objective, route=route,
        tokens=None if tokens is None else check_int(BenchmarkError, f"{where}: tokens", tokens, 1),
        time_steps=None if time_steps is None else check_int(BenchmarkError, f"{where}: time_steps", time_steps, 1),
        seeds=seeds,
        budgets_s=_tuple(f"{where}: budgets_s", table.get("budgets_s", []), "numbers", 0.0),
        iterations=_tuple(f"{where}: iterations", table.get("iterations", []), "integers", 1),
        quick=quick, instances_sha256=digest)


def load_suite(path=None) -> Suite:
    """The suite file (default: the one shipped with the package), checked whole."""
    path = Path(path) if path is not None else SUITE_FILE
    if not path.is_file():
        raise field_error(BenchmarkError, "--suite", str(path), "no such file (a suite TOML)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise field_error(BenchmarkError, "--suite", str(path), f"is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"version", "tracks"})
    if unknown:
        raise field_error(BenchmarkError, unknown[0], data[unknown[0]], "unknown key; allowed: version, tracks")
    version = data.get("version")
    if version != SUITE_VERSION:
        raise field_error(BenchmarkError, "version", version, f"this xnet-gym reads suite version {SUITE_VERSION}")
    tables = data.get("tracks")
    if not isinstance(tables, list) or not tables:
        raise field_error(BenchmarkError, "tracks", tables, "must be a non-empty array of tables ([[tracks]])")
    tracks: dict[str, Track] = {}
    for i, table in enumerate(tables):
        track = _track(table, i, path.parent, set(tracks))
        tracks[track.name] = track
    return Suite(version, path, tracks)


# ---------------------------------------------------------------------------------- hashing
def _ns(values: np.ndarray) -> np.ndarray:
    """Seconds rounded to integer nanoseconds (infinite padding kept distinct)."""
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(v), np.round(v * 1e9), -1.0).astype(np.int64)


def problem_digest(problem) -> bytes:
    """The bytes of one instance that the suite's hash covers (see the module docstring)."""
    b, i = problem.batch, problem.first
    parts = [np.asarray(b.layers[i : i + 1], np.int64), np.asarray(problem.gateways, np.int64),
             np.asarray(b.candidates[i], np.int64), np.asarray(b.time_steps[i], np.int64),
             np.asarray(b.sets[i], np.int64), np.asarray(b.counts[i], np.int64),
             _ns(b.leg_cost_s[i]), _ns(b.candidate_time_s[i]), _ns(np.array([problem.reference_s]))]
    return arrays_digest(parts)


def arrays_digest(parts) -> bytes:
    """SHA-256 of arrays, each with its shape, so that no two lists of arrays collide."""
    h = hashlib.sha256()
    for p in parts:
        h.update(np.asarray(p.shape, np.int64).tobytes())
        h.update(np.ascontiguousarray(p).tobytes())
    return h.digest()


def digests_sha256(items, digest) -> str:
    """The hex SHA-256 of `digest(item)` over the items, in order: a track's hash."""
    h = hashlib.sha256()
    for item in items:
        h.update(digest(item))
    return h.hexdigest()


def instances_sha256(problems) -> str:
    return digests_sha256(problems, problem_digest)


def track_sha256(track: Track, limit: int | None = None) -> str:
    """The hash of a track's instances (its first `limit`), whatever its env."""
    if track.env == REPLACE_ENV:
        from .replace_track import episodes_sha256, track_episodes
        envs, episodes = track_episodes(track, limit)
        envs.close()
        return episodes_sha256(episodes)
    return instances_sha256(track.problems(limit))


def check_instances(track: Track, problems) -> str:
    """The hash of `problems`; an error if the suite records another one for the track."""
    return check_instances_digest(track, instances_sha256(problems), len(problems))


def check_instances_digest(track: Track, digest: str, n_instances: int) -> str:
    """`digest`, or an error if the suite records another one for the track's full set of instances."""
    if track.instances_sha256 is not None and n_instances == len(track.seeds) and digest != track.instances_sha256:
        raise field_error(BenchmarkError, f"track {track.name}: instances_sha256", track.instances_sha256,
                          f"does not match the instances built here ({digest}): the scenario, its data or the "
                          "generator changed, so scores would not be comparable with the leaderboard's")
    return digest
