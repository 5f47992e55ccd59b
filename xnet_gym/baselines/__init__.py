"""Non-learned placement solvers, one per file, all with `solve(instance) -> Placement`.

`get(name, **params)` builds one by its registered name; `SOLVERS` maps names to classes and
`register(cls)` adds one. Class attributes a solver may declare: `name`, `randomized` (takes
a `seed`), `paper_strategy` (a default row of `xnet-gym compare`), `reference` (the row the
others are a ratio of), `budget_parameter` (the keyword that `--time-limit` sets), and after
`solve` a `last_info` dict (e.g. `latency_lower_bound_s`, `optimal`).
"""

from __future__ import annotations

import inspect

from xnet_gym.errors import ScenarioError, field_error

from .anneal import Anneal
from .eplb import EPLB
from .local_search import LocalSearch
from .optimum import BruteForce, Optimum
from .random_strategies import RandIntra, RandIntraCG, RandPlace
from .space_xnet import SpaceXNet
from .steepest_descent import SteepestDescent

SOLVERS = {cls.name: cls for cls in (SpaceXNet, RandIntraCG, RandIntra, RandPlace, Optimum, LocalSearch,
                                     SteepestDescent, Anneal, EPLB, BruteForce)}


def paper_strategies() -> tuple[str, ...]:
    """The paper's strategies (default rows of `xnet-gym compare`), as the solvers declare them."""
    return tuple(name for name, cls in SOLVERS.items() if getattr(cls, "paper_strategy", False))


PAPER_STRATEGIES = paper_strategies()


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


__all__ = [
    "EPLB",
    "PAPER_STRATEGIES",
    "SOLVERS",
    "Anneal",
    "BruteForce",
    "LocalSearch",
    "Optimum",
    "RandIntra",
    "RandIntraCG",
    "RandPlace",
    "SpaceXNet",
    "SteepestDescent",
    "get",
    "paper_strategies",
    "register",
]
