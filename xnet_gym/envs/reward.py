"""Rewards for the placement envs. Both keep the reward contract: the undiscounted return of
an episode with only valid actions is exactly -objective(placement) / objective(analytic).

- `SparseReward`: 0 on every step, -ratio on the last.
- `DenseReward` (default): each step pays -(p_e / k) * expected_cost(s) / reference, the
  placed expert's share of the separable surrogate; the last step adds the remainder, so the
  sum is still -ratio. Under `objective="weighted"` in ExpertPlacement the remainder is 0
  and each step's reward is its exact credit.

Exactness: each dense step reward is rounded to a multiple of `REWARD_GRID` (2^-40, about
1e-12). Sums of such numbers are exact in float64 in any order (episode returns stay far
below 2^12), so the last step's remainder cancels them exactly and the closed form's return
is exactly -1.0, not -1.0 within an ulp. Other returns equal -ratio within float rounding.

An invalid action (padded or full satellite) costs `INVALID_ACTION_PENALTY` on top; then the
return is -ratio - 0.1 x (number of invalid actions). A custom reward implements `start`
(optional), `step` and `final` with these signatures; the latency it is handed comes from
`scoring.objective_s`.
"""

from __future__ import annotations

from .problem import Problem

INVALID_ACTION_PENALTY = 0.1
REWARD_GRID = 2.0 ** -40
_PER_GRID = 2.0 ** 40


class SparseReward:
    name = "sparse"

    def start(self, problem: Problem) -> None:
        """A new episode (optional in custom rewards)."""

    def step(self, problem: Problem, layer_index: int, expert: int, candidate: int) -> float:
        return 0.0

    def final(self, problem: Problem, objective_s: float, shaped_so_far: float) -> float:
        return -objective_s / problem.reference_s - shaped_so_far


class DenseReward(SparseReward):
    name = "dense"

    def __init__(self):
        self._batch = None

    def start(self, problem: Problem) -> None:
        # Python floats of the batch's rows (converted once per batch): the same IEEE
        # operations as on NumPy scalars, so the same bits, at a fraction of the per-step cost.
        if problem.batch is not self._batch:
            self._batch = problem.batch
            self._share = (problem.batch.probabilities / problem.spec.top_k).tolist()
            self._cost = problem.batch.cost_s.tolist()
        self._first = problem.first
        self._reference_s = problem.reference_s

    def __getstate__(self):
        # The episode's tables travel; the batch identity does not (the next reset rebuilds).
        return {**self.__dict__, "_batch": None}

    def step(self, problem: Problem, layer_index: int, expert: int, candidate: int) -> float:
        row = self._first + layer_index
        credit = -(self._share[row][expert] * self._cost[row][candidate]) / self._reference_s
        return round(credit * _PER_GRID) / _PER_GRID


REWARDS = {"sparse": SparseReward, "dense": DenseReward}
