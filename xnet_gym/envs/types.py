"""The per-episode instance the generator hands to an env (Jumanji-style `types.py`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..instance import Instance
from ..placement import Placement


@dataclass(eq=False)
class Episode:
    """Everything fixed for one episode (read-only by convention; not frozen, because a frozen
    dataclass costs several microseconds more per reset). Arrays are indexed by episode layer
    i (not model layer).

    `objective_s(placement)` is what the episode is scored on; `reference_s` is its value for
    the analytic placement, so the return contract is -objective_s / reference_s.
    """

    instance_factory: Callable[[], Instance]   # builds `instance` on first use
    layers: np.ndarray            # (n,) model layers placed, in order
    base: Placement               # gateways; analytic experts in every layer
    candidates: np.ndarray        # (n, C) satellite ids, -1 where padded
    n_candidates: np.ndarray      # (n,)
    cost_s: np.ndarray            # (n, C) expected stage cost of each candidate (inf where padded)
    cost_norm: np.ndarray         # (n, C) float32 in [0, 1] (1 where padded)
    rate_norm: np.ndarray         # (n, C) float32 compute rate / scenario max (0 where padded)
    probabilities: np.ndarray     # (n, E) activation probability of each expert
    rank_norm: np.ndarray         # (n, E) popularity rank / E, 0 = most active
    seat_rank: np.ndarray         # (n, C) float32 first seat of the candidate in cost order / E (pad: 1)
    order: np.ndarray             # (n, E) experts in the order they are placed
    coactivation: np.ndarray      # (n, E, E) P(f active | e active)
    analytic_index: np.ndarray    # (n, E) candidate index of each expert under sort-match
    set_members: tuple            # per layer: (sets (m, k) expert ids, weights (m,)) active sets (a weight may be 0)
    marginal_tables: tuple        # per layer: (offsets (E+1,), set_index, weight): sets holding e, P(set | e)
    reference_s: float            # objective of the analytic placement
    whole_model: bool             # True: objective is token latency; False: the layer's stage
    n_experts: int
    top_k: int
    capacity: int
    n_model_layers: int
    # ExpertPlacement with fixed gateways scores from per-slot leg costs precomputed for the
    # layer's candidates (the evaluator's slot_leg_costs_s), (K, n_candidates):
    slot_cost_s: np.ndarray | None = None
    candidate_time_s: np.ndarray | None = None
    set_counts: np.ndarray | None = None

    @functools.cached_property
    def instance(self) -> Instance:
        """The episode's instance (its slots and trace), built when first asked for."""
        return self.instance_factory()

    @property
    def n_layers(self) -> int:
        return len(self.layers)
