"""`CheapestFreeAction`: lets a mask-unaware algorithm (plain PPO) act without masks.

Action i means "the i-th cheapest candidate with a free seat" (clipped to the last free one),
so every action is valid. Per-candidate observations are permuted into the same order, and
the mask then marks the first n_free positions.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CheapestFreeAction(gym.Wrapper):
    def __init__(self, env: gym.Env):
        super().__init__(env)
        self._order: np.ndarray = np.zeros(0, dtype=np.int64)
        self._n_free = 0

    def _reorder(self, obs: dict) -> dict:
        mask = obs["action_mask"] > 0
        cost = np.where(mask, obs["candidate_cost"], np.inf)
        # Free candidates first, cheapest first; ties by candidate index (stable sort).
        self._order = np.argsort(cost, kind="stable")
        self._n_free = int(mask.sum())
        out = {k: (v[self._order] if k.startswith("candidate_") or k == "action_mask" else v)
               for k, v in obs.items()}
        return out

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._reorder(obs), info

    def step(self, action):
        i = min(int(action), max(self._n_free - 1, 0))
        obs, reward, terminated, truncated, info = self.env.step(int(self._order[i]))
        return self._reorder(obs), reward, terminated, truncated, info

    def action_masks(self) -> np.ndarray:
        return np.arange(len(self._order)) < self._n_free
