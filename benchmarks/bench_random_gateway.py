"""Random-gateway resets: time per reset and memory over many resets.

    python benchmarks/bench_random_gateway.py [RESETS]

ExpertPlacement-v0 on `paper` with `layer_strategy="random-gateway"` and
`train_time_steps=16`: every reset draws new gateways, so its shortest paths cannot come from
a cache. Targets: <= 10 ms per reset, and resident memory flat over 10,000 resets.
"""

from __future__ import annotations

import sys
import time

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * 4096 / 1e6


def main(resets: int = 10_000) -> None:
    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="paper", train_time_steps=16,
                   layer_strategy="random-gateway")
    env.reset(seed=0)
    times, memory = [], [(0, rss_mb())]
    for i in range(1, resets + 1):
        t0 = time.perf_counter()
        env.reset()
        times.append(time.perf_counter() - t0)
        if i % (resets // 10) == 0:
            memory.append((i, rss_mb()))
    ms = np.asarray(times) * 1e3
    print(f"random-gateway reset on paper, train_time_steps=16, {resets} resets")
    print(f"time per reset: median {np.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms, "
          f"max {ms.max():.1f} ms (target <= 10 ms)")
    print("resident memory (MB) after N resets: " + ", ".join(f"{n}: {m:.0f}" for n, m in memory))
    growth = memory[-1][1] - memory[1][1]
    print(f"growth from reset {memory[1][0]} to {memory[-1][0]}: {growth:+.1f} MB (target: flat)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
