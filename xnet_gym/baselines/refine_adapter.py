"""Play search baselines through `ExpertRefine-v0`, using only its public interface.

- `HillClimbPlayer`: local search's climb, action by action: in local search's order (for
  each expert a, its swaps with b > a, then its moves in candidate order) it takes every
  action whose exact latency (`env.unwrapped.action_latency_s`) improves on the current one,
  and stops after a pass with none. Played from the closed form with enough `max_moves`, it
  lands on `LocalSearch(layers=[l]).solve(...)`'s placement of the episode's layer.
- `RefineSolverPlayer`: any `solve(instance) -> Placement` solver (e.g. `Anneal`); it solves
  the episode's instance from the env's start, then walks there in at most E actions (a move
  where the target candidate has a free seat, else a swap with a misplaced expert on it),
  then stops. The env keeps the best placement on the way, so its score is at most the
  solver's, and equal when no intermediate placement is better.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from xnet_gym.errors import PlacementError


class HillClimbPlayer:
    name = "hill-climb"

    def start(self, env) -> None:
        self._actions = self._climb(env.unwrapped)

    def act(self, env, obs) -> int:
        return next(self._actions)

    @staticmethod
    def _climb(u) -> Iterator[int]:
        E, C = u.n_experts, u.n_candidates_max
        improved = True
        while improved:
            improved = False
            for a in range(E):
                for action in [u.swap_action(a, b) for b in range(a + 1, E)] + [u.move_action(a, c) for c in range(C)]:
                    if u.action_masks()[action] and u.action_latency_s(action) < u.latency_s - 1e-15:
                        improved = True
                        yield action
        while True:
            yield u.stop_action


class RefineSolverPlayer:
    """`solver_for(env)`, if given, makes the solver afresh for each episode (a budget, the
    episode's layer)."""

    def __init__(self, solver, solver_for=None, name: str | None = None):
        self.solver = solver
        self.solver_for = solver_for
        self.name = name or getattr(solver, "name", type(solver).__name__)

    def start(self, env) -> None:
        if self.solver_for is not None:
            self.solver = self.solver_for(env)
        u = env.unwrapped
        problem = u.problem
        layer = int(problem.batch.layers[problem.first])
        start = u.placement
        self.solver.start = start
        solved = self.solver.solve(problem.instance)
        if not np.array_equal(solved.gateways, problem.gateways):
            raise PlacementError(f"{self.name} moves the gateways; ExpertRefine-v0 keeps the episode's, so its "
                             f"placement cannot be walked to (score it on ExpertPlacement-v0 instead)")
        target_sats = solved.experts[layer]
        cand = problem.batch.candidates[problem.first, : problem.batch.n_candidates[problem.first]]
        self.target = np.searchsorted(cand, target_sats)
        self._actions = self._walk(u)

    def act(self, env, obs) -> int:
        return next(self._actions)

    def _walk(self, u) -> Iterator[int]:
        while True:
            now = u.assignment
            wrong = np.flatnonzero(now != self.target)
            if len(wrong) == 0:
                break
            e = int(wrong[0])
            c = int(self.target[e])
            on_c = np.flatnonzero((now == c) & (now != self.target))
            if u.action_masks()[u.move_action(e, c)]:
                yield u.move_action(e, c)
            else:
                yield u.swap_action(e, int(on_c[0]))
        while True:
            yield u.stop_action


def play(env, player, seed=None, options=None) -> tuple[float, dict]:
    """One episode; returns (return, last info)."""
    obs, info = env.reset(seed=seed, options=options)
    player.start(env)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, info = env.step(player.act(env, obs))
        total += reward
    return total, info
