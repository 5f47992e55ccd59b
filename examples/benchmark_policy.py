"""Two placement methods written as plain Python functions, ready for `xnet-gym benchmark`.

    xnet-gym benchmark --quick --policy examples/benchmark_policy.py:unblock_bottlenecks \
        examples/benchmark_policy.py:cheapest_free --baselines
    xnet-gym benchmark --policy examples/benchmark_policy.py:unblock_bottlenecks      # the full suite

The benchmark tells the two routes apart by the first parameter's name:

- `unblock_bottlenecks(instance, layer) -> Placement` maps an instance to a placement. It
  starts from the paper's closed form and, for the expert that is most often the slowest of
  its active set (the one the `max` waits for), makes the best improving swap with any other
  expert; then the next such expert, for at most E rounds. The closed form ranks experts
  alone; this is the cheapest repair of what it misses when experts fire together.
- `cheapest_free(obs) -> action` plays the track's env (`ExpertPlacement-v0`) one expert at
  a time: it puts the current expert on the cheapest candidate with a free seat, whatever
  the expert's popularity (so it should lose to the closed form: the benchmark says by how
  much).

Run this file directly to score both on the quick tracks from Python.
"""

from __future__ import annotations

import numpy as np

from xnet_gym.analytic import analytic_placement
from xnet_gym.moves import LayerMoves
from xnet_gym.placement import Placement


def unblock_bottlenecks(instance, layer: int) -> Placement:
    placement = analytic_placement(instance)
    moves = LayerMoves.for_layer(instance, placement, layer)
    tried: set[int] = set()
    for _ in range(moves.n_experts):
        share = moves.bottleneck_share()
        share[list(tried)] = -1.0
        x = int(np.argmax(share))
        if share[x] <= 0.0:
            break
        tried.add(x)
        after = [(moves.swap_latency_s(x, y), y) for y in range(moves.n_experts) if moves.can_swap(x, y)]
        if after:
            best_s, y = min(after)
            if best_s < moves.total_s * (1.0 - 1e-12):
                moves.swap(x, y)
    return placement.with_layer(layer, moves.candidates[moves.assignment])


def cheapest_free(obs) -> int:
    cost = np.where(obs["action_mask"] > 0, obs["candidate_cost"], np.inf)
    return int(np.argmin(cost))


if __name__ == "__main__":
    from xnet_gym.benchmark import callable_policy, load_suite
    from xnet_gym.benchmark.runner import run_track

    mine = [callable_policy(unblock_bottlenecks), callable_policy(cheapest_free)]
    for track in load_suite().select(quick=True):
        result = run_track(track, ["steepest-descent", *mine], log=lambda line: None)
        for row in result.rows():
            print(f"{track.name:<16} {row['policy']:<20} {row['geomean_x_closed_form']:.4f} x closed form, "
                  f"{row['s_per_instance'] * 1e3:.1f} ms per instance")
