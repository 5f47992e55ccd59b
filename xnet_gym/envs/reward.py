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
return is -ratio - 0.1 x (number of invalid actions).

A reward is written once, for N episodes stepped in lockstep (`core.AssignmentCore`; the
single env is N = 1). A custom reward implements `start` (optional), `step` and `final`
with these signatures, on (N,) arrays; the latencies it is handed come from `scoring`.
"""

from __future__ import annotations

import numba
import numpy as np

from .observation import AssignmentState
from .problem import LayerRows, ProblemSpec

INVALID_ACTION_PENALTY = 0.1
REWARD_GRID = 2.0 ** -40
_PER_GRID = 2.0 ** 40


class SparseReward:
    name = "sparse"

    def start(self, rows: LayerRows, state: AssignmentState, reference_s: np.ndarray, spec: ProblemSpec) -> None:
        """New episodes on `rows` (optional in custom rewards); reference_s (N,) the closed
        form's score of each."""

    def step(self, state: AssignmentState, expert: np.ndarray, candidate: np.ndarray) -> np.ndarray:
        """(N,) the reward of placing expert[i] on candidate[i] (indices into row state.row[i])."""
        return np.zeros(state.n_envs)

    def final(self, objective_s: np.ndarray, reference_s: np.ndarray, shaped_so_far: np.ndarray) -> np.ndarray:
        """(N,) what the last step adds: the return becomes -objective / reference."""
        return -objective_s / reference_s - shaped_so_far


class DenseReward(SparseReward):
    name = "dense"

    def __init__(self):
        self._rows: LayerRows | None = None

    def start(self, rows, state, reference_s, spec):
        if rows is not self._rows:                    # once per block of rows
            self._rows = rows
            self._share = rows.probabilities / spec.top_k
        self._cost = rows.cost_s
        self._reference_s = reference_s

    def __getstate__(self):
        # The episode's tables travel; the block identity does not (the next reset rebuilds).
        return {**self.__dict__, "_rows": None}

    def step(self, state, expert, candidate):
        return _dense_credit(self._share, self._cost, self._reference_s, state.row, expert, candidate)


REWARDS = {"sparse": SparseReward, "dense": DenseReward}


@numba.njit(nogil=True, cache=True)
def _dense_credit(share, cost_s, reference_s, row, expert, candidate):
    """-(p_e / k) cost(s) / reference, rounded half-even to the 2^-40 grid (+ 0.0: an
    inactive expert's credit would be -0.0, and the grid holds one zero)."""
    out = np.empty(len(row))
    for i in range(len(row)):
        credit = -(share[row[i], expert[i]] * cost_s[row[i], candidate[i]]) / reference_s[i]
        out[i] = (np.rint(credit * _PER_GRID) + 0.0) / _PER_GRID
    return out
