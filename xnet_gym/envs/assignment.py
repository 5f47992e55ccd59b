"""Sequential-assignment dynamics shared by ExpertPlacement-v0 and ModelPlacement-v0.

One step places one expert of the current layer on one candidate satellite of the layer's
subnet. The parts are swappable through the constructor: `generator` (episodes), `reward_fn`,
`observation` (the feature list) and `viewer`. The class docstrings of the two envs are the
user-facing documentation.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import ActionError, ScenarioError, check_action, check_choice, field_error
from ..placement import Placement
from . import scoring
from .action_space import MaskableDiscrete
from .capabilities import Capabilities
from .episode import EpisodeConfig, episode_config
from .generator import Generator, resolve_generator
from .layout import DictLayout, make_layout
from .observation import ObservationBuilder, Progress
from .problem import Problem
from .reward import INVALID_ACTION_PENALTY, REWARDS
from .viewer import Viewer

_ZERO = np.float64(0.0)
_SMALL_INTS = [np.int64(i) for i in range(4097)]     # info values without a NumPy call per step


def _int64(value: int) -> np.int64:
    return _SMALL_INTS[value] if value <= 4096 else np.int64(value)


def _no_start(problem: Problem) -> None:
    """For a reward_fn without a `start` (module-level, so the env pickles)."""


def render_modes() -> list[str]:
    """`human` (the ansi view printed to the terminal at every reset and step: a text env
    needs no window, and gymnasium would otherwise wrap `rgb_array` in a pygame window), `ansi`,
    and `rgb_array` only where matplotlib is installed, so env checkers see what can render."""
    try:
        found = importlib.util.find_spec("matplotlib") is not None
    except (ImportError, ValueError):      # a broken or blocked install counts as absent
        found = False
    return ["human", "ansi", "rgb_array"] if found else ["human", "ansi"]


class AssignmentEnv(gym.Env):
    metadata: dict[str, Any] = {"render_modes": render_modes(), "render_fps": 4}  # noqa: RUF012 (gymnasium's attribute)
    scope = "stage"
    capabilities = Capabilities()

    def __init__(self, scenario=None, *, episode: EpisodeConfig | None = None, reward="dense", render_mode=None,
                 generator: Generator | None = None, reward_fn=None, viewer=None,
                 observation: ObservationBuilder | None = None, obs_layout="dict", **settings):
        self.episode = episode_config(type(self).__name__, scenario, episode, settings)
        if render_mode is not None:
            check_choice(ScenarioError, "render_mode", render_mode, self.metadata["render_modes"])
        if reward_fn is None:
            reward_fn = REWARDS[check_choice(ScenarioError, "reward", reward, tuple(REWARDS))]()
        generator = resolve_generator(generator, self.episode, self.scope)
        self.generator = generator
        self.reward_fn = reward_fn
        self._reward_start = getattr(reward_fn, "start", _no_start)
        self.render_mode = render_mode
        self.viewer = viewer or Viewer()
        self.observation_builder = observation or ObservationBuilder()
        C = generator.spec.n_candidates_max
        self.n_candidates_max = C
        self.obs_layout = make_layout(obs_layout)
        self.observation_space = self.obs_layout.space(self.observation_builder.space(generator.spec))
        self.action_space = MaskableDiscrete(C)
        self._problem: Problem | None = None

    # ------------------------------------------------------------------ public progress
    @property
    def problem(self) -> Problem | None:
        """The episode's problem (None before the first reset)."""
        return self._problem

    @property
    def layer_index(self) -> int:
        """Row of the problem being placed (0 for ExpertPlacement); n_rows once done."""
        return self._li

    @property
    def current_layer(self) -> int | None:
        """The model layer being placed; None when the episode is over."""
        return None if self._done else self._layers[self._li]

    @property
    def current_expert(self) -> int | None:
        """The expert the next action places; None when the episode is over."""
        return None if self._done else self._order[self._li][self._j]

    @property
    def assignment(self) -> np.ndarray:
        """(n_rows, E) candidate index of each expert of the episode's rows, -1 where not yet
        placed (read-only view)."""
        view = self._cand_index.view()
        view.flags.writeable = False
        return view

    @property
    def placement(self) -> Placement | None:
        """The episode's final Placement once it has terminated, else None."""
        return self._final

    # ------------------------------------------------------------------------ state
    def _start(self, problem: Problem) -> None:
        if problem.spec is not self.generator.spec and problem.spec != self.generator.spec:
            raise field_error(ScenarioError, "generator problem spec", problem.spec,
                              f"must equal the generator's spec {self.generator.spec}, which sized the spaces")
        b, first = problem.batch, problem.first
        n, C, E = problem.n_rows, self.n_candidates_max, problem.spec.n_experts
        rows = slice(first, first + n)
        self._problem = problem
        self._li = self._j = 0
        self._E = E
        self._n = n
        self._done = False
        self._final: Placement | None = None
        self._last_choice: int | None = None           # satellite of the last step, for render
        self._capacity = problem.spec.capacity
        self._experts = problem.base_experts.copy()           # the rows are overwritten as experts are placed
        self._cand_index = np.empty((n, E), dtype=np.int64)
        self._cand_index.fill(-1)
        self._count = [[0] * C for _ in range(n)]          # experts per candidate, read every step
        self._shaped = 0.0
        self._invalid = 0
        self._reference_s = np.float64(problem.reference_s)
        self._padding_ok = np.arange(C)[None, :] < b.n_candidates[rows, None]          # (n, C)
        # Python lists of what every step reads: a list index is several times cheaper than
        # a NumPy scalar index, and these are tiny.
        self._order = b.order[rows].tolist()
        self._layers = b.layers[rows].tolist()
        self._layer_ints = [np.int64(layer) for layer in self._layers]
        self._candidates = b.candidates[rows].tolist()
        self._first = first
        self._mask = self._padding_ok[0].copy()
        self._progress = p = Progress(n, C, n * E)
        p.mask_f[:] = self._mask
        self.observation_builder.start(problem)
        self._reward_start(problem)
        # The builder's bound methods, called directly: one call less per step.
        observe, layout = self.observation_builder.observe, self.obs_layout
        self._observe = observe if isinstance(layout, DictLayout) else functools.partial(layout.observe, observe)
        self._feature_placers = self.observation_builder.placers

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self._problem is not None:                 # pickled mid-episode: rebuild the caches
            self.observation_builder.resume(self._problem)

    def action_masks(self) -> np.ndarray:
        """Bool (n_candidates_max,): candidates with a free seat. Never all False mid-episode."""
        if self._problem is None:
            raise ActionError("action_masks() before reset(): call reset() first")
        return self._mask.copy()

    def analytic_action(self) -> int:
        """The candidate index the analytic (sort-match) placement uses for the current expert;
        if the agent has filled that satellite, the cheapest candidate with a free seat."""
        if self._problem is None or self._done:
            raise ActionError("analytic_action() needs an episode in progress: call reset() first")
        b, row = self._problem.batch, self._first + self._li
        idx = int(b.analytic_index[row, self._order[self._li][self._j]])
        if self._mask[idx]:
            return idx
        return int(np.argmin(np.where(self._mask, b.cost_s[row], np.inf)))

    def _observation(self) -> dict:
        if self._done:
            li = self._n - 1
            e = self._order[li][-1]
        else:
            li = self._li
            e = self._order[li][self._j]
        return self._observe(self._progress, li, e)

    # ------------------------------------------------------------------------ gym API
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._start(self.generator(self.np_random, options))
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info(self._layers[0], False, _ZERO, _ZERO)

    def step(self, action):
        problem = self._problem
        if problem is None:
            raise ActionError("step() before reset(): call reset() first")
        if self._done:
            raise ActionError("step() after the episode ended: call reset()")
        a = check_action(action, self.n_candidates_max)
        li = self._li
        e = self._order[li][self._j]
        mask = self._mask
        invalid = not mask[a]
        if invalid:
            a = int(np.argmin(np.where(mask, problem.batch.cost_s[self._first + li], np.inf)))
            self._invalid += 1
        layer = self._layers[li]
        self._experts[layer, e] = self._last_choice = self._candidates[li][a]
        self._cand_index[li, e] = a
        counts = self._count[li]
        count = counts[a] = counts[a] + 1
        progress = self._progress
        progress.occupancy[li, a] = count / self._capacity
        full = count >= self._capacity
        if full:
            mask[a] = False
        for place in self._feature_placers:
            place(li, e, a)
        shaped = self.reward_fn.step(problem, li, e, a)
        self._shaped += shaped
        reward = shaped - (INVALID_ACTION_PENALTY if invalid else 0.0)
        self._j += 1
        progress.step += 1
        if self._j == self._E:
            self._li += 1
            self._j = 0
            if self._li < self._n:
                self._mask = self._padding_ok[self._li].copy()
                progress.mask_f[:] = self._mask
                progress.layer_index = self._li
            else:
                self._done = True                  # the observation keeps the last valid mask
        elif full:
            progress.mask_f[a] = 0.0
        if self._done:
            placement = Placement(problem.gateways, self._experts)
            latency = scoring.objective_s(problem, placement, self._cand_index)
            self._final = placement
            reward += self.reward_fn.final(problem, latency, self._shaped)
            info = self._info(layer, invalid, np.float64(latency), np.float64(latency / problem.reference_s))
        else:                                    # the common step, built inline: no call per key
            j, n_invalid = self._j, self._invalid
            info = {"layer": self._layer_ints[li], "step_in_layer": _SMALL_INTS[j] if j <= 4096 else np.int64(j),
                    "invalid_action": np.True_ if invalid else np.False_,
                    "invalid_actions": _SMALL_INTS[n_invalid] if n_invalid <= 4096 else np.int64(n_invalid),
                    "latency_s": _ZERO, "analytic_latency_s": self._reference_s, "ratio_to_analytic": _ZERO}
        if self.render_mode == "human":
            self.render()
        return self._observation(), float(reward), self._done, False, info

    def _info(self, layer: int, invalid: bool, latency_s, ratio) -> dict:
        """The same keys on every step and reset, every value a NumPy scalar (replay buffers
        and info readers of other RL libraries need both). `latency_s` and
        `ratio_to_analytic` are 0.0 until the last step; the final placement is
        `env.unwrapped.placement`."""
        return {"layer": _int64(layer), "step_in_layer": _int64(self._j),
                "invalid_action": np.True_ if invalid else np.False_, "invalid_actions": _int64(self._invalid),
                "latency_s": latency_s, "analytic_latency_s": self._reference_s, "ratio_to_analytic": ratio}

    def render(self):
        if self.render_mode is None or self._problem is None:
            return None
        li = min(self._li, self._n - 1)
        shown = self._experts.copy()
        shown[self._layers] = np.where(self._cand_index >= 0, shown[self._layers], -1)
        current = None if self._done else self.current_expert
        draw = self.viewer.rgb_array if self.render_mode == "rgb_array" else self.viewer.ansi
        frame = draw(self._problem, li, shown, current=current, choice=self._last_choice)
        if self.render_mode == "human":
            print(frame, flush=True)
            return None
        return frame

    def close(self):
        self.viewer.close()
