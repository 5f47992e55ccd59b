"""`xnet_gym/ExpertReplace-v0`: re-place one layer's experts window by window as the workload drifts."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..activation import coactivation_from_sets
from ..analytic import analytic_placement
from ..errors import ActionError, ScenarioError, check_action, check_bool, check_choice, check_int, field_error
from ..instance import build_instance
from ..migration import MigrationSpec
from ..moves import LayerMoves
from ..replacement import ReplaceEpisode, WindowScore, draw_episode
from ..scenario import load_scenario
from ..workload import SPLITS, WorkloadSpec, load_sources
from .action_space import MaskableDiscrete
from .assignment import render_modes
from .capabilities import Capabilities
from .layout import DictLayout, make_layout
from .problem import Problem, ProblemSpec
from .refine_core import GAIN_CLIP, IMPROVES, RATIO_CLIP, RefineCore, RefineEpisode
from .viewer import Viewer

DEFAULT_SCENARIO = "deepseek-esft-packed-drift"
INFO_KEYS = ("window", "invalid_action", "invalid_actions", "moves_left", "moved_experts", "budget_left_bytes",
             "estimated_latency_s", "window_latency_s", "reference_latency_s", "ratio_to_reference",
             "migration_bytes", "migration_link_bytes", "cutover_s", "migration_cost_s", "mean_ratio_to_reference")


def _override(kind, base, value, field: str):
    """A spec from the scenario's, replaced by a spec or changed by a dict of its fields."""
    if value is None:
        return base
    if isinstance(value, kind):
        return value
    if isinstance(value, dict):
        names = {f.name for f in dataclasses.fields(kind)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise field_error(ScenarioError, f"{field}.{unknown[0]}", value[unknown[0]],
                              f"unknown key; allowed: {', '.join(sorted(names))}")
        return dataclasses.replace(base, **value) if base is not None else kind(**value)
    raise field_error(ScenarioError, field, value, f"must be a {kind.__name__} or a dict of its fields")


class ExpertReplaceEnv(gym.Env):
    """
    ## Description

    Online re-placement. One MoE layer is served over a run of windows whose routing drifts
    (a mix of ESFT tasks on a schedule, or synthetic profiles) while the orbit turns (each
    window spans its own time steps). Before each window the agent sees the routing served so
    far (never the coming window's) and the orbit ahead, and re-places experts by moves and
    swaps within the window's migration budget, then commits. Committing serves the window:
    the copies of the moved experts' weights fly over the ISLs while the old placement keeps
    serving (make-before-break), then the new placement takes over. The score of a window is
    its expert-stage latency, copies in flight included, over the closed form's fit on the
    window's true routing (the oracle's reference, docs/model.md "Re-placement and migration").
    Every latency comes from the project's one evaluator, through
    `xnet_gym.replacement.ReplaceEpisode.serve`.

    ## Action Space

    ExpertRefine-v0's: `Discrete(E*C + E*(E-1)/2 + 1)`, moves of expert `a // C` to candidate
    `a % C`, then swaps of experts `x < y` (`numpy.triu_indices(E, 1)` order), then **commit**
    (the last action: serve the window with the current placement). A move or swap is valid
    when ExpertRefine-v0 allows it and the experts away from the window's start placement
    after it still fit the budget (`budget_bytes // expert bytes` experts; a swap moves two),
    and while moves are left in the window. Commit is always valid. A masked-out action does
    not raise: nothing moves, the step costs 0.1 and `info["invalid_action"]` is True.
    `greedy_action()` is steepest descent on the routing history within the budget (commit
    when nothing lowers the estimate).

    ## Observation Space

    ExpertRefine-v0's keys, on the **estimate** (the last `history_tokens` served tokens on
    the coming window's time steps), and the drift's own:

    | key | shape | meaning | range |
    |---|---|---|---|
    | `expert_probability` | (E,) | activation probability in the history | [0, 1] |
    | `expert_rank` | (E,) | popularity rank / E in the history (0 = most active) | [0, 1] |
    | `expert_bottleneck` | (E,) | share of its token-time-steps as its set's slowest member (estimate) | [0, 1] |
    | `assignment` | (E*C,) | one-hot, row-major by expert: each expert's candidate now | {0, 1} |
    | `candidate_cost` | (C,) | expected stage cost per candidate, coming window, min-max normalised | [0, 1] |
    | `candidate_occupancy` | (C,) | experts on the candidate / capacity | [0, 1] |
    | `progress` | (3,) | moves left / `max_moves`; current and best estimate / its closed form's (clip 16) | [0, 16] |
    | `pooled_probability` | (E,) | activation probability over every token served so far | [0, 1] |
    | `coactivation` | (E*E,) | P(f active given e active) in the history, row-major | [0, 1] |
    | `moved` | (E,) | 1 where the expert is away from the window's start placement | {0, 1} |
    | `window` | (4,) | windows served / W; sin, cos of the coming window's orbit phase; budget left share | [-1, 1] |
    | `action_mask` | (A,) | 1 where the action is valid | {0, 1} |
    | `action_gain` | (A,) | `gain_observation=True`: each action's gain on the estimate / its closed form | [-1, 1] |

    ## Rewards

    0 for a move or swap (−0.1 if invalid). Committing window `j` of `W` gives
    `−(latency_j / reference_j) / W`, so the return is minus the mean ratio to the per-window
    closed form: −1.0 matches an oracle that fits each window's true routing and moves for
    free.

    ## Starting State

    `reset` draws, from `self.np_random` only: the layer (unless `layer` is fixed), the first
    time step, the schedule's phase and every window's tokens (from the train or test split of
    each source). The placement starts at the closed form fit on the warm-up window (routing
    seen before serving starts). Options: `layer`.

    ## Episode End

    Terminates after the `W`-th commit. A window allows `max_moves` moves or swaps, then only
    commit is valid, so an episode has at most `W * (max_moves + 1)` steps. Never truncates.

    ## Arguments

    ```python
    gymnasium.make("xnet_gym/ExpertReplace-v0", scenario="deepseek-esft-packed-drift", workload=None,
                   migration=None, layer=None, split="train", max_moves=None, gain_observation=False,
                   obs_layout="dict", render_mode=None)
    ```

    `scenario`: a preset or file with a `[workload]` table (presets `deepseek-esft-drift`,
    `deepseek-esft-packed-drift`). `workload` / `migration`: a `WorkloadSpec` /
    `MigrationSpec`, or a dict of fields changing the scenario's. `layer`: fix the layer.
    `split`: `"train"` or `"test"` (held-out tokens). `max_moves`: moves per window (default:
    the experts the budget allows, at least 1, at most E). `obs_layout`: `"dict"`, `"flat"`
    or `"tianshou"`, as for the other envs. `render_mode`: `"ansi"`, `"human"` or
    `"rgb_array"` (the current placement).

    ## Version History

    - v0: initial release.
    """

    metadata: dict[str, Any] = {"render_modes": render_modes(), "render_fps": 4}  # noqa: RUF012 (gymnasium's attribute)
    capabilities = Capabilities(greedy=True, gain_observation=True, imitation_experts=("greedy", "lookahead"),
                                pair_actions=True, episode_settings=False)

    def __init__(self, scenario=DEFAULT_SCENARIO, *, workload=None, migration=None, layer=None, split="train",
                 max_moves=None, gain_observation=False, obs_layout="dict", render_mode=None, viewer=None):
        sc = load_scenario(scenario)
        wl = _override(WorkloadSpec, sc.workload, workload, "workload")
        if wl is None:
            raise field_error(ScenarioError, "workload", None, f"scenario {sc.name!r} has no [workload] table: give "
                                                               "workload=... or a drift preset")
        mg = _override(MigrationSpec, sc.migration, migration, "migration")
        self.scenario = sc = dataclasses.replace(sc, workload=wl, migration=mg)
        self.workload, self.migration = wl, mg
        self.split = check_choice(ScenarioError, "split", split, SPLITS)
        if render_mode is not None:
            check_choice(ScenarioError, "render_mode", render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.gain_observation = check_bool(ScenarioError, "gain_observation", gain_observation)
        self.instance = inst = build_instance(sc)
        self.layer = None if layer is None else check_int(ScenarioError, "layer", layer, 0, inst.n_layers - 1)
        # The sources (synthetic pools too) are fixed per env, from the scenario seed, like the orbit.
        self.sources = load_sources(wl, sc, inst.trace, np.random.default_rng(sc.seed))
        self.base = analytic_placement(inst)
        self.problem_spec = ProblemSpec.of(inst)
        E, C = self.problem_spec.n_experts, self.problem_spec.n_candidates_max
        probe = draw_episode(inst, wl, mg, self.sources, np.random.default_rng(0), layer=0, base=self.base)
        self.budget_experts = probe.budget_experts
        self.max_moves = max(1, min(E, self.budget_experts)) if max_moves is None else \
            check_int(ScenarioError, "max_moves", max_moves, 1, 1_000_000)
        self.n_windows = wl.windows
        self.n_experts, self.n_candidates_max = E, C
        self._core = core = RefineCore(E, C, self.max_moves, self.gain_observation)
        self.n_moves, self.n_swaps, self.commit_action = core.n_moves, core.n_swaps, core.stop_action
        self.n_actions = core.n_actions
        self.action_space = MaskableDiscrete(self.n_actions)
        box = spaces.Box
        obs_spaces: dict[str, spaces.Space] = {
            "expert_probability": box(0.0, 1.0, (E,), np.float32),
            "expert_rank": box(0.0, 1.0, (E,), np.float32),
            "expert_bottleneck": box(0.0, 1.0, (E,), np.float32),
            "assignment": box(0.0, 1.0, (E * C,), np.float32),
            "candidate_cost": box(0.0, 1.0, (C,), np.float32),
            "candidate_occupancy": box(0.0, 1.0, (C,), np.float32),
            "progress": box(0.0, RATIO_CLIP, (3,), np.float32),
            "pooled_probability": box(0.0, 1.0, (E,), np.float32),
            "coactivation": box(0.0, 1.0, (E * E,), np.float32),
            "moved": box(0.0, 1.0, (E,), np.float32),
            "window": box(-1.0, 1.0, (4,), np.float32),
            "action_mask": box(0.0, 1.0, (self.n_actions,), np.float32),
        }
        if self.gain_observation:
            obs_spaces["action_gain"] = box(-GAIN_CLIP, GAIN_CLIP, (self.n_actions,), np.float32)
        self.obs_layout = make_layout(obs_layout)
        self.observation_space = self.obs_layout.space(spaces.Dict(obs_spaces))
        self.viewer = viewer or Viewer()
        self.episode: ReplaceEpisode | None = None
        self._ep: RefineEpisode | None = None
        self._scores: list[WindowScore] = []
        self._truth: LayerMoves | None = None

    # ------------------------------------------------------------------ the episode's state
    @property
    def window(self) -> int:
        """The window being prepared (1..W; W + 1 once the episode is over)."""
        return len(self._scores) + 1

    @property
    def scores(self) -> list[WindowScore]:
        """The served windows' scores so far."""
        return list(self._scores)

    def _running(self, what: str = "this") -> RefineEpisode:
        if self._ep is None or self.episode is None:
            raise ActionError(f"{what} before reset(): call reset() first")
        return self._ep

    def _episode(self) -> ReplaceEpisode:
        if self.episode is None:
            raise ActionError("step() before reset(): call reset() first")
        return self.episode

    def _prepare(self, assignment: np.ndarray) -> None:
        """Window `self.window`'s estimate, from the current assignment."""
        ep = self._episode()
        history = ep.history_instance(self.window)
        problem = Problem.from_instance(history, layers=[ep.layer], gateways=ep.base.gateways, spec=self.problem_spec,
                                        base_experts=ep.base.experts)
        self._ep = self._core.episode(problem, assignment)
        self._start = assignment.copy()
        self._truth = None          # the coming window's true scoring, built by lookahead_action
        sets, counts = history.trace.active_sets(ep.layer)
        self._coactivation = coactivation_from_sets(sets, counts, self.n_experts).astype(np.float32).ravel()
        served = ep.windows.history(self.window, self.window * ep.windows.traces[0].n_tokens)
        self._pooled = served.layer_probabilities(ep.layer).astype(np.float32)
        self._update_mask()

    def _moved_after(self) -> tuple[np.ndarray, np.ndarray]:
        """Experts away from the window's start after each move (E, C) and each swap (n_swaps,)."""
        ep = self._running()
        a, s = ep.moves.views()[0], self._start
        moved = (a != s).astype(np.int64)
        n = int(moved.sum())
        core = self._core
        move_after = n - moved[:, None] + (np.arange(self.n_candidates_max)[None, :] != s[:, None])
        x, y = core.swap_x, core.swap_y
        swap_after = n - moved[x] - moved[y] + (a[y] != s[x]) + (a[x] != s[y])
        return move_after, swap_after

    def _update_mask(self) -> None:
        ep = self._running()
        mask = self._core.mask_now(ep)
        if ep.moves_left <= 0:
            mask[:-1] = 0.0
        else:
            move_after, swap_after = self._moved_after()
            mask[: self.n_moves] *= (move_after <= self.budget_experts).ravel()
            mask[self.n_moves: self.commit_action] *= swap_after <= self.budget_experts
        ep.mask = mask

    def action_masks(self) -> np.ndarray:
        return self._running("action_masks()").mask > 0

    def decode(self, action: int) -> tuple[str, int, int]:
        """("move", expert, candidate), ("swap", x, y) or ("commit", -1, -1)."""
        kind, x, y = self._core.decode(action)
        return ("commit", x, y) if kind == "stop" else (kind, x, y)

    def greedy_action(self) -> int:
        """Steepest descent on the estimate within the budget: the valid move or swap that lowers
        the estimated latency most (the first on ties), or commit when none does."""
        ep = self._running("greedy_action()")
        after = np.where(ep.mask[:-1] > 0, self._core.action_latencies_s(ep)[:-1], np.inf)
        best = int(np.argmin(after))
        return best if after[best] < ep.moves.total_s * (1.0 - IMPROVES) else self.commit_action

    def lookahead_action(self) -> int:
        """A privileged teacher for imitation: `greedy_action` scored on the coming window's
        true routing instead of the history (what the agent never observes)."""
        ep = self._running("lookahead_action()")
        a = ep.moves.assignment
        episode = self._episode()
        if self._truth is None:
            self._truth = LayerMoves.for_layer(episode.window_instance(self.window), episode.placement(a),
                                               episode.layer)
        elif not np.array_equal(self._truth.assignment, a):
            self._truth.set_assignment(a)
        move_s, swap_s = self._truth.neighbourhood_latency_s()
        now = self._truth.total_s
        moves = np.full((self.n_experts, self.n_candidates_max), now)      # padded candidates: masked anyway
        moves[:, : move_s.shape[1]] = move_s
        after = np.concatenate([moves.ravel(), swap_s[self._core.swap_x, self._core.swap_y]])
        after = np.where(ep.mask[:-1] > 0, after, np.inf)
        best = int(np.argmin(after))
        return best if after[best] < now * (1.0 - IMPROVES) else self.commit_action

    # ------------------------------------------------------------------------ gym API
    def _observe(self) -> dict[str, np.ndarray]:
        ep = self._running()
        obs = {k: v[0] for k, v in self._core.observe([ep]).items()}
        W = self.n_windows
        step = int(self._episode().windows.time_steps[min(self.window, W)][0])
        phase = 2.0 * np.pi * step / self.instance.topology.n_time_steps
        moved = ep.moves.views()[0] != self._start
        left = 1.0 - moved.sum() / self.budget_experts if self.budget_experts else 0.0
        obs.update(pooled_probability=self._pooled.copy(), coactivation=self._coactivation.copy(),
                   moved=moved.astype(np.float32),
                   window=np.array([len(self._scores) / W, np.sin(phase), np.cos(phase), left], dtype=np.float32))
        obs = dict(sorted(obs.items()))
        return obs if isinstance(self.obs_layout, DictLayout) else self.obs_layout(obs)

    def _info(self, invalid: bool) -> dict:
        ep = self._running()
        last = self._scores[-1] if self._scores else None
        nan = np.float64(0.0)         # before the first commit (NaN would break equality checks of info)
        moved = int(np.count_nonzero(ep.moves.views()[0] != self._start))
        mean = np.mean([s.ratio for s in self._scores]) if self._scores else 0.0
        return {"window": np.int64(self.window), "invalid_action": np.bool_(invalid),
                "invalid_actions": np.int64(self._invalid), "moves_left": np.int64(max(ep.moves_left, 0)),
                "moved_experts": np.int64(moved),
                "budget_left_bytes": np.float64(self._episode().budget_bytes - moved * self._episode().expert_bytes),
                "estimated_latency_s": np.float64(ep.moves.total_s),
                "window_latency_s": np.float64(last.latency_s) if last else nan,
                "reference_latency_s": np.float64(last.reference_s) if last else nan,
                "ratio_to_reference": np.float64(last.ratio) if last else nan,
                "migration_bytes": np.int64(last.bytes if last else 0),
                "migration_link_bytes": np.int64(last.link_bytes if last else 0),
                "cutover_s": np.float64(last.cutover_s) if last else nan,
                "migration_cost_s": np.float64(last.migration_cost_s) if last else nan,
                "mean_ratio_to_reference": np.float64(mean)}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        options = dict(options or {})
        layer = options.pop("layer", self.layer)
        if options:
            raise field_error(ScenarioError, "reset options", sorted(options), "allowed: layer")
        self.episode = draw_episode(self.instance, self.workload, self.migration, self.sources,
                                    self.np_random, layer=layer, split=self.split, base=self.base)
        self._scores, self._invalid, self._done = [], 0, False
        self._prepare(self.episode.start)
        if self.render_mode == "human":
            self.render()
        return self._observe(), self._info(False)

    def step(self, action):
        ep = self._running("step()")
        if self._done:
            raise ActionError("step() after the episode ended: call reset()")
        action = check_action(action, self.n_actions)
        invalid = ep.mask[action] == 0
        reward = 0.0
        if invalid:
            self._invalid += 1
            reward -= 0.1
        elif action == self.commit_action:
            a = ep.moves.assignment
            score = self._episode().serve(self.window, self._start, a)
            self._scores.append(score)
            reward = -score.ratio / self.n_windows
            self._done = len(self._scores) == self.n_windows
            if not self._done:
                self._prepare(a)
        else:
            self._core.step(ep, action)
            self._update_mask()
        if self.render_mode == "human":
            self.render()
        return self._observe(), float(reward), self._done, False, self._info(bool(invalid))

    def render(self):
        if self.render_mode is None or self._ep is None:
            return None
        return self._core.frame(self.viewer, self.render_mode, self._ep)

    def close(self):
        self.viewer.close()
        self._core.close()
