"""What a re-placement policy returns, and its score through the one window scorer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xnet_gym.replacement import ReplaceEpisode, WindowScore, replay


@dataclass(frozen=True)
class ReplaceRun:
    assignments: list[np.ndarray]     # one (E,) assignment per served window
    start: np.ndarray | None = None   # installed before serving (None: the episode's start)
    free: bool = False                # copies cost nothing and the budget does not apply (the oracle)


def score_run(episode: ReplaceEpisode, run: ReplaceRun) -> list[WindowScore]:
    return replay(episode, run.assignments, run.free, run.start)
