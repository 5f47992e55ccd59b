"""Non-learned online re-placement policies for `ExpertReplace-v0`, one per file.

Each has `solve(episode: ReplaceEpisode) -> ReplaceRun`: one assignment per served window,
decided from the routing served before the window (`episode.history_instance(j)`) and the
orbit ahead (window j's time steps); only the oracle reads the window itself. Score a run with
`xnet_gym.replacement.replay(episode, run.assignments, run.free, run.start)`, or `run_policy`.
"""

from __future__ import annotations

import inspect

from xnet_gym.errors import ScenarioError, field_error

from .oracle import Oracle
from .resolve import PeriodicResolve
from .run import ReplaceRun, score_run
from .static import Static

REPLACERS = {cls.name: cls for cls in (Static, PeriodicResolve, Oracle)}


def get_replacer(name: str, **params):
    cls = REPLACERS.get(name)
    if cls is None:
        raise field_error(ScenarioError, "replacer", name, f"unknown re-placement policy; allowed: "
                                                           f"{', '.join(REPLACERS)}")
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise field_error(ScenarioError, f"{name} parameters", unknown, f"allowed: {', '.join(allowed) or 'none'}")
    return cls(**params)


__all__ = ["REPLACERS", "Oracle", "PeriodicResolve", "ReplaceRun", "Static", "get_replacer", "score_run"]
