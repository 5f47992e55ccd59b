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


def for_layer(name: str, layer: int | None = None, seed: int = 0, budget_s: float | None = None,
              iterations: int | None = None):
    """A solver set up for one episode: only `layer` searched where the solver can search a
    subset, `seed` where it is randomised, and its time budget (`budget_s`, through its
    `budget_parameter`) or iteration budget where given. The one place evaluation and the
    benchmark configure a solver."""
    cls = type(get(name))
    params = inspect.signature(cls).parameters
    kw: dict = {}
    if "seed" in params:
        kw["seed"] = seed
    budget = getattr(cls, "budget_parameter", None)
    if budget_s is not None:
        if not budget:
            raise field_error(ScenarioError, f"{cls.name} budget", budget_s, "this solver takes no time budget")
        kw[budget] = budget_s
    if iterations is not None:
        if "iterations" not in params:
            raise field_error(ScenarioError, f"{cls.name} iterations", iterations,
                              "this solver takes no iteration budget")
        kw["iterations"] = iterations
    if layer is not None and "layers" in params:
        kw["layers"] = [layer]
    return get(name, **kw)


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
    "for_layer",
    "get",
    "paper_strategies",
    "register",
]
