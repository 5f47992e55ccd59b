"""`ExpertRefine-v0`'s batched vector env: N refinement episodes stepped together."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..errors import ActionError, ScenarioError, check_actions, check_int, field_error
from ..placement import Placement
from .autoreset import check_vector_settings
from .episode import EpisodeConfig
from .expert_refine import ExpertRefineEnv
from .generator import Generator
from .layout import DictLayout
from .refine_core import INFO_KEYS, RefineEpisode


class ExpertRefineVectorEnv(VectorEnv):
    """
    ## Description

    `num_envs` episodes of `xnet_gym/ExpertRefine-v0` (see that env for the problem, the
    actions, the observation and the reward), stepped together on the single env's own
    core (`xnet_gym.envs.refine_core.RefineCore`): the same rules, written once. With
    `gain_observation=True` every step scores the whole neighbourhood of every sub-env
    that moved, on two worker threads (the compiled scoring releases the GIL), each to the
    bits it has alone.

    ```python
    venv = gymnasium.make_vec("xnet_gym/ExpertRefine-v0", num_envs=256,
                              vectorization_mode="vector_entry_point",
                              scenario="deepseek-esft-packed", gain_observation=True)
    ```

    ## Action Space

    `MultiDiscrete([A] * N)`: one action per sub-env, as in the single env (masked-out
    actions cost 0.1 and change nothing). `action_masks()` is (N, A) bool and
    `greedy_actions()` (N,) each sub-env's steepest-descent action.

    ## Observation Space

    The single env's observation, batched (`gymnasium.vector.utils.batch_space`); row i
    is what the single env shows on sub-env i's episode, bit for bit.

    ## Rewards

    As in the single env, per sub-env.

    ## Starting State

    `reset(seed=s)` seeds the env's one `np_random`; each sub-env's episode is drawn from it
    in turn (the problem, then a random start where `start="random"`), so sub-env i's first
    episode is the single env's i-th after `reset(seed=s)`. Later episodes are drawn in the
    order the sub-envs finish.

    ## Episode End

    Each sub-env terminates on its stop action or after `max_moves` steps, at its own step.
    Autoreset (`metadata["autoreset_mode"]`): `"next_step"` (default) resets a finished
    sub-env on its next step, which ignores its action and returns reward 0;
    `"same_step"` resets it at once, its final observation and info in
    `info["final_obs"]` / `info["final_info"]` under the `_final_obs` / `_final_info` masks.

    ## Arguments

    ```python
    ExpertRefineVectorEnv(num_envs=16, scenario="paper", episode=None, max_moves=None,
                          start="analytic", gain_observation=False, obs_layout="dict",
                          generator=None, autoreset_mode="next_step", **episode_settings)
    ```

    The single env's arguments, less rendering, plus `num_envs` (at most 65,536) and
    `autoreset_mode`. `placement(i)` is sub-env i's best placement of its current (or just
    finished) episode.

    ## Version History

    - v0: initial release.
    """

    def __init__(self, num_envs: int = 16, scenario=None, *, episode: EpisodeConfig | None = None, max_moves=None,
                 start="analytic", gain_observation=False, obs_layout="dict", generator: Generator | None = None,
                 autoreset_mode="next_step", render_mode=None, **settings):
        self.num_envs = check_int(ScenarioError, "num_envs", num_envs, 1, 1 << 16)
        self.autoreset_mode = check_vector_settings(render_mode, autoreset_mode)
        self.metadata = {"autoreset_mode": self.autoreset_mode, "render_modes": []}
        self.render_mode = None
        # The single env checks the arguments and owns the spaces, the generator and the core.
        self._single = ExpertRefineEnv(scenario, episode=episode, max_moves=max_moves, start=start,
                                       generator=generator, gain_observation=gain_observation, obs_layout=obs_layout,
                                       **settings)
        self._core = self._single._core
        self.generator = self._single.generator
        self.start = self._single.start
        self.obs_layout = self._single.obs_layout
        self.single_observation_space = self._single.observation_space
        self.single_action_space = self._single.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.num_envs, self._core.n_actions))
        self._eps: list[RefineEpisode] = []
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._true = np.ones(self.num_envs, dtype=bool)

    # ------------------------------------------------------------------------ episodes
    def _draw(self) -> RefineEpisode:
        problem = self.generator(self.np_random, None)
        self._core.check_problem(problem, self.generator.spec)
        return self._core.episode(problem, self._core.start_assignment(problem, None, self.start, self.np_random))

    def _observation(self, episodes: list[RefineEpisode]) -> dict[str, np.ndarray]:
        obs = self._core.observe(episodes)
        return obs if isinstance(self.obs_layout, DictLayout) else self.obs_layout(obs)

    def _info(self, invalid: np.ndarray) -> dict[str, Any]:
        rows = [self._core.info(ep, bool(bad)) for ep, bad in zip(self._eps, invalid)]
        info: dict[str, Any] = {}
        for key in INFO_KEYS:
            info[key] = np.stack([row[key] for row in rows])
            info["_" + key] = self._true.copy()
        return info

    def reset(self, *, seed=None, options=None):
        if (seed is not None and not isinstance(seed, (int, np.integer))) or isinstance(seed, bool):
            raise field_error(ScenarioError, "seed", seed, "one int (or None): the env has one np_random for "
                              "all sub-envs")
        if options:
            raise field_error(ScenarioError, "reset options", sorted(options),
                              "none are taken (a start placement or layer per sub-env: use the single env)")
        super().reset(seed=None if seed is None else int(seed))
        self._eps = [self._draw() for _ in range(self.num_envs)]
        self._needs_reset[:] = False
        return self._observation(self._eps), self._info(np.zeros(self.num_envs, dtype=bool))

    def step(self, actions):
        if not self._eps:
            raise ActionError("step() before reset(): call reset() first")
        N, core = self.num_envs, self._core
        a = check_actions(actions, N, core.n_actions)
        reward = np.zeros(N)
        invalid = np.zeros(N, dtype=bool)
        for i, ep in enumerate(self._eps):          # per sub-env: each has its own active sets
            if self._needs_reset[i]:                # next-step autoreset: the action is ignored
                self._eps[i] = self._draw()
                continue
            reward[i], invalid[i] = core.step(ep, int(a[i]))
        terminated = np.array([ep.done for ep in self._eps]) & ~self._needs_reset
        truncated = np.zeros(N, dtype=bool)
        self._needs_reset[:] = False
        if self.autoreset_mode == AutoresetMode.SAME_STEP and terminated.any():
            done = np.flatnonzero(terminated)
            finished = [self._eps[i] for i in done]
            final_obs_rows = self._observation(finished)
            final_info = self._info(invalid)
            for i in done.tolist():
                self._eps[i] = self._draw()
            obs = self._observation(self._eps)
            info = self._info(np.where(terminated, False, invalid))
            final_obs = np.empty(N, dtype=object)
            for j, i in enumerate(done.tolist()):
                final_obs[i] = {k: v[j] for k, v in final_obs_rows.items()}
            info.update(final_obs=final_obs, _final_obs=terminated.copy(), final_info=final_info,
                        _final_info=terminated.copy())
            return obs, reward, terminated, truncated, info
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._needs_reset = terminated.copy()
        return self._observation(self._eps), reward, terminated, truncated, self._info(invalid)

    def close_extras(self, **kwargs):
        self._core.close()

    # ------------------------------------------------------------------------ public
    def action_masks(self) -> np.ndarray:
        """(N, A) bool: the valid actions of each sub-env."""
        if not self._eps:
            raise ActionError("action_masks() before reset(): call reset() first")
        return np.stack([ep.mask > 0 for ep in self._eps])

    def greedy_actions(self) -> np.ndarray:
        """(N,) each sub-env's steepest-descent action (its neighbourhoods scored on two threads)."""
        if not self._eps:
            raise ActionError("greedy_actions() before reset(): call reset() first")
        self._core.score_neighbourhoods(self._eps)
        return np.array([self._core.greedy_action(ep) for ep in self._eps])

    def analytic_actions(self) -> np.ndarray:
        """(N,) stop: the closed form is where an episode starts."""
        return np.full(self.num_envs, self._core.stop_action)

    def placement(self, i: int) -> Placement:
        """Sub-env i's best placement of its current episode (in next-step mode, of the
        episode that just finished, until its reset)."""
        check_int(ScenarioError, "i", i, 0, self.num_envs - 1)
        if not self._eps:
            raise ActionError("placement() before reset(): call reset() first")
        ep = self._eps[i]
        return ep.placement(ep.best)
