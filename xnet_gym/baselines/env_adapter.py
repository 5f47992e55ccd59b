"""Play any `solve(instance) -> Placement` solver through a placement env.

After `env.reset`, the solver solves the episode's instance; its experts become the env's
actions, so the env scores it like any agent. A solver that moves gateways (RandIntra,
RandPlace) cannot be expressed as actions on the env's fixed subnet: `score_on_episode`
then scores its placement with the episode's own objective (`xnet_gym.envs.scoring`).
The adapter reads only the env's public progress (`problem`, `layer_index`, `current_expert`).
"""

from __future__ import annotations

import numpy as np

from xnet_gym.envs import scoring
from xnet_gym.envs.problem import Problem
from xnet_gym.placement import Placement


class SolverPlayer:
    def __init__(self, solver):
        self.solver = solver
        self.name = getattr(solver, "name", type(solver).__name__)
        self._actions: np.ndarray | None = None

    def plays_through_env(self, placement: Placement, problem: Problem) -> bool:
        return bool(np.array_equal(placement.gateways, problem.gateways))

    def start(self, env) -> Placement:
        problem = env.unwrapped.problem
        placement = self.solver.solve(problem.instance)
        self.placement = placement
        self._actions = None
        if self.plays_through_env(placement, problem):
            rows = problem.rows
            idx = np.empty((len(rows), problem.spec.n_experts), dtype=np.int64)
            for i, layer in enumerate(rows.layers):
                idx[i] = np.searchsorted(rows.candidates[i, : rows.n_candidates[i]], placement.experts[layer])
            self._actions = idx
        return placement

    def act(self, env, obs) -> int:
        u = env.unwrapped
        assert self._actions is not None
        return int(self._actions[u.layer_index, u.current_expert])


def score_on_episode(env, placement: Placement) -> tuple[float, float]:
    """(objective_s, reference_s) of a placement on the env's current episode."""
    problem = env.unwrapped.problem
    return scoring.objective_s(problem, placement), problem.reference_s
