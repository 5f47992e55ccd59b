"""Refinement, batched: the one step of ExpertRefine-v0, for one episode or many.

`RefineCore` holds the action layout (moves, swaps, stop) and the rules: what each action
does, which are valid, the best-so-far reward, the observation and the `info` values.
`RefineEpisode` is one episode's state (its `LayerMoves`, the best placement, the moves
left). The Gymnasium env (`expert_refine.py`) is the core over one episode; the batched
vector env (`expert_refine_vector.py`) the same core over N, whose episodes end at
different steps. Observing N episodes scores their neighbourhoods (the gain observation)
on worker threads: the scoring kernels release the GIL, so both cores work, and each
episode's numbers are the bits it has alone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import ScenarioError, field_error
from ..placement import Placement
from . import scoring
from .observation import normalised_cost
from .problem import Problem
from .reward import INVALID_ACTION_PENALTY

RATIO_CLIP = 16.0          # observed latency ratios are clipped here (random starts reach ~6 on presets)
GAIN_CLIP = 1.0            # observed gains (shares of the closed form's latency) are clipped here
IMPROVES = 1e-12           # a change improves when it saves more than this share (rounding is ~1e-16)
INFO_KEYS = ("invalid_action", "invalid_actions", "moves_left", "latency_s", "best_latency_s", "analytic_latency_s",
             "ratio_to_analytic", "best_assignment")


class RefineEpisode:
    """One episode: the layer's incremental scoring, the best placement so far and the budget."""

    def __init__(self, core: RefineCore, problem: Problem, assignment: np.ndarray):
        b, i = problem.batch, problem.first
        self.problem = problem
        self.n_cand = int(b.n_candidates[i])
        self.cand = b.candidates[i, : self.n_cand]
        self.moves = scoring.layer_moves(problem, assignment)
        self.reference_s = problem.reference_s
        self.best_s, self.best = self.moves.total_s, self.moves.assignment
        self.moves_left, self.invalid, self.done = core.max_moves, 0, False
        self.probability = b.probabilities[i].astype(np.float32)
        E = core.n_experts
        by_pop = np.argsort(-b.probabilities[i], kind="stable")
        self.rank = np.empty(E, dtype=np.float32)
        self.rank[by_pop] = np.arange(E) / E
        self.cost = normalised_cost(b.row(i))[0]
        self.latencies: np.ndarray | None = None          # every action's latency, once per placement
        self.mask = core.mask_now(self)

    def placement(self, assignment: np.ndarray) -> Placement:
        p = self.problem
        experts = p.base_experts.copy()
        experts[int(p.batch.layers[p.first])] = self.cand[assignment]
        return Placement(p.gateways, experts)


class RefineCore:
    def __init__(self, n_experts: int, n_candidates_max: int, max_moves: int, gain_observation: bool):
        E, C = n_experts, n_candidates_max
        self.n_experts, self.n_candidates_max, self.max_moves = E, C, max_moves
        self.gain_observation = gain_observation
        self.swap_x, self.swap_y = np.triu_indices(E, 1)
        self.n_moves, self.n_swaps = E * C, len(self.swap_x)
        self.row_offsets = np.arange(E) * C          # one-hot index of expert e on candidate c: e*C + c
        self.stop_action = self.n_moves + self.n_swaps
        self.n_actions = self.stop_action + 1
        self._pool: ThreadPoolExecutor | None = None

    def __getstate__(self):
        return {**self.__dict__, "_pool": None}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def episode(self, problem: Problem, assignment: np.ndarray) -> RefineEpisode:
        return RefineEpisode(self, problem, assignment)

    # ------------------------------------------------------------------------ actions
    def decode(self, action: int) -> tuple[str, int, int]:
        """("move", expert, candidate), ("swap", x, y) or ("stop", -1, -1)."""
        a = int(action)
        if a < self.n_moves:
            return "move", a // self.n_candidates_max, a % self.n_candidates_max
        if a < self.stop_action:
            i = a - self.n_moves
            return "swap", int(self.swap_x[i]), int(self.swap_y[i])
        return "stop", -1, -1

    def mask_now(self, ep: RefineEpisode) -> np.ndarray:
        """(A,) float32: the valid actions of the episode's current placement."""
        a = ep.moves.views()[0]
        out = np.zeros(self.n_actions, dtype=np.float32)
        out[: self.n_moves].reshape(self.n_experts, self.n_candidates_max)[:, : ep.n_cand] = ep.moves.movable()
        out[self.n_moves: self.stop_action] = a[self.swap_x] != a[self.swap_y]
        out[-1] = 1.0
        return out

    def action_latencies_s(self, ep: RefineEpisode) -> np.ndarray:
        """(A,) the latency after each action (nothing applied; invalid ones and stop read
        the current latency), from one scoring of the whole neighbourhood, kept until the
        placement changes."""
        if ep.latencies is None:
            move_s, swap_s = ep.moves.neighbourhood_latency_s()
            out = np.full(self.n_actions, ep.moves.total_s)
            out[: self.n_moves].reshape(self.n_experts, self.n_candidates_max)[:, : ep.n_cand] = move_s
            out[self.n_moves: self.stop_action] = swap_s[self.swap_x, self.swap_y]     # infeasible: the total
            ep.latencies = out
        return ep.latencies

    def score_neighbourhoods(self, episodes: list[RefineEpisode]) -> None:
        """`action_latencies_s` of every episode that lacks it, on two worker threads."""
        todo = [ep for ep in episodes if ep.latencies is None]
        if len(todo) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(2, thread_name_prefix="xnet-gym-refine")
            list(self._pool.map(self.action_latencies_s, todo))
        for ep in todo:
            self.action_latencies_s(ep)

    def greedy_action(self, ep: RefineEpisode) -> int:
        """Steepest descent: the valid action with the lowest latency after it (the first on
        ties), or stop when none improves by more than rounding."""
        after = self.action_latencies_s(ep)
        best = int(np.argmin(after))
        return best if after[best] < ep.moves.total_s * (1.0 - IMPROVES) else self.stop_action

    # ------------------------------------------------------------------------ the step
    def step(self, ep: RefineEpisode, action: int) -> tuple[float, bool]:
        """Apply a checked action to a running episode: (reward, invalid)."""
        kind, x, y = self.decode(action)
        mv = ep.moves
        invalid = False
        if kind == "move":
            if mv.can_move(x, y):
                mv.move(x, y)
            else:
                invalid = True
        elif kind == "swap":
            if mv.can_swap(x, y):
                mv.swap(x, y)
            else:
                invalid = True
        reward = 0.0
        if mv.total_s < ep.best_s:
            reward = (ep.best_s - mv.total_s) / ep.reference_s
            ep.best_s, ep.best = mv.total_s, mv.assignment
        if invalid:
            ep.invalid += 1
            reward -= INVALID_ACTION_PENALTY
        ep.moves_left -= 1
        ep.done = kind == "stop" or ep.moves_left == 0
        if not invalid and kind != "stop":
            ep.mask = self.mask_now(ep)
            ep.latencies = None
        return reward, invalid

    # ------------------------------------------------------------------------ observing
    def observe(self, episodes: list[RefineEpisode]) -> dict[str, np.ndarray]:
        """(N, ...) float32 arrays, fresh: the observation of every episode."""
        N, E, C = len(episodes), self.n_experts, self.n_candidates_max
        onehot = np.zeros((N, self.n_moves), dtype=np.float32)
        occupancy = np.zeros((N, C), dtype=np.float32)
        progress = np.empty((N, 3), dtype=np.float32)
        bottleneck = np.empty((N, E), dtype=np.float32)
        for i, ep in enumerate(episodes):                # per episode: ragged active sets
            a, load = ep.moves.views()
            onehot[i, self.row_offsets + a] = 1.0
            occupancy[i, : ep.n_cand] = load[: ep.n_cand] / ep.moves.capacity
            progress[i] = (ep.moves_left / self.max_moves, min(ep.moves.total_s / ep.reference_s, RATIO_CLIP),
                           min(ep.best_s / ep.reference_s, RATIO_CLIP))
            bottleneck[i] = ep.moves.bottleneck_share()
        obs = {"expert_probability": np.stack([ep.probability for ep in episodes]),
               "expert_rank": np.stack([ep.rank for ep in episodes]), "expert_bottleneck": bottleneck,
               "assignment": onehot, "candidate_cost": np.stack([ep.cost for ep in episodes]),
               "candidate_occupancy": occupancy, "progress": progress,
               "action_mask": np.stack([ep.mask for ep in episodes])}
        if self.gain_observation:
            self.score_neighbourhoods(episodes)
            now = np.array([ep.moves.total_s for ep in episodes])[:, None]
            reference = np.array([ep.reference_s for ep in episodes])[:, None]
            gain = (now - np.stack([self.action_latencies_s(ep) for ep in episodes])) / reference
            obs["action_gain"] = np.clip(gain, -GAIN_CLIP, GAIN_CLIP).astype(np.float32)
        return obs

    def frame(self, viewer, render_mode: str, ep: RefineEpisode):
        """The episode's current placement, drawn by `viewer` in `render_mode`."""
        return viewer.frame(render_mode, ep.problem, 0, ep.placement(ep.moves.assignment).experts)

    def info(self, ep: RefineEpisode, invalid: bool) -> dict:
        return {"invalid_action": np.bool_(invalid), "invalid_actions": np.int64(ep.invalid),
                "moves_left": np.int64(ep.moves_left), "latency_s": np.float64(ep.moves.total_s),
                "best_latency_s": np.float64(ep.best_s), "analytic_latency_s": np.float64(ep.reference_s),
                "ratio_to_analytic": np.float64(ep.best_s / ep.reference_s), "best_assignment": ep.best.copy()}

    # ------------------------------------------------------------------------ starting
    def start_assignment(self, problem: Problem, placement, start: str, rng: np.random.Generator) -> np.ndarray:
        """The episode's first assignment: `placement` (a Placement on the episode's subnet or
        an (E,) array of candidate indices), else the closed form or a uniformly random
        feasible one (drawn from `rng`)."""
        b, i = problem.batch, problem.first
        E = self.n_experts
        n_cand = int(b.n_candidates[i])
        cand = b.candidates[i, :n_cand]
        if placement is not None:
            if isinstance(placement, Placement):
                if not np.array_equal(placement.gateways, problem.gateways):
                    raise field_error(ScenarioError, "options['placement'].gateways", placement.gateways.tolist(),
                                      "must be the episode's gateways (env.unwrapped.problem.gateways)")
                sats = placement.experts[int(b.layers[i])]
                idx = np.searchsorted(cand, sats)
                if np.any(idx >= len(cand)) or not np.array_equal(cand[idx], sats):
                    raise field_error(ScenarioError, "options['placement']", sats.tolist(),
                                      "must put the layer's experts on the episode's candidate satellites")
            else:
                idx = np.asarray(placement)
                if idx.shape != (E,) or not np.issubdtype(idx.dtype, np.integer):
                    raise field_error(ScenarioError, "options['placement']", placement,
                                      f"must be a Placement or an integer array of shape ({E},)")
                if idx.min() < 0 or idx.max() >= n_cand:
                    raise field_error(ScenarioError, "options['placement']", idx.tolist(),
                                      f"candidate indices must be in [0, {n_cand - 1}]")
            if np.bincount(idx).max() > problem.spec.capacity:
                raise field_error(ScenarioError, "options['placement']", idx.tolist(),
                                  f"puts more than capacity {problem.spec.capacity} experts on a candidate")
            return idx.astype(np.int64)
        if start == "random":
            # A uniformly random seat per expert among all free seats of the real candidates.
            seats = np.repeat(np.arange(n_cand), problem.spec.capacity)
            return seats[rng.permutation(len(seats))[:E]].astype(np.int64)
        return b.analytic_index[i].astype(np.int64)

    def check_problem(self, problem: Problem, spec) -> None:
        if problem.spec != spec or problem.scope != "stage":
            raise field_error(ScenarioError, "generator problem", problem.spec,
                              f"must be a stage problem with the generator's spec {spec}")

