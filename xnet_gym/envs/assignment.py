"""The Gymnasium env of ExpertPlacement-v0 and ModelPlacement-v0: the batched core at N = 1.

One step places one expert of the current layer on one candidate satellite of the layer's
subnet; the dynamics, features and rewards are `core.AssignmentCore`'s, the same code the
batched vector env steps N at a time. This class adds what one Gymnasium episode needs:
its problem from the generator, its final score, `info`, rendering. The parts are swappable
through the constructor: `generator` (episodes), `reward_fn`, `observation` (the feature
list) and `viewer`. The class docstrings of the two envs are the user-facing documentation.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import gymnasium as gym
import numpy as np

from ..errors import ActionError, ScenarioError, check_action, check_choice, field_error
from ..placement import Placement
from . import scoring
from .action_space import MaskableDiscrete
from .capabilities import Capabilities
from .core import AssignmentCore
from .episode import EpisodeConfig, episode_config
from .generator import Generator, resolve_generator
from .layout import DictLayout, make_layout
from .observation import ObservationBuilder
from .problem import Problem
from .reward import REWARDS
from .viewer import Viewer

_ZERO = np.float64(0.0)
_SMALL_INTS = [np.int64(i) for i in range(4097)]     # info values without a NumPy call per step


def _int64(value: int) -> np.int64:
    return _SMALL_INTS[value] if value <= 4096 else np.int64(value)


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
        self.render_mode = render_mode
        self.viewer = viewer or Viewer()
        self.observation_builder = observation or ObservationBuilder()
        C = generator.spec.n_candidates_max
        self.n_candidates_max = C
        self.obs_layout = make_layout(obs_layout)
        self.observation_space = self.obs_layout.space(self.observation_builder.space(generator.spec))
        self.action_space = MaskableDiscrete(C)
        self._problem: Problem | None = None
        self._core = AssignmentCore(generator.spec, self.observation_builder, reward_fn)
        self._tables_of: tuple = (None, None)          # (block of rows, its feature tables)
        self._action = np.zeros(1, dtype=np.int64)

    # ------------------------------------------------------------------ public progress
    @property
    def problem(self) -> Problem | None:
        """The episode's problem (None before the first reset)."""
        return self._problem

    @property
    def layer_index(self) -> int:
        """Row of the problem being placed (0 for ExpertPlacement); n_rows once done."""
        state = self._core.state
        assert state is not None
        return state.layer_index + (1 if self._core.done else 0)

    @property
    def current_layer(self) -> int | None:
        """The model layer being placed; None when the episode is over."""
        return None if self._core.done else int(self._core.rows.layers[self._core.state.row[0]])

    @property
    def current_expert(self) -> int | None:
        """The expert the next action places; None when the episode is over."""
        return None if self._core.done else int(self._core.state.expert[0])

    @property
    def assignment(self) -> np.ndarray:
        """(n_rows, E) candidate index of each expert of the episode's rows, -1 where not yet
        placed (read-only view)."""
        view = self._core.candidate_index.view()
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
        self._problem = problem
        self._final: Placement | None = None
        self._last: tuple | None = None                # (row, candidate index) of the last step, for render
        block, tables = self._tables_of
        if block is not problem.batch:                 # feature tables once per generator block
            tables = self.observation_builder.tables(problem.batch, problem.spec)
            self._tables_of = (problem.batch, tables)
        self._core.start(problem.batch, np.array([problem.first]), problem.n_rows, tables,
                         np.array([problem.reference_s]))
        self._reference_s = np.float64(problem.reference_s)
        self._layer_ints = [np.int64(layer) for layer in problem.batch.layers[problem.first:
                                                                               problem.first + problem.n_rows]]
        layout = self.obs_layout
        self._dict_layout = isinstance(layout, DictLayout)

    def __getstate__(self):
        # The block's tables are a cache: rebuilt from the problem after unpickling.
        return {**self.__dict__, "_tables_of": (None, None)}

    def action_masks(self) -> np.ndarray:
        """Bool (n_candidates_max,): candidates with a free seat. Never all False mid-episode."""
        if self._problem is None:
            raise ActionError("action_masks() before reset(): call reset() first")
        return self._core.mask[0].copy()

    def analytic_action(self) -> int:
        """The candidate index the analytic (sort-match) placement uses for the current expert;
        if the agent has filled that satellite, the cheapest candidate with a free seat."""
        if self._problem is None or self._core.done:
            raise ActionError("analytic_action() needs an episode in progress: call reset() first")
        return int(self._core.analytic_actions()[0])

    def _observation(self) -> dict:
        obs = self.observation_builder.observe_first(self._core.state)
        return obs if self._dict_layout else self.obs_layout(obs)

    # ------------------------------------------------------------------------ gym API
    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._start(self.generator(self.np_random, options))
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info(self._layer_ints[0], False, _ZERO, _ZERO)

    def step(self, action):
        problem = self._problem
        if problem is None:
            raise ActionError("step() before reset(): call reset() first")
        core = self._core
        if core.done:
            raise ActionError("step() after the episode ended: call reset()")
        a = check_action(action, self.n_candidates_max)
        li = core.state.layer_index
        self._action[0] = a
        rewards, invalid_flags = core.step(self._action)
        invalid = bool(invalid_flags[0])
        reward = float(rewards[0])
        layer = self._layer_ints[li]
        self._last = (li, int(core.last_action[0]))
        if core.done:
            experts = problem.base_experts.copy()
            experts[problem.batch.layers[problem.first: problem.first + problem.n_rows]] = core.satellites()
            placement = Placement(problem.gateways, experts)
            latency = scoring.objective_s(problem, placement, core.candidate_index)
            self._final = placement
            reward = float(reward + core.finish(np.array([latency]))[0])
            info = self._info(layer, invalid, np.float64(latency), np.float64(latency / problem.reference_s))
        else:                                    # the common step, built inline: no call per key
            j, n_invalid = core.step_in_layer, int(core.invalid[0])
            info = {"layer": layer, "step_in_layer": _SMALL_INTS[j] if j <= 4096 else np.int64(j),
                    "invalid_action": np.True_ if invalid else np.False_,
                    "invalid_actions": _SMALL_INTS[n_invalid] if n_invalid <= 4096 else np.int64(n_invalid),
                    "latency_s": _ZERO, "analytic_latency_s": self._reference_s, "ratio_to_analytic": _ZERO}
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, core.done, False, info

    def _info(self, layer, invalid: bool, latency_s, ratio) -> dict:
        """The same keys on every step and reset, every value a NumPy scalar (replay buffers
        and info readers of other RL libraries need both). `latency_s` and
        `ratio_to_analytic` are 0.0 until the last step; the final placement is
        `env.unwrapped.placement`."""
        return {"layer": _int64(layer), "step_in_layer": _int64(self._core.step_in_layer),
                "invalid_action": np.True_ if invalid else np.False_,
                "invalid_actions": _int64(int(self._core.invalid[0])),
                "latency_s": latency_s, "analytic_latency_s": self._reference_s, "ratio_to_analytic": ratio}

    def render(self):
        if self.render_mode is None or self._problem is None:
            return None
        core, problem = self._core, self._problem
        shown = problem.base_experts.copy()
        shown[problem.batch.layers[problem.first: problem.first + problem.n_rows]] = core.satellites()
        li = min(core.state.layer_index, problem.n_rows - 1)
        current = None if core.done else self.current_expert
        choice = None
        if self._last is not None:
            choice = int(problem.batch.candidates[problem.first + self._last[0], self._last[1]])
        return self.viewer.frame(self.render_mode, problem, li, shown, current=current, choice=choice)

    def close(self):
        self.viewer.close()
