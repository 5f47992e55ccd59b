"""`static`: one placement for the whole run, never moved.

`fit="first"` is the closed form on the warm-up window (the episode's start, so nothing is
ever copied); `fit="pooled"` is the closed form on every served window's routing and time
steps, installed before serving starts: an offline reference that knows the run's whole mix
(not its order).
"""

from __future__ import annotations

from xnet_gym.errors import ScenarioError, check_choice
from xnet_gym.replacement import ReplaceEpisode

from .run import ReplaceRun

FITS = ("first", "pooled")


class Static:
    name = "static"

    def __init__(self, fit: str = "first"):
        self.fit = check_choice(ScenarioError, "fit", fit, FITS)

    def solve(self, episode: ReplaceEpisode) -> ReplaceRun:
        if self.fit == "first":
            a = episode.start
            return ReplaceRun([a] * episode.n_served)
        a = episode.closed_form(episode.pooled_instance())
        return ReplaceRun([a] * episode.n_served, start=a)
