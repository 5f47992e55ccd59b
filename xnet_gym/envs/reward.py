"""Rewards for the placement envs. Both keep DESIGN.md's contract: the undiscounted return of
an episode with only valid actions is exactly -objective(placement) / objective(analytic).

- `SparseReward`: 0 on every step, -ratio on the last.
- `DenseReward` (default): each step pays -(p_e / k) * expected_cost(s) / reference, the
  placed expert's share of the separable surrogate; the last step adds the remainder, so the
  sum is still -ratio. Under `objective="weighted"` in ExpertPlacement the remainder is 0
  and each step's reward is its exact credit.

An invalid action (padded or full satellite) costs `INVALID_ACTION_PENALTY` on top; then the
return is -ratio - 0.1 x (number of invalid actions).
"""

from __future__ import annotations

from .types import Episode

INVALID_ACTION_PENALTY = 0.1


class SparseReward:
    name = "sparse"

    def step(self, episode: Episode, layer_i: int, expert: int, cand: int) -> float:
        return 0.0

    def final(self, episode: Episode, objective_s: float, shaped_so_far: float) -> float:
        return -objective_s / episode.reference_s - shaped_so_far


class DenseReward(SparseReward):
    name = "dense"

    def step(self, episode: Episode, layer_i: int, expert: int, cand: int) -> float:
        share = episode.probabilities[layer_i, expert] / episode.top_k
        return -float(share * episode.cost_s[layer_i, cand]) / episode.reference_s


REWARDS = {"sparse": SparseReward, "dense": DenseReward}
