"""Re-placement policies on the same held-out episodes of ExpertReplace-v0, one table.

A policy is a re-placement baseline (`static`, `static-pooled`, `periodic-resolve`, with
parameters as `periodic-resolve:history_tokens=1024,polish=true`, `oracle`), an env player
(`greedy`: steepest descent on the history within the budget; `lookahead`: the same on the
coming window's true routing, a privileged reference) or a model zip saved by `xnet-gym
train`. Episode i is what the env draws on `reset(seed=seeds[i])` with `split="test"`; the
baselines solve that same `ReplaceEpisode`, and every window is scored by its `serve`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from xnet_gym.errors import XnetError, field_error

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


class _EnvPolicy:
    """Plays the env: a player method or a model's deterministic masked action."""

    def __init__(self, spec: str):
        self.spec = spec
        self.model = None
        if spec not in PLAYERS:
            from .players import load_model
            self.model, self.algo, _ = load_model(Path(spec))

    def act(self, env, obs) -> int:
        u = env.unwrapped
        if self.model is None:
            return getattr(u, f"{self.spec}_action")()
        action, _ = self.model.predict(obs, deterministic=True, action_masks=u.action_masks())
        return int(action)


def evaluate_replace(scenario: str, policies: list[str], seeds, env_kwargs: dict | None = None,
                     log=print) -> list[dict]:
    """One row per policy: each episode's mean ratio to the per-window closed form, their
    geomean and worst, the experts and bytes moved per window, and seconds per episode."""
    import gymnasium as gym

    import xnet_gym  # noqa: F401  (registers the envs)
    from xnet_gym.baselines.replacement import score_run

    seeds = list(seeds)
    kinds = {}
    for spec in policies:                 # bad specs fail before any work
        if spec in PLAYERS or spec.endswith(".zip"):
            kinds[spec] = "env"
        else:
            parse_replacer(spec)
            kinds[spec] = "baseline"
    plain = {k: v for k, v in (env_kwargs or {}).items() if k != "gain_observation"}
    envs = {False: gym.make("xnet_gym/ExpertReplace-v0", scenario=scenario, split="test", **plain)}
    results: dict[str, list] = {p: [] for p in policies}
    seconds = dict.fromkeys(policies, 0.0)
    env_policies = {p: _EnvPolicy(p) for p in policies if kinds[p] == "env"}
    for seed in seeds:
        envs[False].reset(seed=seed)
        episode = envs[False].unwrapped.episode  # type: ignore[attr-defined]
        for spec in policies:
            t = time.perf_counter()
            if kinds[spec] == "baseline":
                scores = score_run(episode, parse_replacer(spec).solve(episode))
            else:
                pol = env_policies[spec]
                gain = bool(pol.model is not None and "action_gain" in pol.model.observation_space.spaces)
                if gain not in envs:
                    envs[gain] = gym.make("xnet_gym/ExpertReplace-v0", scenario=scenario, split="test",
                                          gain_observation=gain, **plain)
                env = envs[gain]
                obs, _ = env.reset(seed=seed)
                done = False
                while not done:
                    obs, _, done, _, _ = env.step(pol.act(env, obs))
                scores = env.unwrapped.scores  # type: ignore[attr-defined]
            seconds[spec] += time.perf_counter() - t
            results[spec].append(scores)
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
                     "s_per_episode": seconds[spec] / len(runs), "episode_ratios": ratio.tolist()})
        log(f"  {spec:<48} geomean {rows[-1]['geomean_ratio']:.4f}  worst {ratio.max():.4f}  "
            f"moved {rows[-1]['experts_moved_per_window']:.1f}/window  {rows[-1]['s_per_episode']:.2f} s/episode")
    for env in envs.values():
        env.close()
    return rows
