"""`oracle`: the closed form fit on each window's true routing, with copies free and no
budget. It knows the future, so it is the lower reference; its every window scores exactly
the closed form's latency on that window (ratio 1)."""

from __future__ import annotations

from xnet_gym.replacement import ReplaceEpisode

from .run import ReplaceRun


class Oracle:
    name = "oracle"

    def solve(self, episode: ReplaceEpisode) -> ReplaceRun:
        return ReplaceRun([episode.closed_form(episode.window_instance(j)) for j in range(1, episode.n_served + 1)],
                          free=True)
