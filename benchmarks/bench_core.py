"""Core performance figures (issue: core). Run: python benchmarks/bench_core.py

Prints wall times (median of repeats) for building the `paper` scenario, one exact
evaluation, and a 100 x 100 delta shell built and placed analytically.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

from xnet_gym import baselines
from xnet_gym.analytic import analytic_placement
from xnet_gym.constellation import WalkerSpec
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate
from xnet_gym.scenario import EvaluationSpec, load_scenario


def timed(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out

def main():
    t_build, inst = timed(lambda: build_instance("paper"), 3)
    t_first, placement = timed(lambda: analytic_placement(build_instance("paper")), 3)
    print(f"paper, 200 time steps: build (geometry, links, trace)              {t_build:8.3f} s")
    print(f"paper, 200 time steps: build + shortest paths + analytic placement  {t_first:8.3f} s   (target <= 5 s)")
    placement = analytic_placement(inst)
    evaluate(inst, placement)
    t_eval, rep = timed(lambda: evaluate(inst, placement), 20)
    print(f"evaluate full model, max, {len(inst.time_steps)} time steps, {inst.trace.n_tokens} tokens (paths cached)"
          f" {1e3 * t_eval:8.2f} ms  (target <= 100 ms); latency {rep.latency_s:.4f} s/token")
    rand = [baselines.RandPlace(seed=s).solve(inst) for s in range(3)]
    t_cold = statistics.median([timed(lambda p=p: evaluate(inst, p), 1)[0] for p in rand])
    print(f"evaluate a RandPlace placement incl. its 32-source shortest paths  {1e3 * t_cold:8.1f} ms")

    sc = load_scenario("paper")
    big = dataclasses.replace(sc, constellation=WalkerSpec("delta", 100, 100, 550.0, 53.0, 1),
                              evaluation=EvaluationSpec(time_steps=1))

    def big_run():
        i = build_instance(big)
        return evaluate(i, analytic_placement(i))

    t_big, rep_big = timed(big_run, 3)
    print(f"100 x 100 delta, 1 time step: build + analytic placement + evaluate   {t_big:8.3f} s   (target <= 2 s);"
          f" latency {rep_big.latency_s:.4f} s/token")

if __name__ == "__main__":
    main()
