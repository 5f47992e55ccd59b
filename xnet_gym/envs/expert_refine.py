"""`xnet_gym/ExpertRefine-v0`: improve a complete placement of one layer, move by move."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import ActionError, ScenarioError, check_action, check_bool, check_choice, check_int, field_error
from ..placement import Placement
from . import scoring
from .action_space import MaskableDiscrete
from .assignment import render_modes
from .capabilities import Capabilities
from .episode import EpisodeConfig, episode_config
from .generator import Generator, resolve_generator
from .layout import DictLayout, make_layout
from .observation import normalised_cost
from .problem import Problem
from .reward import INVALID_ACTION_PENALTY
from .viewer import Viewer

STARTS = ("analytic", "random")
RATIO_CLIP = 16.0          # observed latency ratios are clipped here (random starts reach ~6 on presets)
GAIN_CLIP = 1.0            # observed gains (shares of the closed form's latency) are clipped here
MAX_MOVES = 1_000_000      # an episode longer than this never ends in practice, and moves_left / max_moves
#                            would no longer tell the agent anything
IMPROVES = 1e-12           # a change improves when it saves more than this share (rounding is ~1e-16)


class ExpertRefineEnv(gym.Env):
    """
    ## Description

    "Learning to improve" on the instances of `ExpertPlacement-v0`: the same generator, the
    same distribution, the same seeds, so a refinement agent and a constructive agent are
    scored on the same episodes. An episode starts from a complete placement of one MoE
    layer's `E` experts on its ring subnet (the paper's closed form by default) and each step
    changes it by one move or one swap, the neighbourhood of `baselines.LocalSearch`. The
    score is the layer's expected expert-stage latency (the `max` objective or its
    `weighted` surrogate), from the project's one evaluator, incrementally: a step rescores
    only the active sets that hold a moved expert, with the same bits as a full evaluation.

    ## Action Space

    `Discrete(E*C + E*(E-1)/2 + 1)`, `C` the largest candidate count:

    - `a < E*C`: **move** expert `a // C` to candidate `a % C`; valid when that candidate
      is real, is not the expert's own, and has a free seat (capacity
      `experts_per_satellite`).
    - `E*C <= a < E*C + E*(E-1)/2`: **swap** the candidates of experts `x < y`, pairs in
      row-major upper-triangle order (`numpy.triu_indices(E, 1)`); valid when they differ.
    - the last action: **stop** (ends the episode; always valid).

    Every placement is reachable. `action_masks()` (bool) and `obs["action_mask"]` mark the
    valid actions. A masked-out action does not raise: nothing moves, the step costs an extra
    0.1 and `info["invalid_action"]` is True. An action that is not an integer in range
    raises `xnet_gym.ActionError`. `env.unwrapped.action_latency_s(a)` is the exact stage
    latency action `a` would lead to (nothing is applied), `action_latencies_s()` the same for
    every action at once, and `greedy_action()` the steepest descent's choice: the valid
    action that lowers the latency most, or stop when none lowers it (the expert of
    `xnet-gym train --imitate greedy`).

    ## Observation Space

    A `Dict` of float32 `Box`es (`expert_bottleneck` is what the `max` objective waits for: the
    expert is the slowest of its token's active experts; it is all zeros under `weighted`):

    | key | shape | meaning | range |
    |---|---|---|---|
    | `expert_probability` | (E,) | activation probability of each expert | [0, 1] |
    | `expert_rank` | (E,) | popularity rank / E (0 = most active) | [0, 1] |
    | `expert_bottleneck` | (E,) | share of its token-time-steps as its set's slowest member | [0, 1] |
    | `assignment` | (E*C,) | one-hot, row-major by expert: the candidate each expert is on | {0, 1} |
    | `candidate_cost` | (C,) | expected stage cost of each candidate, min-max normalised (pad: 1) | [0, 1] |
    | `candidate_occupancy` | (C,) | experts on the candidate / capacity | [0, 1] |
    | `progress` | (3,) | moves left / `max_moves`; current and best latency / closed form's, clipped at 16 | [0, 16] |
    | `action_mask` | (A,) | 1 where the action is valid | {0, 1} |
    | `action_gain` | (A,) | with `gain_observation=True`: `(L_now - L_after) / L_analytic` | [-1, 1] |

    (`action_gain` is 0 for invalid actions and for stop.)

    The gain observation is the whole neighbourhood scored exactly (`LayerMoves.neighbourhood_latency_s`:
    the evaluator's set values for every member on every candidate, about one full evaluation
    per candidate; 4-14 ms a step on the ESFT presets, `benchmarks/bench_neighbourhood.py`). It turns
    refinement from guessing which of thousands of actions helps into choosing among known
    gains; without it (the default) a step costs well under a millisecond.

    ## Rewards

    Best-so-far improvement: `r_t = (L_best,t-1 - L_best,t) / L_analytic`, so the return is
    `(L_start - L_best) / L_analytic`; from the closed-form start, `1 - L_best / L_analytic`.
    Doing nothing (stopping at once) scores exactly 0; a worse placement is never penalised
    beyond losing the chance to improve. Each invalid action costs 0.1. `info` has the same
    keys on every step and reset, each a NumPy value: `invalid_action`, `invalid_actions`,
    `moves_left`, `latency_s` (current), `best_latency_s`, `analytic_latency_s`,
    `ratio_to_analytic` (best / closed form) and `best_assignment` (E,) (the candidate index
    of each expert in the best placement). `env.unwrapped.placement` is the best placement
    as an `xnet_gym.Placement`.

    ## Starting State

    `reset` draws the episode exactly as ExpertPlacement-v0 does (same generator, same
    `self.np_random` draws) and starts from the closed form (`start="analytic"`), or from a
    uniformly random feasible assignment (`start="random"`, drawn from `self.np_random`), or
    from `reset(options={"placement": p})` with `p` a `Placement` on the episode's subnet or
    an (E,) array of candidate indices. `options` also takes `layer` and `trace`.

    ## Episode End

    Terminates on the stop action or after `max_moves` steps (default `2 * E`; steps left
    are observed, so the horizon is part of the state). Never truncates by itself.

    ## Arguments

    ```python
    gymnasium.make("xnet_gym/ExpertRefine-v0", scenario="paper", episode=None, max_moves=None,
                   start="analytic", render_mode=None, gain_observation=False, obs_layout="dict",
                   generator=None, viewer=None, **episode_settings)
    ```

    The episode settings (keywords or `episode=EpisodeConfig(...)`) are ExpertPlacement-v0's,
    so both envs draw the same episodes for the same seeds; `generator` is any
    `xnet_gym.envs.Generator` of stage problems. `render_mode`: `"human"` (the `"ansi"` view
    printed at every reset and step), `"ansi"` or `"rgb_array"`. `max_moves`: at most 1,000,000.
    `gain_observation`: add the `action_gain` key (see the table). `obs_layout`: `"dict"`
    (the table above), `"flat"` (`{"observations": every feature but the mask, concatenated
    in the `Dict` space's (sorted) key order, "action_mask": float32}`, RLlib and CleanRL) or `"tianshou"` (`{"obs",
    "mask": bool}`), as for ExpertPlacement-v0.

    ## Version History

    - v0: initial release; `gain_observation` and `obs_layout` (off and `"dict"` by default, so
      the space is unchanged) added later.
    """

    metadata: dict[str, Any] = {"render_modes": render_modes(), "render_fps": 4}  # noqa: RUF012 (gymnasium's attribute)
    capabilities = Capabilities(refinement=True, stop_action=True, greedy=True, gain_observation=True,
                                imitation_experts=("greedy",))

    def __init__(self, scenario=None, *, episode: EpisodeConfig | None = None, max_moves=None, start="analytic",
                 render_mode=None, generator: Generator | None = None, viewer=None, gain_observation=False,
                 obs_layout="dict", **settings):
        # v0 never took the old slot names: they are refused with the new name as a hint.
        self.episode = episode_config(type(self).__name__, scenario, episode, settings, deprecated_names=False)
        if render_mode is not None:
            check_choice(ScenarioError, "render_mode", render_mode, self.metadata["render_modes"])
        self.start = check_choice(ScenarioError, "start", start, STARTS)
        self.gain_observation = check_bool(ScenarioError, "gain_observation", gain_observation)
        generator = resolve_generator(generator, self.episode, "stage")
        self.generator = generator
        spec = generator.spec
        E, C = spec.n_experts, spec.n_candidates_max
        self.max_moves = 2 * E if max_moves is None else check_int(ScenarioError, "max_moves", max_moves, 1,
                                                                  MAX_MOVES)
        self.n_experts, self.n_candidates_max = E, C
        self._swap_x, self._swap_y = np.triu_indices(E, 1)
        self.n_moves, self.n_swaps = E * C, len(self._swap_x)
        self._row_offsets = np.arange(E) * C          # one-hot index of expert e on candidate c: e*C + c
        self.stop_action = self.n_moves + self.n_swaps
        self.n_actions = n_actions = self.stop_action + 1
        self.action_space = MaskableDiscrete(n_actions)
        obs_spaces: dict[str, spaces.Space] = {
            "expert_probability": spaces.Box(0.0, 1.0, (E,), np.float32),
            "expert_rank": spaces.Box(0.0, 1.0, (E,), np.float32),
            "expert_bottleneck": spaces.Box(0.0, 1.0, (E,), np.float32),
            "assignment": spaces.Box(0.0, 1.0, (E * C,), np.float32),
            "candidate_cost": spaces.Box(0.0, 1.0, (C,), np.float32),
            "candidate_occupancy": spaces.Box(0.0, 1.0, (C,), np.float32),
            "progress": spaces.Box(0.0, RATIO_CLIP, (3,), np.float32),
            "action_mask": spaces.Box(0.0, 1.0, (n_actions,), np.float32),
        }
        if self.gain_observation:
            obs_spaces["action_gain"] = spaces.Box(-GAIN_CLIP, GAIN_CLIP, (n_actions,), np.float32)
        self.obs_layout = make_layout(obs_layout)
        self.observation_space = self.obs_layout.space(spaces.Dict(obs_spaces))
        self._latencies: np.ndarray | None = None
        self.render_mode = render_mode
        self.viewer = viewer or Viewer()
        self._problem: Problem | None = None

    # ------------------------------------------------------------------ public progress
    @property
    def problem(self) -> Problem | None:
        return self._problem

    @property
    def assignment(self) -> np.ndarray:
        """(E,) candidate index of each expert now (a copy)."""
        return self._moves.assignment

    @property
    def latency_s(self) -> float:
        return self._moves.total_s

    @property
    def placement(self) -> Placement | None:
        """The best placement of the episode so far (None before reset)."""
        if self._problem is None:
            return None
        return self._to_placement(self._best)

    def _to_placement(self, assignment: np.ndarray) -> Placement:
        p = self._problem
        assert p is not None
        experts = p.base_experts.copy()
        experts[int(p.batch.layers[p.first])] = self._cand[assignment]
        return Placement(p.gateways, experts)

    def decode(self, action: int) -> tuple[str, int, int]:
        """("move", expert, candidate), ("swap", x, y) or ("stop", -1, -1)."""
        a = int(action)
        if a < self.n_moves:
            return "move", a // self.n_candidates_max, a % self.n_candidates_max
        if a < self.stop_action:
            i = a - self.n_moves
            return "swap", int(self._swap_x[i]), int(self._swap_y[i])
        return "stop", -1, -1

    def move_action(self, expert: int, candidate: int) -> int:
        return expert * self.n_candidates_max + candidate

    def swap_action(self, x: int, y: int) -> int:
        x, y = min(x, y), max(x, y)
        E = self.n_experts
        return self.n_moves + x * E - x * (x + 1) // 2 + (y - x - 1)

    def action_masks(self) -> np.ndarray:
        """Bool (A,): the valid moves, swaps and the stop action."""
        if self._problem is None:
            raise ActionError("action_masks() before reset(): call reset() first")
        return self._mask > 0

    def analytic_action(self) -> int:
        """The closed form's action: it is where the episode starts (by default), so it stops."""
        return self.stop_action

    def action_latency_s(self, action: int) -> float:
        """The stage latency after `action` (exact, from the evaluator's functions; not applied).
        An invalid action or stop leaves the latency as it is."""
        if self._problem is None:
            raise ActionError("action_latency_s() before reset(): call reset() first")
        kind, x, y = self.decode(check_action(action, self.n_actions))
        if kind == "move" and self._moves.can_move(x, y):
            return self._moves.move_latency_s(x, y)
        if kind == "swap" and self._moves.can_swap(x, y):
            return self._moves.swap_latency_s(x, y)
        return self._moves.total_s

    def action_latencies_s(self) -> np.ndarray:
        """(A,) the stage latency after each action (nothing is applied): `action_latency_s`
        for all actions from one scoring of the whole neighbourhood (equal to it within
        1e-12 relative). Invalid actions and stop read the current latency."""
        if self._problem is None:
            raise ActionError("action_latencies_s() before reset(): call reset() first")
        if self._latencies is None:        # once per placement: the observation and greedy_action share it
            move_s, swap_s = self._moves.neighbourhood_latency_s()
            out = np.full(self.n_actions, self._moves.total_s)
            out[: self.n_moves].reshape(self.n_experts, self.n_candidates_max)[:, : self._n_cand] = move_s
            out[self.n_moves: self.stop_action] = swap_s[self._swap_x, self._swap_y]     # infeasible: the total
            self._latencies = out
        return self._latencies.copy()

    def greedy_action(self) -> int:
        """Steepest descent: the valid action with the lowest latency after it (the first on
        ties), or stop when none improves by more than rounding."""
        after = self.action_latencies_s()
        best = int(np.argmin(after))
        return best if after[best] < self._moves.total_s * (1.0 - IMPROVES) else self.stop_action

    # ------------------------------------------------------------------------ internals
    def _mask_now(self) -> np.ndarray:
        """The valid actions after the last change (computed once per step, read by both the
        observation and `action_masks()`)."""
        a = self._moves.views()[0]
        out = np.zeros(self.n_actions, dtype=np.float32)
        out[: self.n_moves].reshape(self.n_experts, self.n_candidates_max)[:, : self._n_cand] = self._moves.movable()
        out[self.n_moves: self.stop_action] = a[self._swap_x] != a[self._swap_y]
        out[-1] = 1.0
        return out

    def _laid_out(self) -> dict[str, np.ndarray]:
        obs = self._observation()
        return obs if isinstance(self.obs_layout, DictLayout) else self.obs_layout(obs)

    def _observation(self) -> dict[str, np.ndarray]:
        a, load = self._moves.views()
        onehot = np.zeros(self.n_moves, dtype=np.float32)
        onehot[self._row_offsets + a] = 1.0
        occupancy = np.zeros(self.n_candidates_max, dtype=np.float32)
        occupancy[: self._n_cand] = load[: self._n_cand] / self._moves.capacity
        progress = np.array([self._moves_left / self.max_moves,
                             min(self._moves.total_s / self._reference_s, RATIO_CLIP),
                             min(self._best_s / self._reference_s, RATIO_CLIP)], dtype=np.float32)
        return {"expert_probability": self._prob.copy(), "expert_rank": self._rank.copy(),
                "expert_bottleneck": self._moves.bottleneck_share().astype(np.float32), "assignment": onehot,
                "candidate_cost": self._cost.copy(), "candidate_occupancy": occupancy, "progress": progress,
                "action_mask": self._mask.copy(), **self._gain_observation()}

    def _gain_observation(self) -> dict[str, np.ndarray]:
        if not self.gain_observation:
            return {}
        gain = (self._moves.total_s - self.action_latencies_s()) / self._reference_s
        return {"action_gain": np.clip(gain, -GAIN_CLIP, GAIN_CLIP).astype(np.float32)}

    def _info(self, invalid: bool) -> dict:
        return {"invalid_action": np.bool_(invalid), "invalid_actions": np.int64(self._invalid),
                "moves_left": np.int64(self._moves_left), "latency_s": np.float64(self._moves.total_s),
                "best_latency_s": np.float64(self._best_s), "analytic_latency_s": np.float64(self._reference_s),
                "ratio_to_analytic": np.float64(self._best_s / self._reference_s),
                "best_assignment": self._best.copy()}

    def _start_assignment(self, problem: Problem, placement) -> np.ndarray:
        b, i = problem.batch, problem.first
        E = self.n_experts
        if placement is not None:
            if isinstance(placement, Placement):
                if not np.array_equal(placement.gateways, problem.gateways):
                    raise field_error(ScenarioError, "options['placement'].gateways", placement.gateways.tolist(),
                                      "must be the episode's gateways (env.unwrapped.problem.gateways)")
                sats = placement.experts[int(b.layers[i])]
                idx = np.searchsorted(self._cand, sats)
                if np.any(idx >= len(self._cand)) or not np.array_equal(self._cand[idx], sats):
                    raise field_error(ScenarioError, "options['placement']", sats.tolist(),
                                      "must put the layer's experts on the episode's candidate satellites")
            else:
                idx = np.asarray(placement)
                if idx.shape != (E,) or not np.issubdtype(idx.dtype, np.integer):
                    raise field_error(ScenarioError, "options['placement']", placement,
                                      f"must be a Placement or an integer array of shape ({E},)")
                if idx.min() < 0 or idx.max() >= self._n_cand:
                    raise field_error(ScenarioError, "options['placement']", idx.tolist(),
                                      f"candidate indices must be in [0, {self._n_cand - 1}]")
            if np.bincount(idx).max() > problem.spec.capacity:
                raise field_error(ScenarioError, "options['placement']", idx.tolist(),
                                  f"puts more than capacity {problem.spec.capacity} experts on a candidate")
            return idx.astype(np.int64)
        if self.start == "random":
            # A uniformly random seat per expert among all free seats of the real candidates.
            seats = np.repeat(np.arange(self._n_cand), problem.spec.capacity)
            return seats[self.np_random.permutation(len(seats))[:E]].astype(np.int64)
        return b.analytic_index[i].astype(np.int64)

    # ------------------------------------------------------------------------ gym API
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = dict(options or {})
        placement = options.pop("placement", None)
        problem = self.generator(self.np_random, options)
        if problem.spec != self.generator.spec or problem.scope != "stage":
            raise field_error(ScenarioError, "generator problem", problem.spec,
                              f"must be a stage problem with the generator's spec {self.generator.spec}")
        b, i = problem.batch, problem.first
        self._problem = problem
        self._n_cand = int(b.n_candidates[i])
        self._cand = b.candidates[i, : self._n_cand]
        self._moves = scoring.layer_moves(problem, self._start_assignment(problem, placement))
        self._reference_s = problem.reference_s
        self._best_s, self._best = self._moves.total_s, self._moves.assignment
        self._moves_left, self._invalid, self._done = self.max_moves, 0, False
        rows = b.row(i)
        self._prob = b.probabilities[i].astype(np.float32)
        by_pop = np.argsort(-b.probabilities[i], kind="stable")
        self._rank = np.empty(self.n_experts, dtype=np.float32)
        self._rank[by_pop] = np.arange(self.n_experts) / self.n_experts
        self._cost = normalised_cost(rows)[0]
        self._mask = self._mask_now()
        self._latencies = None
        if self.render_mode == "human":
            self.render()
        return self._laid_out(), self._info(False)

    def step(self, action):
        if self._problem is None:
            raise ActionError("step() before reset(): call reset() first")
        if self._done:
            raise ActionError("step() after the episode ended: call reset()")
        kind, x, y = self.decode(check_action(action, self.n_actions))
        mv = self._moves
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
        if mv.total_s < self._best_s:
            reward = (self._best_s - mv.total_s) / self._reference_s
            self._best_s, self._best = mv.total_s, mv.assignment
        if invalid:
            self._invalid += 1
            reward -= INVALID_ACTION_PENALTY
        self._moves_left -= 1
        self._done = kind == "stop" or self._moves_left == 0
        if not invalid and kind != "stop":
            self._mask = self._mask_now()
            self._latencies = None
        if self.render_mode == "human":
            self.render()
        return self._laid_out(), float(reward), self._done, False, self._info(invalid)

    def render(self):
        if self.render_mode is None or self._problem is None:
            return None
        shown = self._to_placement(self._moves.assignment).experts
        draw = self.viewer.rgb_array if self.render_mode == "rgb_array" else self.viewer.ansi
        frame = draw(self._problem, 0, shown)
        if self.render_mode == "human":
            print(frame, flush=True)
            return None
        return frame

    def close(self):
        self.viewer.close()
