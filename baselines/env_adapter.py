"""Play any `solve(instance) -> Placement` solver through a placement env.

After `env.reset`, the solver solves the episode's instance; its experts become the env's
actions, so the env scores it like any agent. A solver that moves gateways (RandIntra,
RandPlace) cannot be expressed as actions on the env's fixed subnet: `score_on_episode`
then scores its placement with the env's own objective (the same evaluator call).
"""

from __future__ import annotations

import numpy as np

from xnet_gym.placement import Placement


class SolverPlayer:
    def __init__(self, solver):
        self.solver = solver
        self.name = getattr(solver, "name", type(solver).__name__)
        self._actions = None

    def plays_through_env(self, placement: Placement, episode) -> bool:
        return bool(np.array_equal(placement.gateways, episode.base.gateways))

    def start(self, env) -> Placement:
        ep = env.unwrapped.episode
        placement = self.solver.solve(ep.instance)
        self.placement = placement
        if self.plays_through_env(placement, ep):
            idx = np.empty((ep.n_layers, ep.instance.n_experts), dtype=np.int64)
            for i, layer in enumerate(ep.layers):
                idx[i] = np.searchsorted(ep.candidates[i, : ep.n_candidates[i]], placement.experts[layer])
            self._actions = idx
        else:
            self._actions = None
        return placement

    def act(self, env, obs) -> int:
        u = env.unwrapped
        return int(self._actions[u._li, u._current_expert()])


def score_on_episode(env, placement: Placement) -> tuple[float, float]:
    """(objective_s, reference_s) of a placement on the env's current episode."""
    u = env.unwrapped
    return u.generator.objective_s(u.episode, placement), u.episode.reference_s
