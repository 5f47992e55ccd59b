"""The whole refinement neighbourhood scored at once, against one action at a time.
Run: python benchmarks/bench_neighbourhood.py

For ExpertRefine-v0 on the real-routing presets (512 tokens), from the closed form: the
time of `action_latencies_s()` (every move and swap, `LayerMoves.neighbourhood_latency_s`:
what the gain observation and `greedy_action()` cost per step) against `action_latency_s(a)`
over every valid action (the incremental rescoring local search uses, one action per call),
in the same run, and the largest relative difference between the two. The per-action loop
is timed on a sample of the valid actions and scaled to all of them.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401

ROUNDS = 5
SAMPLE = 400


def best_of(fn, rounds=ROUNDS) -> float:
    best = np.inf
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    rows = []
    for scenario in ("deepseek-esft-packed", "deepseek-esft"):
        for time_steps in (8, 24):
            env = gym.make("xnet_gym/ExpertRefine-v0", scenario=scenario, tokens=512, time_steps=time_steps).unwrapped
            env.reset(seed=0)
            valid = np.flatnonzero(env.action_masks()[:-1])
            sample = np.random.default_rng(0).choice(valid, min(SAMPLE, len(valid)), replace=False)

            def whole():
                env._latencies = None           # score afresh, as after a step
                return env.action_latencies_s()

            def one_by_one():
                return [env.action_latency_s(int(a)) for a in sample]

            t_whole = best_of(whole)
            t_each = best_of(one_by_one, 2) * len(valid) / len(sample)
            exact = np.array(one_by_one())
            err = float(np.max(np.abs(whole()[sample] - exact) / exact))
            rows.append((scenario, time_steps, len(valid), t_whole, t_each, err))
    print(f"{'scenario':<22}{'time steps':>11}{'valid actions':>15}{'all at once ms':>16}"
          f"{'one by one ms':>15}{'speed-up':>10}{'max rel diff':>14}")
    for scenario, n_t, n_valid, t_whole, t_each, err in rows:
        print(f"{scenario:<22}{n_t:>11}{n_valid:>15}{t_whole * 1e3:>16.1f}{t_each * 1e3:>15.0f}"
              f"{t_each / t_whole:>9.0f}x{err:>14.1e}")


if __name__ == "__main__":
    main()
