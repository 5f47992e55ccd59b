"""Rewards for the placement envs. Both keep the reward contract: the undiscounted return of
an episode with only valid actions is exactly -objective(placement) / objective(analytic).

- `SparseReward`: 0 on every step, -ratio on the last.
- `DenseReward` (default): each step pays -(p_e / k) * expected_cost(s) / reference, the
  placed expert's share of the separable surrogate; the last step adds the remainder, so the
  sum is still -ratio. Under `objective="weighted"` in ExpertPlacement the remainder is 0
  and each step's reward is its exact credit.

An invalid action (padded or full satellite) costs `INVALID_ACTION_PENALTY` on top; then the
return is -ratio - 0.1 x (number of invalid actions). A custom reward implements `step` and
`final` with these signatures; the latency it is handed comes from `scoring.objective_s`.
"""

from __future__ import annotations

from .problem import Problem

INVALID_ACTION_PENALTY = 0.1


class SparseReward:
    name = "sparse"

    def step(self, problem: Problem, layer_index: int, expert: int, candidate: int) -> float:
        return 0.0

    def final(self, problem: Problem, objective_s: float, shaped_so_far: float) -> float:
        return -objective_s / problem.reference_s - shaped_so_far


class DenseReward(SparseReward):
    name = "dense"

    def step(self, problem: Problem, layer_index: int, expert: int, candidate: int) -> float:
        b, row = problem.batch, problem.first + layer_index
        share = b.probabilities[row, expert] / problem.spec.top_k
        return -float(share * b.cost_s[row, candidate]) / problem.reference_s


REWARDS = {"sparse": SparseReward, "dense": DenseReward}
