"""Non-learned placement solvers, one per file, all with `solve(instance) -> Placement`.

`get(name, **params)` builds one by its registered name; `NAMES` lists them.
"""

from __future__ import annotations

import inspect

from xnet_gym.errors import ScenarioError, field_error

from .eplb import EPLB
from .local_search import LocalSearch
from .optimum import BruteForce, Optimum
from .random_strategies import RandIntra, RandIntraCG, RandPlace
from .space_xnet import SpaceXNet

SOLVERS = {cls.name: cls for cls in (SpaceXNet, RandIntraCG, RandIntra, RandPlace, Optimum, LocalSearch, EPLB,
                                     BruteForce)}
PAPER_STRATEGIES = ("Space-XNet", "RandIntra-CG", "RandIntra", "RandPlace")


def register(cls):
    SOLVERS[cls.name] = cls
    return cls


def get(name: str, **params):
    by_lower = {k.lower(): v for k, v in SOLVERS.items()}
    cls = by_lower.get(name.lower())
    if cls is None:
        raise field_error(ScenarioError, "solver", name, f"unknown solver; allowed: {', '.join(SOLVERS)}")
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise field_error(ScenarioError, f"{cls.name} parameters", unknown,
                          f"allowed: {', '.join(allowed) or 'none'}")
    return cls(**params)


__all__ = ["SOLVERS", "PAPER_STRATEGIES", "get", "register", "SpaceXNet", "RandIntraCG", "RandIntra",
           "RandPlace", "Optimum", "LocalSearch", "EPLB", "BruteForce"]
