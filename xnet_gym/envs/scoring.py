"""What an episode is scored on, and the only place the envs ask for a latency.

Every function here reduces through `xnet_gym.latency` (the one evaluator): the envs'
terminal scores, the closed form's reference, the reward functions' inputs and the solver
adapter all come from these calls.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..instance import Instance
from ..latency import evaluate, evaluate_stages, stage_total_by_candidate_s, stage_total_s
from ..moves import LayerMoves
from ..placement import Placement

if TYPE_CHECKING:
    from .problem import LayerRows, Problem, ProblemSpec


def stage_latency_s(leg_cost_s: np.ndarray, expert_time_s: np.ndarray, satellites: np.ndarray, sets: np.ndarray,
                    counts: np.ndarray, probabilities: np.ndarray, spec: ProblemSpec):
    """Expert-stage latency of (a batch of) layers from their experts' per-time-step legs:
    `latency.stage_total_s` under the spec's objective, top-k and capacity."""
    return stage_total_s(leg_cost_s, expert_time_s, satellites, sets, counts, probabilities, spec.top_k,
                         spec.objective, spec.capacity)


def stage_latency_of_index(rows: LayerRows, candidate_index: np.ndarray, spec: ProblemSpec) -> np.ndarray:
    """(B,) stage latency of every row of `rows` with expert e of row b on candidate
    `candidate_index[b, e]`: the closed form's reference (`build_rows`) and the batched env's
    final scores go through this one call (`latency.stage_total_by_candidate_s`, the same
    bits as `stage_latency_s` on the gathered experts)."""
    return stage_total_by_candidate_s(rows.leg_cost_s, rows.candidate_time_s, candidate_index, rows.candidates,
                                      rows.sets, rows.counts, rows.probabilities, spec.top_k, spec.objective,
                                      spec.capacity)


def token_latency_s(instance: Instance, placement: Placement) -> float:
    """Expected token latency of a full placement (the evaluator, without the split)."""
    return evaluate(instance, placement, split=False).latency_s


def objective_s(problem: Problem, placement: Placement, candidate_index: np.ndarray | None = None) -> float:
    """The episode's score of a complete placement: its token latency (scope "token") or the
    row's expert-stage latency (scope "stage"). `candidate_index` (1, E), when the caller
    knows it, spares a search; a placement off the row's candidates, or with other gateways,
    goes to the evaluator on the episode's instance."""
    if problem.scope == "token":
        return token_latency_s(problem.instance, placement)
    b, i = problem.batch, problem.first
    layer = int(b.layers[i])
    sats = placement.experts[layer]
    idx = None
    if candidate_index is not None:
        idx = candidate_index[0]
    elif np.array_equal(placement.gateways, problem.gateways):
        cand = b.candidates[i, : b.n_candidates[i]]
        idx = np.minimum(np.searchsorted(cand, sats), len(cand) - 1)
        if not np.array_equal(cand[idx], sats):      # an expert off the episode's candidates
            idx = None
    if idx is None:
        return float(evaluate_stages(problem.instance, placement, [layer], split=False).stage_s[0])
    return float(stage_latency_s(b.leg_cost_s[i][:, idx], b.candidate_time_s[i, idx], sats, b.sets[i], b.counts[i],
                                 b.probabilities[i], problem.spec))


def ratio_to_reference(problem: Problem, placement: Placement) -> float:
    """latency / closed-form latency of a placement on the episode: minus the return."""
    return objective_s(problem, placement) / problem.reference_s


def layer_moves(problem: Problem, candidate_index: np.ndarray) -> LayerMoves:
    """Incremental scoring of moves and swaps on a stage episode's row, from the assignment
    `candidate_index` (E,): totals are the same bits as `objective_s` (see `xnet_gym.moves`)."""
    b, i = problem.batch, problem.first
    n = int(b.n_candidates[i])
    return LayerMoves(b.leg_cost_s[i][:, :n], b.candidate_time_s[i, :n], b.sets[i], b.counts[i], b.probabilities[i],
                      problem.spec.top_k, problem.spec.objective, problem.spec.capacity, candidate_index)
