"""`BatchedVecEnv`: Stable-Baselines3's `VecEnv` over a batched vector env of ours
(`ExpertPlacementVectorEnv`, `ExpertRefineVectorEnv`).

SB3 steps a `VecEnv` with same-step autoreset: the step that ends an episode returns the next
episode's first observation and puts the last one in `infos[i]["terminal_observation"]`. The
batched env does exactly that in `autoreset_mode="same_step"`; this adapter only reshapes
Gymnasium's dict-of-arrays `info` into SB3's list of per-env dicts (full dicts on the step
that ends the episodes, empty ones otherwise: nothing in SB3 or our callbacks reads them
mid-episode) and answers the per-env calls MaskablePPO and the imitation warm start make
(`action_masks`, `analytic_action`, `greedy_action`) from the batched env's (N, ...) arrays:
`greedy_action` scores every sub-env's neighbourhood in one batched call.

Seeding: SB3 hands each env `seed + i`; the batched env has one `np_random`, seeded with the
first of them, which fixes every sub-env's episodes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from xnet_gym.errors import XnetError, field_error

# Per-env methods SB3 and our agents call, answered by the batched env's array method.
BATCHED_METHODS = {"action_masks": "action_masks", "analytic_action": "analytic_actions",
                   "greedy_action": "greedy_actions"}


class BatchedVecEnv(VecEnv):
    def __init__(self, venv):
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise field_error(XnetError, "autoreset_mode", venv.autoreset_mode.value,
                              "SB3 needs the batched env in 'same_step' autoreset")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seed = self._seeds[0]
        obs, info = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._per_env(info)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        dones = terminated | truncated
        if not dones.any():
            return obs, reward.astype(np.float32), dones, [{} for _ in range(self.num_envs)]
        # The envs whose episode ended get its final info and observation (in lockstep, all).
        final = self._per_env(info["final_info"])
        final_obs = info["final_obs"]
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            infos[i] = {**final[i], "terminal_observation": final_obs[i],
                        "TimeLimit.truncated": bool(truncated[i] and not terminated[i])}
        return obs, reward.astype(np.float32), dones, infos

    @staticmethod
    def _per_env(info: dict[str, Any]) -> list[dict[str, Any]]:
        keys = [k for k in info if not k.startswith("_") and k not in ("final_obs", "final_info")]
        n = len(info[keys[0]]) if keys else 0
        columns = [info[k] for k in keys]
        return [dict(zip(keys, (c[i] for c in columns))) for i in range(n)]

    def close(self) -> None:
        self.venv.close()

    def _indices(self, indices) -> np.ndarray:
        if indices is None:
            return np.arange(self.num_envs)
        return np.atleast_1d(np.arange(self.num_envs)[indices])

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        if attr_name in BATCHED_METHODS:
            method = getattr(self.venv, BATCHED_METHODS[attr_name])
            return [method for _ in self._indices(indices)]
        value = getattr(self.venv, attr_name)             # AttributeError for what neither has
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        raise field_error(XnetError, "set_attr", attr_name, "the batched env's sub-envs share their settings; "
                          "build a new env instead")

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        if method_name not in BATCHED_METHODS:
            raise AttributeError(f"env_method({method_name!r}): the batched env answers "
                                 f"{', '.join(BATCHED_METHODS)} per env")
        values = getattr(self.venv, BATCHED_METHODS[method_name])(*method_args, **method_kwargs)
        return list(values[self._indices(indices)])

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]
