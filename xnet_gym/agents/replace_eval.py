"""Re-placement policies on the same held-out episodes of ExpertReplace-v0, one table.

A policy is a re-placement baseline (`static`, `static:fit=pooled`, `periodic-resolve`,
with parameters as `periodic-resolve:history_tokens=1024,polish=true`, `oracle`), an env
player (`greedy`: steepest descent on the history within the budget; `lookahead`: the same on
the coming window's true routing, a privileged reference) or a model zip saved by `xnet-gym
train`. Episode i is what the env draws on `reset(seed=seeds[i])` with `split="test"`; the
baselines solve that same `ReplaceEpisode`, and every window is scored by its `serve`.
`xnet-gym replace` and the benchmark's re-placement tracks both run through `run_policies`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from xnet_gym.errors import XnetError, field_error

ENV_ID = "xnet_gym/ExpertReplace-v0"
PLAYERS = ("greedy", "lookahead")


def _param(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_replacer(spec: str):
    """`name` or `name:key=value,key=value` -> a re-placement baseline."""
    from xnet_gym.baselines.replacement import get_replacer

    name, _, rest = spec.partition(":")
    params = {}
    for part in filter(None, rest.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise field_error(XnetError, "--policy", spec, "parameters are key=value, comma-separated")
        params[key] = _param(value)
    return get_replacer(name, **params)


class BaselinePolicy:
    kind = "baseline"

    def __init__(self, spec: str):
        self.name, self.replacer = spec, parse_replacer(spec)

    def run(self, envs, episode, seed: int) -> list:
        from xnet_gym.baselines.replacement import score_run
        return score_run(episode, self.replacer.solve(episode))


class EnvPolicy:
    """Plays the env: a player method, or a model's deterministic masked action."""

    def __init__(self, spec: str):
        self.name = spec
        self.model = None
        self.kind = "player"
        if spec not in PLAYERS:
            from .players import load_model
            self.model, self.algo, _ = load_model(Path(spec))
            self.kind = "learned"

    @property
    def gain_observation(self) -> bool:
        return bool(self.model is not None and "action_gain" in self.model.observation_space.spaces)

    def act(self, env, obs) -> int:
        u = env.unwrapped
        if self.model is None:
            return getattr(u, f"{self.name}_action")()
        action, _ = self.model.predict(obs, deterministic=True, action_masks=u.action_masks())
        return int(action)

    def run(self, envs, episode, seed: int) -> list:
        env = envs(self.gain_observation)
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, done, _, _ = env.step(self.act(env, obs))
        return env.unwrapped.scores


def parse_replace_policy(spec: str):
    if spec in PLAYERS or spec.endswith(".zip"):
        return EnvPolicy(spec)
    return BaselinePolicy(spec)


class HeldOutEnvs:
    """The held-out envs of a scenario, with and without the gain observation, built once."""

    def __init__(self, scenario: str, env_kwargs: dict | None = None):
        self.scenario, self.kwargs = scenario, dict(env_kwargs or {})
        self._envs: dict[bool, object] = {}

    def __call__(self, gain: bool = False):
        import gymnasium as gym

        import xnet_gym  # noqa: F401  (registers the envs)
        if gain not in self._envs:
            self._envs[gain] = gym.make(ENV_ID, scenario=self.scenario, split="test", gain_observation=gain,
                                        **self.kwargs)
        return self._envs[gain]

    def episode(self, seed: int):
        env = self(False)
        env.reset(seed=seed)
        return env.unwrapped.episode

    def close(self) -> None:
        for env in self._envs.values():
            env.close()  # type: ignore[attr-defined]


def run_policies(envs: HeldOutEnvs, policies: list, seeds, log=print) -> tuple[list, dict, dict]:
    """(episodes, {name: [window scores per episode]}, {name: seconds per episode}) for every
    policy on the episodes of `seeds`."""
    seeds = list(seeds)
    episodes = [envs.episode(s) for s in seeds]
    scores: dict[str, list] = {}
    seconds: dict[str, np.ndarray] = {}
    for pol in policies:
        wall = np.empty(len(seeds))
        runs = []
        for i, (seed, ep) in enumerate(zip(seeds, episodes)):
            t = time.perf_counter()
            runs.append(pol.run(envs, ep, seed))
            wall[i] = time.perf_counter() - t
        scores[pol.name], seconds[pol.name] = runs, wall
        ratio = np.array([np.mean([s.ratio for s in run]) for run in runs])
        log(f"  {pol.name:<48} geomean {math.exp(np.mean(np.log(ratio))):.4f}  worst {ratio.max():.4f}  "
            f"moved {np.mean([s.moved for run in runs for s in run]):.1f}/window  {wall.mean():.2f} s/episode")
    return episodes, scores, seconds


def evaluate_replace(scenario: str, policies: list[str], seeds, env_kwargs: dict | None = None,
                     log=print) -> list[dict]:
    """One row per policy: each episode's mean ratio to the per-window closed form, their
    geomean and worst, the experts and bytes moved per window, and seconds per episode."""
    parsed = [parse_replace_policy(spec) for spec in policies]       # bad specs fail before any work
    envs = HeldOutEnvs(scenario, env_kwargs)
    try:
        _, results, seconds = run_policies(envs, parsed, seeds, log)
    finally:
        envs.close()
    rows = []
    for spec, runs in results.items():
        ratio = np.array([np.mean([s.ratio for s in run]) for run in runs])
        flat = [s for run in runs for s in run]
        rows.append({"policy": spec, "episodes": len(runs),
                     "geomean_ratio": float(math.exp(np.mean(np.log(ratio)))),
                     "worst_episode_ratio": float(ratio.max()), "best_episode_ratio": float(ratio.min()),
                     "experts_moved_per_window": float(np.mean([s.moved for s in flat])),
                     "mbytes_per_window": float(np.mean([s.bytes for s in flat])) / 1e6,
                     "link_mbytes_per_window": float(np.mean([s.link_bytes for s in flat])) / 1e6,
                     "s_per_episode": float(seconds[spec].mean()), "episode_ratios": ratio.tolist()})
    return rows
