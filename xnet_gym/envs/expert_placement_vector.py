"""`ExpertPlacement-v0`'s batched vector env: N episodes stepped by one set of NumPy calls."""

from __future__ import annotations

import math
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..errors import ActionError, ScenarioError, check_actions, check_bool, check_choice, check_int, field_error
from ..instance import MEMORY_LIMIT_BYTES
from ..placement import Placement
from . import scoring
from .action_space import MaskableDiscrete
from .autoreset import check_vector_settings
from .core import AssignmentCore
from .episode import EpisodeConfig, episode_config
from .generator import PlacementGenerator
from .layout import DictLayout, make_layout
from .observation import ObservationBuilder
from .problem import LayerRows, Problem
from .reward import REWARDS

INFO_KEYS = ("layer", "step_in_layer", "invalid_action", "invalid_actions", "latency_s", "analytic_latency_s",
             "ratio_to_analytic")


def batch_bytes_per_env(generator: PlacementGenerator) -> int:
    """About what one sub-env's rows and features take (float64 legs per training time step
    and candidate, its distinct active sets, per-candidate and per-expert tables), twice: the
    batch that steps and the one prefetched beside it."""
    spec = generator.spec
    K = generator.train_time_steps or len(generator.base.time_steps)
    C, E, k = spec.n_candidates_max, spec.n_experts, spec.top_k
    sets = min(generator._profile_tokens, math.comb(E, k))          # distinct active sets of a profile
    return 2 * 8 * (K * C + sets * (k + 1) + 32 * C + 16 * E)


def _check_batch_memory(num_envs: int, generator: PlacementGenerator) -> None:
    per_env = batch_bytes_per_env(generator)
    if num_envs * per_env > MEMORY_LIMIT_BYTES:
        raise field_error(ScenarioError, "num_envs", num_envs,
                          f"needs about {num_envs * per_env / 2**30:.1f} GiB of batch state (about "
                          f"{per_env / 1024:.0f} KiB per sub-env on {generator.base.scenario.name}); the limit is "
                          f"{MEMORY_LIMIT_BYTES / 2**30:.0f} GiB, so at most {MEMORY_LIMIT_BYTES // per_env:,} envs")


class ExpertPlacementVectorEnv(VectorEnv):
    __doc__ = """
    ## Description

    `num_envs` episodes of `xnet_gym/ExpertPlacement-v0` (see that env for the problem, the
    observation features and the reward), stepped together: every step places one expert in
    each sub-env with one set of vectorised NumPy calls, with no Python loop over sub-envs.
    It is the single env's own core (`xnet_gym.envs.core.AssignmentCore`) at N = num_envs:
    the same features, reward and fall-back, written once. A
    reset draws all N episodes in one vectorised call of the same generator the single env
    uses, from the same distribution: with `PlacementGenerator(block_size=N)` the single
    env's k-th block of N episodes is this env's k-th batch, for the same seed.

    Every episode has exactly `E` steps, so the sub-envs run in lockstep: they start, end and
    reset together.

    ```python
    venv = gymnasium.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=1024,
                              vectorization_mode="vector_entry_point", scenario="paper")
    ```

    ## Action Space

    `MultiDiscrete([C] * N)`: one candidate index per sub-env, as in the single env. A
    masked-out action goes to the cheapest free candidate and costs 0.1 (`info["invalid_action"]`).
    Actions that are not integers in [0, C-1], or not of shape (N,), raise
    `xnet_gym.ActionError` naming the first bad sub-env. `action_masks()` is (N, C) bool.

    ## Observation Space

    The single env's observation, batched (`gymnasium.vector.utils.batch_space`): a `Dict`
    of float32 arrays with a leading axis N, in the layout chosen by `obs_layout`. Row i is
    what the single env shows on sub-env i's episode, bit for bit (the same code computes
    both; `candidate_marginal`, a float32 matrix product, may round differently in the
    last bit with the batch size):

{observation_table}

    ## Rewards

    As in the single env, per sub-env and exactly: the return is
    `-latency(placement) / latency(analytic)` from the one evaluator; the closed form's
    return is exactly -1.0 in every sub-env; dense step rewards sit on the same 2^-40 grid.

    ## Starting State

    `reset(seed=s)` seeds the env's one `np_random`; every batch of N episodes is drawn from
    it, in order. `options={"layer": l}` pins every sub-env's layer for that batch.

    With `prefetch=True` (default) the next batch is drawn on a worker thread while the
    current one steps (NumPy releases the GIL, so a second core draws it). The batches are
    the same bits as without prefetch, for the same seed; the one difference is a reset that
    pins a layer without a new seed: it draws after the prefetched batch, which is kept for
    the next unpinned batch.

    ## Episode End

    All sub-envs terminate together after `E` steps. `max_episode_steps` (passed by
    `make_vec` from the registration) truncates them together if it is smaller.

    Autoreset (`metadata["autoreset_mode"]`):
    - `"next_step"` (default, Gymnasium's default): the step after the last one ignores its
      actions and returns the next batch's first observation, reward 0, not terminated.
    - `"same_step"`: the last step returns the next batch's first observation; the final
      ones are in `info["final_obs"]` (an object array of per-sub-env dicts) and
      `info["final_info"]`, with their `_final_obs` / `_final_info` masks.
    `"disabled"` (partial resets) is refused: it would break the lockstep.

    `info` is a dict of (N,) arrays with the single env's keys and their `_key` masks.
    `final_latency_s` and `final_ratio` hold the last finished batch's scores, and
    `placement(i)` / `problem(i)` sub-env i's final placement and episode.

    ## Arguments

    ```python
    ExpertPlacementVectorEnv(num_envs=64, scenario="paper", episode=None, reward="dense",
                             generator=None, observation=None, obs_layout="dict",
                             autoreset_mode="next_step", max_episode_steps=None,
                             prefetch=True, **episode_settings)
    ```

    The single env's arguments and episode settings, with these differences: `num_envs` is
    at most 2^20 and bounded by memory (an error says how many fit); `layer_strategy` is `"central"` only
    (drawn gateways need shortest paths per episode: use `vectorization_mode="sync"`);
    `generator` is a `PlacementGenerator` (it needs `draw_rows`); `observation` any
    `ObservationBuilder` (features are batched by construction); no `reward_fn`
    and no rendering. Observations are fresh arrays every step (no `copy` argument needed).

    ## Version History

    - v0: initial release.
    """

    def __init__(self, num_envs: int = 64, scenario=None, *, episode: EpisodeConfig | None = None, reward="dense",
                 generator: PlacementGenerator | None = None, observation: ObservationBuilder | None = None,
                 obs_layout="dict", autoreset_mode="next_step", max_episode_steps: int | None = None,
                 prefetch: bool = True, render_mode=None, **settings):
        self.episode = episode_config(type(self).__name__, scenario, episode, settings)
        self.num_envs = check_int(ScenarioError, "num_envs", num_envs, 1, 1 << 20)
        self.autoreset_mode = check_vector_settings(render_mode, autoreset_mode)
        self.metadata = {"autoreset_mode": self.autoreset_mode, "render_modes": []}
        self.render_mode = None
        reward_fn = REWARDS[check_choice(ScenarioError, "reward", reward, tuple(REWARDS))]()
        if generator is None:
            generator = PlacementGenerator(self.episode.scenario, scope="stage", **self.episode.generator_kwargs())
        if not isinstance(generator, PlacementGenerator) or generator.scope != "stage":
            raise field_error(ScenarioError, "generator", type(generator).__name__,
                              "the batched env needs a PlacementGenerator with scope='stage' (it draws rows in "
                              "batches)")
        if generator.layer_strategy != "central":
            raise field_error(ScenarioError, "layer_strategy", generator.layer_strategy,
                              "the batched env draws 'central' gateways only (drawn gateways need their own "
                              "shortest paths per episode); use gymnasium.make_vec(..., vectorization_mode='sync')")
        self.generator = generator
        spec = self.spec_ = generator.spec
        self._E, self._C, self._capacity = spec.n_experts, spec.n_candidates_max, spec.capacity
        _check_batch_memory(self.num_envs, generator)
        if max_episode_steps is not None:
            max_episode_steps = check_int(ScenarioError, "max_episode_steps", max_episode_steps, 1)
        self._max_steps = max_episode_steps
        builder = self._builder = observation or ObservationBuilder()
        self._core = AssignmentCore(spec, builder, reward_fn)
        self.obs_layout = make_layout(obs_layout)
        self.single_observation_space = self.obs_layout.space(builder.space(spec))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.single_action_space = MaskableDiscrete(self._C)
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.num_envs, self._C))
        self._ar = np.arange(self.num_envs)
        self._true = np.ones(self.num_envs, dtype=bool)
        self._rows: LayerRows | None = None
        self._needs_reset = False
        self._final_rows: LayerRows | None = None
        self._final_satellites = np.empty((0, self._E), dtype=np.int64)
        self.prefetch = check_bool(ScenarioError, "prefetch", prefetch)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[np.random.Generator, Future] | None = None
        self.final_latency_s = np.full(self.num_envs, np.nan)
        self.final_ratio = np.full(self.num_envs, np.nan)

    # ------------------------------------------------------------------------ episodes
    def _draw(self, rng: np.random.Generator, layer: int | None) -> tuple[LayerRows, tuple]:
        rows = self.generator.draw_rows(rng, self.num_envs, layer)
        return rows, self._builder.tables(rows, self.spec_)

    def _next_batch(self, layer: int | None) -> tuple[LayerRows, tuple]:
        """The next batch from `np_random`: the prefetched one, or drawn now. With `prefetch`,
        the batch after it is then drawn on a worker thread while this one steps (NumPy
        releases the GIL, so the draw runs on the second core). Batches come from the one
        generator in order, so a seed still fixes every bit."""
        rng = self.np_random
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is not rng:
            pending = None                            # drawn from a generator a seeded reset replaced
        if pending is not None and layer is None:
            batch = pending[1].result()
        else:
            if pending is not None:
                pending[1].result()                   # the worker is done with the rng before we use it
            batch = self._draw(rng, layer)
            self._pending = pending                   # a pinned batch leaves the prefetched one for later
        if self.prefetch and self._pending is None:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xnet-gym-draw")
            self._pending = (rng, self._pool.submit(self._draw, rng, None))
        return batch

    def _start(self, layer: int | None = None) -> None:
        rows, tables = self._next_batch(layer)
        self._rows = rows
        self._reference_s = rows.stage_reference_s
        self._core.start(rows, self._ar, 1, tables, rows.stage_reference_s)
        self._needs_reset = False

    def _observation(self) -> dict[str, np.ndarray]:
        obs = self._core.observe()
        return obs if isinstance(self.obs_layout, DictLayout) else self.obs_layout(obs)

    def _info(self, invalid: np.ndarray, latency_s: np.ndarray, ratio: np.ndarray) -> dict[str, Any]:
        N, rows = self.num_envs, self._rows
        assert rows is not None
        values = {"layer": rows.layers.copy(), "step_in_layer": np.full(N, self._core.state.step, dtype=np.int64),
                  "invalid_action": invalid, "invalid_actions": self._core.invalid.copy(), "latency_s": latency_s,
                  "analytic_latency_s": self._reference_s.copy(), "ratio_to_analytic": ratio}
        info: dict[str, Any] = {}
        for key in INFO_KEYS:
            info[key] = values[key]
            info["_" + key] = self._true.copy()
        return info

    def _reset_info(self) -> dict[str, Any]:
        zero = np.zeros(self.num_envs)
        return self._info(np.zeros(self.num_envs, dtype=bool), zero, zero.copy())

    def reset(self, *, seed=None, options=None):
        if (seed is not None and not isinstance(seed, (int, np.integer))) or isinstance(seed, bool):
            raise field_error(ScenarioError, "seed", seed, "one int (or None): the env has one np_random for "
                              "all sub-envs")
        super().reset(seed=None if seed is None else int(seed))
        options = dict(options or {})
        unknown = set(options) - {"layer"}
        if unknown:
            raise field_error(ScenarioError, "reset options", sorted(unknown),
                              "allowed keys: layer (reset_mask: partial resets break the lockstep; "
                              "trace: use the single env)")
        layer = options.get("layer")
        if layer is not None:
            layer = check_int(ScenarioError, "options['layer']", layer, 0, self.spec_.n_layers - 1)
        self._start(layer)
        return self._observation(), self._reset_info()

    def step(self, actions):
        if self._rows is None:
            raise ActionError("step() before reset(): call reset() first")
        N = self.num_envs
        if self._needs_reset:                          # next-step autoreset: the actions are ignored
            self._start()
            return self._observation(), np.zeros(N), np.zeros(N, dtype=bool), np.zeros(N, dtype=bool), \
                self._reset_info()
        core = self._core
        reward, invalid = core.step(check_actions(actions, N, self._C))
        terminated = core.done
        truncated = not terminated and self._max_steps is not None and core.state.step >= self._max_steps
        if terminated:
            latency_s = scoring.stage_latency_of_index(self._rows, core.candidate_index, self.spec_)
            ratio = latency_s / self._reference_s
            reward = reward + core.finish(latency_s)
            self.final_latency_s, self.final_ratio = latency_s, ratio
            info = self._info(invalid, latency_s, ratio)
        else:
            zeros = np.zeros(N)
            info = self._info(invalid, zeros, zeros.copy())
        obs = self._observation()
        done = terminated or truncated
        term = np.full(N, terminated)
        trunc = np.full(N, truncated)
        if terminated:                           # a truncated batch has experts still unplaced
            self._final_satellites = core.satellites()
            self._final_rows = self._rows
        if done:
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                final_obs = np.empty(N, dtype=object)
                final_obs[:] = [{k: v[i] for k, v in obs.items()} for i in range(N)]
                self._start()
                obs = self._observation()
                info = {**self._reset_info(), "final_obs": final_obs, "_final_obs": self._true.copy(),
                        "final_info": info, "_final_info": self._true.copy()}
            else:
                self._needs_reset = True
        return obs, reward, term, trunc, info

    def close_extras(self, **kwargs):
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool, self._pending = None, None

    def __getstate__(self):
        # The worker thread stays behind; its batch (already drawn from the rng being
        # shipped) travels as a finished one, so the clone hands out the same batches.
        ready = None if self._pending is None else self._pending[1].result()
        return {**self.__dict__, "_pool": None, "_pending": None, "_ready": ready}

    def __setstate__(self, state):
        ready = state.pop("_ready")
        self.__dict__.update(state)
        if ready is not None:
            done: Future = Future()
            done.set_result(ready)
            self._pending = (self.np_random, done)

    # ------------------------------------------------------------------------ public
    def action_masks(self) -> np.ndarray:
        """(N, C) bool: candidates with a free seat, per sub-env."""
        if self._rows is None:
            raise ActionError("action_masks() before reset(): call reset() first")
        return self._core.mask.copy()

    def analytic_actions(self) -> np.ndarray:
        """(N,) the closed form's candidate for each sub-env's current expert (the cheapest free
        candidate where the agent has taken that seat)."""
        if self._rows is None or self._needs_reset:
            raise ActionError("analytic_actions() needs episodes in progress: call reset() or step()")
        return self._core.analytic_actions()

    @property
    def assignment(self) -> np.ndarray:
        """(N, E) candidate index of each expert in each sub-env, -1 where not yet placed."""
        view = self._core.candidate_index.view()
        view.flags.writeable = False
        return view

    def problem(self, i: int) -> Problem:
        """Sub-env i's current (or, after the last step in next-step mode, just finished)
        episode, as the single env's Problem: its instance, reference and reference latency."""
        check_int(ScenarioError, "i", i, 0, self.num_envs - 1)
        if self._rows is None:
            raise ActionError("problem() before reset(): call reset() first")
        return self.generator.problem(self._rows, i)

    def placement(self, i: int) -> Placement:
        """Sub-env i's last terminated placement (all layers but its episode's at the closed form)."""
        check_int(ScenarioError, "i", i, 0, self.num_envs - 1)
        if self._final_rows is None:
            raise ActionError("placement() before any episode terminated (a truncated one has no placement)")
        problem = self.generator.problem(self._final_rows, i)
        experts = problem.base_experts.copy()
        experts[int(self._final_rows.layers[i])] = self._final_satellites[i]
        return Placement(problem.gateways, experts)


ExpertPlacementVectorEnv.__doc__ = (ExpertPlacementVectorEnv.__doc__ or "").replace(
    "{observation_table}", textwrap.indent(ObservationBuilder().table_markdown(), "    "))
