"""The placement envs' action space: a `Discrete` whose `sample(mask=...)` takes the masks
the envs hand out.

Gymnasium's `Discrete.sample(mask=...)` accepts only an int8 array, while `action_masks()`
is bool (SB3-contrib's convention) and `obs["action_mask"]` is float32 0/1 (a Box feature).
`MaskableDiscrete` converts a mask of 0/1 values of any of those dtypes, so
`env.action_space.sample(mask=env.unwrapped.action_masks())` and
`env.action_space.sample(mask=obs["action_mask"])` both work. It is a `Discrete` in every
other respect (equality, batching, checkers, SB3).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces


class MaskableDiscrete(spaces.Discrete):
    def sample(self, mask: Any = None, probability: Any = None) -> np.int64:
        if mask is not None:
            m = np.asarray(mask)
            if m.dtype != np.int8 and m.dtype.kind in "biuf":
                if m.dtype.kind == "f" and not np.isin(m, (0.0, 1.0)).all():
                    raise ValueError(f"sample(mask=...): a float mask must hold only 0 and 1, got {m.dtype} "
                                     f"values {np.unique(m)[:5].tolist()}")
                m = m.astype(np.int8)
            mask = m
        return super().sample(mask=mask, probability=probability)

    def __repr__(self) -> str:
        return f"MaskableDiscrete({self.n})"
