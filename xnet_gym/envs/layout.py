"""How the observation dict reaches the agent: as it is, or flattened for other RL libraries.

The default `"dict"` layout is the builder's feature dict, which SB3's `MultiInputPolicy` and
our own policies read. Libraries with a fixed masking convention want one flat vector and the
mask under their own key:

- `"dict"`: one key per feature (see the env docstring). For SB3, TorchRL, your own code.
- `"flat"`: `observations` (every feature but the mask, concatenated in table order) and
  `action_mask` (float32 0/1). RLlib's action-masking RLModule, CleanRL-style code.
- `"tianshou"`: `obs` (the same vector) and `mask` (bool), Tianshou's `batch.obs.mask`.

The flat vector's bounds are the features' bounds, concatenated, so nothing is rescaled.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..errors import ScenarioError, check_choice

MASK_KEY = "action_mask"
LAYOUTS = ("dict", "flat", "tianshou")


class DictLayout:
    """The feature dict, unchanged."""
    name = "dict"

    def space(self, feature_space: spaces.Dict) -> spaces.Dict:
        return feature_space

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return obs


class FlatLayout:
    """One float32 vector of every feature but the mask, and the mask under `mask_key`."""

    def __init__(self, name: str, obs_key: str, mask_key: str, mask_dtype: type):
        self.name, self.obs_key, self.mask_key, self.mask_dtype = name, obs_key, mask_key, mask_dtype
        self._keys: list[str] = []

    def space(self, feature_space: spaces.Dict) -> spaces.Dict:
        if MASK_KEY not in feature_space.spaces:
            raise ScenarioError(f"obs_layout = {self.name!r}: needs an {MASK_KEY!r} feature in the observation")
        self._keys = [k for k in feature_space.spaces if k != MASK_KEY]
        boxes = [self._box(feature_space, k) for k in self._keys]
        low = np.concatenate([b.low.ravel() for b in boxes]).astype(np.float32)
        high = np.concatenate([b.high.ravel() for b in boxes]).astype(np.float32)
        n_actions = self._box(feature_space, MASK_KEY).shape[0]
        return spaces.Dict({
            self.obs_key: spaces.Box(low, high, dtype=np.float32),
            self.mask_key: spaces.Box(0, 1, shape=(n_actions,), dtype=self.mask_dtype),
        })

    def _box(self, feature_space: spaces.Dict, key: str) -> spaces.Box:
        box = feature_space[key]
        if not isinstance(box, spaces.Box):
            raise ScenarioError(f"obs_layout = {self.name!r}: feature {key!r} is a {type(box).__name__}; "
                                f"a flat layout concatenates Box features only")
        return box

    def observe(self, observe, *args) -> dict[str, np.ndarray]:
        """The layout of `observe(*args)` (the env binds `observe` with functools.partial)."""
        return self(observe(*args))

    def __call__(self, obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {self.obs_key: np.concatenate([obs[k] for k in self._keys], axis=-1),
                self.mask_key: obs[MASK_KEY].astype(self.mask_dtype)}


def make_layout(name: str) -> DictLayout | FlatLayout:
    check_choice(ScenarioError, "obs_layout", name, LAYOUTS)
    if name == "flat":
        return FlatLayout("flat", "observations", "action_mask", np.float32)
    if name == "tianshou":
        return FlatLayout("tianshou", "obs", "mask", np.bool_)
    return DictLayout()
