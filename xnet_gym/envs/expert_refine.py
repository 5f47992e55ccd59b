"""`xnet_gym/ExpertRefine-v0`: improve a complete placement of one layer, move by move."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..errors import ActionError, ScenarioError, check_action, check_bool, check_choice, check_int
from ..placement import Placement
from .action_space import MaskableDiscrete
from .assignment import render_modes
from .capabilities import Capabilities
from .episode import EpisodeConfig, episode_config
from .generator import Generator, resolve_generator
from .layout import DictLayout, make_layout
from .problem import Problem
from .refine_core import GAIN_CLIP, RATIO_CLIP, RefineCore, RefineEpisode
from .viewer import Viewer

STARTS = ("analytic", "random")
MAX_MOVES = 1_000_000      # an episode longer than this never ends in practice, and moves_left / max_moves
#                            would no longer tell the agent anything


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
                                batched=True, imitation_experts=("greedy",), pair_actions=True)

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
        self._core = core = RefineCore(E, C, self.max_moves, self.gain_observation)
        self.n_moves, self.n_swaps = core.n_moves, core.n_swaps
        self.stop_action = core.stop_action
        self.n_actions = n_actions = core.n_actions
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
        self._ep: RefineEpisode | None = None
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
        return self._running().moves.assignment

    @property
    def latency_s(self) -> float:
        return self._running().moves.total_s

    @property
    def placement(self) -> Placement | None:
        """The best placement of the episode so far (None before reset)."""
        return None if self._ep is None else self._ep.placement(self._ep.best)

    def decode(self, action: int) -> tuple[str, int, int]:
        """("move", expert, candidate), ("swap", x, y) or ("stop", -1, -1)."""
        return self._core.decode(action)

    def move_action(self, expert: int, candidate: int) -> int:
        return expert * self.n_candidates_max + candidate

    def swap_action(self, x: int, y: int) -> int:
        x, y = min(x, y), max(x, y)
        E = self.n_experts
        return self.n_moves + x * E - x * (x + 1) // 2 + (y - x - 1)

    def _running(self, what: str = "this") -> RefineEpisode:
        if self._ep is None:
            raise ActionError(f"{what} before reset(): call reset() first")
        return self._ep

    def action_masks(self) -> np.ndarray:
        """Bool (A,): the valid moves, swaps and the stop action."""
        return self._running("action_masks()").mask > 0

    def analytic_action(self) -> int:
        """The closed form's action: it is where the episode starts (by default), so it stops."""
        return self.stop_action

    def action_latency_s(self, action: int) -> float:
        """The stage latency after `action` (exact, from the evaluator's functions; not applied).
        An invalid action or stop leaves the latency as it is."""
        ep = self._running("action_latency_s()")
        kind, x, y = self.decode(check_action(action, self.n_actions))
        if kind == "move" and ep.moves.can_move(x, y):
            return ep.moves.move_latency_s(x, y)
        if kind == "swap" and ep.moves.can_swap(x, y):
            return ep.moves.swap_latency_s(x, y)
        return ep.moves.total_s

    def action_latencies_s(self) -> np.ndarray:
        """(A,) the stage latency after each action (nothing is applied): `action_latency_s`
        for all actions from one scoring of the whole neighbourhood (equal to it within
        1e-12 relative). Invalid actions and stop read the current latency."""
        return self._core.action_latencies_s(self._running("action_latencies_s()")).copy()

    def greedy_action(self) -> int:
        """Steepest descent: the valid action with the lowest latency after it (the first on
        ties), or stop when none improves by more than rounding."""
        return self._core.greedy_action(self._running("greedy_action()"))

    # ------------------------------------------------------------------------ gym API
    def _laid_out(self) -> dict[str, np.ndarray]:
        obs = {k: v[0] for k, v in self._core.observe([self._running()]).items()}
        return obs if isinstance(self.obs_layout, DictLayout) else self.obs_layout(obs)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = dict(options or {})
        placement = options.pop("placement", None)
        problem = self.generator(self.np_random, options)
        self._core.check_problem(problem, self.generator.spec)
        self._problem = problem
        self._ep = self._core.episode(problem, self._core.start_assignment(problem, placement, self.start,
                                                                            self.np_random))
        if self.render_mode == "human":
            self.render()
        return self._laid_out(), self._core.info(self._ep, False)

    def step(self, action):
        if self._ep is None:
            raise ActionError("step() before reset(): call reset() first")
        if self._ep.done:
            raise ActionError("step() after the episode ended: call reset()")
        reward, invalid = self._core.step(self._ep, check_action(action, self.n_actions))
        if self.render_mode == "human":
            self.render()
        return self._laid_out(), float(reward), self._ep.done, False, self._core.info(self._ep, invalid)

    def render(self):
        if self.render_mode is None or self._ep is None:
            return None
        return self._core.frame(self.viewer, self.render_mode, self._ep)

    def close(self):
        self.viewer.close()
        self._core.close()
