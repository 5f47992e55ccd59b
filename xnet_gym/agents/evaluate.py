"""Score policies on the same held-out instances, through the env's one objective.

Held-out instances are env resets with seeds EVAL_SEED_BASE + 1000 * seed + i, far from the
training seeds (seed .. seed + n_envs - 1, then unseeded auto-resets), and on all of the
scenario's time steps. Every policy sees the same instances.
"""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401  (registers the env ids)
from xnet_gym import baselines
from xnet_gym.atomic import atomic_write
from xnet_gym.baselines.env_adapter import SolverPlayer, score_on_episode
from xnet_gym.envs import scoring
from xnet_gym.envs.capabilities import capabilities_of

from .players import AnalyticPlayer, GreedyPlayer, LearnedPlayer, RandomPlayer, needs_cheapest_free_wrapper
from .wrappers import CheapestFreeAction

EVAL_SEED_BASE = 1_000_000_000


def eval_seeds(seed: int, episodes: int) -> list[int]:
    return [EVAL_SEED_BASE + 1000 * seed + i for i in range(episodes)]


class EpisodeSolverPlayer(SolverPlayer):
    """A solver set up afresh for each episode: its budget, its seed, and only the episode's
    layer where it can search a subset."""

    def __init__(self, name: str, seed: int = 0, budget_s: float | None = None):
        super().__init__(baselines.get(name))
        self.spec = (name, budget_s, seed)

    def solver_for(self, env):
        name, budget_s, seed = self.spec
        problem = env.unwrapped.problem
        layer = int(problem.batch.layers[problem.first]) if problem.scope == "stage" else None
        return baselines.for_layer(name, layer, seed, budget_s)

    def start(self, env):
        self.solver = self.solver_for(env)
        return super().start(env)


def make_player(spec: str, seed: int = 0, name: str | None = None, budget_s: float | None = None):
    """'analytic' | 'random' | 'greedy' (ExpertRefine-v0) | a baseline solver name | a path to a trained .zip."""
    low = spec.lower()
    if low == "analytic":
        return AnalyticPlayer()
    if low == "random":
        return RandomPlayer(seed)
    if low == "greedy":
        return GreedyPlayer()
    if low in {k.lower() for k in baselines.SOLVERS}:
        return EpisodeSolverPlayer(spec, seed, budget_s)
    if low.endswith(".zip") or os.sep in spec:
        return LearnedPlayer(spec, name=name or "learned")
    from xnet_gym.errors import XnetError, field_error
    raise field_error(XnetError, "--policy", spec,
                      f"allowed: analytic, random, greedy, {', '.join(s.lower() for s in baselines.SOLVERS)}, "
                      "or a .zip path")


def best_known_latencies(env_id: str, env_kwargs: dict, episodes: int, seed: int, solver: str,
                         budget_s: float | None) -> tuple[np.ndarray, float]:
    """The solver's latency on each held-out instance (the same instances every policy sees),
    scored by the env's objective, and its mean solve time per instance."""
    env = gym.make(env_id, **env_kwargs)
    latencies, t0 = [], time.perf_counter()
    if solver.lower() == "steepest-descent":
        # Deterministic and budget-free: all instances descend together (the same placements).
        problems = []
        for s in eval_seeds(seed, episodes):
            env.reset(seed=s)
            problems.append(env.unwrapped.problem)  # type: ignore[attr-defined]
        layers = [[int(p.batch.layers[p.first])] if p.scope == "stage" else None for p in problems]
        placements = baselines.SteepestDescent().solve_many([p.instance for p in problems], layers_each=layers)
        latencies = [scoring.objective_s(p, placement) for p, placement in zip(problems, placements)]
        env.close()
        return np.asarray(latencies), (time.perf_counter() - t0) / episodes
    for s in eval_seeds(seed, episodes):
        env.reset(seed=s)
        problem = env.unwrapped.problem  # type: ignore[attr-defined]
        layer = int(problem.batch.layers[problem.first]) if problem.scope == "stage" else None
        placement = baselines.for_layer(solver, layer, seed, budget_s).solve(problem.instance)
        latencies.append(score_on_episode(env, placement)[0])
    env.close()
    return np.asarray(latencies), (time.perf_counter() - t0) / episodes


def _for_env(player, env):
    """Solvers play ExpertRefine-v0 by walking to their placement (baselines.refine_adapter)."""
    if isinstance(player, EpisodeSolverPlayer) and capabilities_of(env).refinement:
        from xnet_gym.baselines.refine_adapter import RefineSolverPlayer
        return RefineSolverPlayer(player.solver, solver_for=player.solver_for, name=player.name)
    return player


def evaluate_player(player, env_id: str, env_kwargs: dict, episodes: int, seed: int,
                    best_known_s: np.ndarray | None = None) -> dict:
    env = gym.make(env_id, **env_kwargs)
    if needs_cheapest_free_wrapper(player):
        env = CheapestFreeAction(env)
    if isinstance(player, LearnedPlayer):
        player.check(env)
    player = _for_env(player, env)
    latencies, refs, t0 = [], [], time.perf_counter()
    for s in eval_seeds(seed, episodes):
        obs, _ = env.reset(seed=s)
        placement = player.start(env)
        if placement is not None and not player.plays_through_env(placement,
                                                                  env.unwrapped.problem):  # type: ignore[attr-defined]
            lat, ref = score_on_episode(env, placement)
        else:
            done = False
            while not done:
                obs, _, done, _, info = env.step(player.act(env, obs))
            # ExpertRefine-v0 scores the best placement of the episode.
            lat, ref = info.get("best_latency_s", info["latency_s"]), info["analytic_latency_s"]
        latencies.append(lat)
        refs.append(ref)
    wall = time.perf_counter() - t0
    env.close()
    ratio = np.asarray(latencies) / np.asarray(refs)
    row = {
        "policy": getattr(player, "name", "policy"),
        "episodes": episodes,
        "mean_latency_s": float(np.mean(latencies)),
        "mean_analytic_latency_s": float(np.mean(refs)),
        "geomean_ratio_to_analytic": float(math.exp(np.mean(np.log(ratio)))),
        "win_rate_vs_analytic": float(np.mean(ratio < 1.0 - 1e-9)),
        "best_ratio": float(ratio.min()),
        "worst_ratio": float(ratio.max()),
        "wall_time_s": wall,
        "inference_s_per_instance": wall / episodes,
        "ratios": ratio.tolist(),
    }
    if best_known_s is not None:
        to_best = np.asarray(latencies) / best_known_s
        row["geomean_ratio_to_best_known"] = float(math.exp(np.mean(np.log(to_best))))
    return row


def format_results(rows: list[dict], objective_label: str = "") -> str:
    best = any("geomean_ratio_to_best_known" in r for r in rows)
    w = max([16, *(len(r["policy"]) + 2 for r in rows)])
    head = (f"{'policy':<{w}}{'mean latency s':>16}{'geomean x analytic':>20}"
            + (f"{'x best known':>14}" if best else "")
            + f"{'win rate':>10}{'best':>8}{'worst':>8}{'s/instance':>12}")
    lines = ([objective_label] if objective_label else []) + [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['policy']:<{w}}{r['mean_latency_s']:>16.6f}{r['geomean_ratio_to_analytic']:>20.4f}"
                     + (f"{r.get('geomean_ratio_to_best_known', float('nan')):>14.4f}" if best else "")
                     + f"{100 * r['win_rate_vs_analytic']:>9.0f}%{r['best_ratio']:>8.3f}{r['worst_ratio']:>8.3f}"
                     f"{r['inference_s_per_instance']:>12.4f}")
    return "\n".join(lines)


def write_csv(rows: list[dict], path) -> None:
    keys = [k for k in rows[0] if k != "ratios"]

    def write(tmp):
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)

    atomic_write(path, write)


def smoothed_curve(steps: np.ndarray, ratio: np.ndarray, window: int = 50, points: int = 400):
    """Episodes that end at the same timestep averaged, then a moving mean, at most `points`."""
    steps_u, inverse = np.unique(steps, return_inverse=True)
    mean = np.bincount(inverse, weights=ratio) / np.bincount(inverse)
    window = min(window, len(steps_u))
    smooth = np.convolve(mean, np.ones(window) / window, mode="valid")
    steps_u = steps_u[window - 1:]
    keep = np.unique(np.linspace(0, len(steps_u) - 1, min(points, len(steps_u))).astype(int))
    return steps_u[keep], smooth[keep]


def write_plot(rows: list[dict], path, curve_csv=None) -> None:
    from xnet_gym.show import canvas

    curve = None
    if curve_csv and Path(curve_csv).is_file():
        data = np.atleast_1d(np.genfromtxt(curve_csv, delimiter=",", names=True))
        if data.size > 1:
            curve = smoothed_curve(data["timesteps"], data["ratio_to_analytic"])
    fig = canvas.figure(11 if curve is not None else 6, 4, dpi=90)
    axes = np.atleast_1d(fig.subplots(1, 2 if curve is not None else 1))
    names = [r["policy"] for r in rows]
    axes[0].bar(names, [r["geomean_ratio_to_analytic"] for r in rows], color="tab:blue")
    axes[0].axhline(1.0, color="k", ls="--", lw=1, label="analytic")
    axes[0].set_ylabel("geomean latency / analytic")
    axes[0].tick_params(axis="x", rotation=30)
    axes[0].legend()
    if curve is not None:
        axes[1].plot(curve[0], curve[1], label="learned (training episodes, moving mean)")
        axes[1].axhline(1.0, color="k", ls="--", lw=1, label="analytic")
        axes[1].set_xlabel("timesteps")
        axes[1].set_ylabel("latency / analytic")
        axes[1].legend()
    fig.tight_layout()
    canvas.save_png(fig, path)
