"""Where the batched env's time goes. Run: python benchmarks/bench_vector_breakdown.py [--envs 8192]

One batch of N `paper` episodes (`train_time_steps=16`), phase by phase, single-threaded
(`prefetch=False`), each phase the best of 5: the draws and the deterministic work of a reset,
the observation tables, the E - 1 ordinary steps, the last step (which scores every episode
exactly) and the autoreset. With prefetch, the reset's draw and tables run on a worker
thread while the steps run, so a batch costs about max(reset, steps) on 2 cores, plus what
the two threads take from each other's memory bandwidth.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from xnet_gym.activation import zipf_layer_sets
from xnet_gym.envs import ExpertPlacementVectorEnv
from xnet_gym.envs.problem import build_rows
from xnet_gym.envs.scoring import stage_latency_of_index


def best_ms(fn, repeat=5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=8192)
    n = parser.parse_args().envs
    venv = ExpertPlacementVectorEnv(n, scenario="paper", train_time_steps=16, prefetch=False)
    venv.reset(seed=0)
    g, spec, rng = venv.generator, venv.spec_, np.random.default_rng(0)
    a = g.base.scenario.activation
    layers = rng.integers(spec.n_layers, size=n)
    steps = g._time_step_subsets(rng, n)
    sets, counts = zipf_layer_sets(spec.n_experts, spec.top_k, g._profile_tokens, a.alpha, rng, size=n)
    tables, columns = g._tables(g.base.layout.central_gateways, layers, steps)
    rows = build_rows(spec, layers, tables, steps, sets, counts, score_stages=False, time_steps_are_columns=columns)
    E = spec.n_experts
    actions = np.random.default_rng(1).integers(spec.n_candidates_max, size=(E, n))

    def ordinary_steps():
        venv._start()
        for t in range(E - 1):
            venv.step(actions[t])

    phases = [
        ("reset: zipf profiles (multinomial over the top-k sets)",
         lambda: zipf_layer_sets(spec.n_experts, spec.top_k, g._profile_tokens, a.alpha, rng, size=n)),
        ("reset: time-step subsets", lambda: g._time_step_subsets(rng, n)),
        ("reset: leg-cost gather from the cached tables", lambda: g._tables(g.base.layout.central_gateways, layers,
                                                                            steps)),
        ("reset: stage costs, probabilities, sort-match", lambda: build_rows(
            spec, layers, tables, steps, sets, counts, score_stages=False, time_steps_are_columns=columns)),
        ("reset: the closed form's exact latency (evaluator)",
         lambda: stage_latency_of_index(rows, rows.analytic_index, spec)),
        ("reset: observation tables", lambda: venv._features.tables(rows, spec)),
    ]
    parts = [(label, best_ms(fn)) for label, fn in phases]
    reset_ms = best_ms(lambda: venv._start())                 # all of the above, plus the episode state
    steps_ms = best_ms(ordinary_steps) - reset_ms
    venv._start()
    for t in range(E - 1):
        venv.step(actions[t])
    t0 = time.perf_counter()
    venv.step(actions[E - 1])
    last_ms = (time.perf_counter() - t0) * 1000
    print(f"one batch of {n} paper episodes ({n * (E + 1)} steps with the autoreset step), single thread")
    for label, ms in [*parts, ("reset in all (the parts above and the episode state)", reset_ms),
                      (f"{E - 1} ordinary steps", steps_ms), ("last step: every episode scored exactly", last_ms)]:
        print(f"{label:<66}{ms:>9.1f} ms{ms / n * 1000:>9.2f} us/episode")
    total = reset_ms + steps_ms + last_ms
    print(f"{'reset + steps':<66}{total:>9.1f} ms{total / n * 1000:>9.2f} us/episode  "
          f"-> {n * (E + 1) / total * 1000:,.0f} steps/s on one thread")


if __name__ == "__main__":
    main()
