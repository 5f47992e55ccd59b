"""The whole refinement neighbourhood scored at once, against one action at a time.
Run: python benchmarks/bench_neighbourhood.py

For an ExpertRefine-v0 episode on each real-routing preset (512 tokens), from the closed
form: the time of `LayerMoves.neighbourhood_latency_s()` (every move and swap at once: what
the gain observation and `greedy_action()` cost per step) against `move_latency_s` /
`swap_latency_s` over every valid action (the incremental rescoring local search uses, one
action per call), in the same run, and the largest relative difference between the two. The per-action loop
is timed on a sample of the valid actions and scaled to all of them.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401
from xnet_gym.envs import scoring
from xnet_gym.moves import LayerMoves

ROUNDS = 5
SAMPLE = 400


def best_of(fn, rounds=ROUNDS) -> float:
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(moves: LayerMoves, actions: list[tuple[str, int, int]], n_valid: int) -> tuple[float, float, float]:
    """(all at once s, one by one s scaled to every valid action, largest relative difference)."""
    def one_by_one():
        return np.array([moves.move_latency_s(x, y) if kind == "move" else moves.swap_latency_s(x, y)
                         for kind, x, y in actions])

    t_whole = best_of(moves.neighbourhood_latency_s)
    t_each = best_of(one_by_one, 2) * n_valid / len(actions)
    move_s, swap_s = moves.neighbourhood_latency_s()
    whole = np.array([move_s[x, y] if kind == "move" else swap_s[x, y] for kind, x, y in actions])
    exact = one_by_one()
    return t_whole, t_each, float(np.max(np.abs(whole - exact) / exact))


def main() -> None:
    rows = []
    for scenario in ("deepseek-esft-packed", "deepseek-esft"):
        for time_steps in (8, 24):
            env = gym.make("xnet_gym/ExpertRefine-v0", scenario=scenario, tokens=512, time_steps=time_steps).unwrapped
            env.reset(seed=0)
            moves = scoring.layer_moves(env.problem, env.assignment)
            valid = np.flatnonzero(env.action_masks()[:-1])
            sample = np.random.default_rng(0).choice(valid, min(SAMPLE, len(valid)), replace=False)
            actions = [env.decode(int(a)) for a in sample]
            rows.append((scenario, time_steps, len(valid), *measure(moves, actions, len(valid))))
    print(f"{'scenario':<22}{'time steps':>11}{'valid actions':>15}{'all at once ms':>16}"
          f"{'one by one ms':>15}{'speed-up':>10}{'max rel diff':>14}")
    for scenario, n_t, n_valid, t_whole, t_each, err in rows:
        print(f"{scenario:<22}{n_t:>11}{n_valid:>15}{t_whole * 1e3:>16.1f}{t_each * 1e3:>15.0f}"
              f"{t_each / t_whole:>9.0f}x{err:>14.1e}")


if __name__ == "__main__":
    main()
