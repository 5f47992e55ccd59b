"""`EpisodeConfig`: what the placement envs draw their episodes from, declared once.

Every env constructor (ExpertPlacement-v0, ModelPlacement-v0, ExpertRefine-v0 and the batched
twin), the command line, the sweeps and the benchmark take these settings through this one
frozen dataclass, so a new episode setting is one field here. The values every episode
shares are checked when the config is made; the checks that need the scenario (a layer in
range, no more tokens than the trace holds) happen when the generator builds it.

| setting | default | meaning |
|---|---|---|
| `scenario` | `"paper"` | a preset name (`xnet-gym scenarios`), a TOML path or a `Scenario` |
| `layer` | `None` | fix the layer (0..L-1); `None`: a random layer per episode (stage envs) |
| `expert_order` | `"index"` | placing order: `"index"`, `"frequency"` (most active first) or `"random"` |
| `randomize_activation` | `True` | a fresh profile (or token window) per episode; `False`: the scenario's own |
| `train_time_steps` | `None` | score each episode on this many random time steps (faster steps); `None`: all of them |
| `tokens` | `None` | tokens per activation profile (default: the scenario's) |
| `objective` | `None` | `"max"` (physical) or `"weighted"` (the paper's surrogate); `None`: the scenario's |
| `route` | `None` | `"forward"` or `"return"`; `None`: the scenario's |
| `layer_strategy` | `"central"` | `"central"` (the paper's gateways) or `"random-gateway"` (one drawn per subnet) |
| `time_steps` | `None` | the scenario's time-step count, overridden |
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any

from ..errors import ScenarioError, check_bool, check_choice, check_int, field_error
from ..scenario import OBJECTIVES, ROUTES, Objective, Route
from .generator import LAYER_STRATEGIES, LayerStrategy
from .problem import EXPERT_ORDERS, ExpertOrder


@dataclass(frozen=True)
class EpisodeConfig:
    scenario: Any = "paper"
    layer: int | None = None
    expert_order: ExpertOrder = "index"
    randomize_activation: bool = True
    train_time_steps: int | None = None
    tokens: int | None = None
    objective: Objective | None = None
    route: Route | None = None
    layer_strategy: LayerStrategy = "central"
    time_steps: int | None = None

    def __post_init__(self):
        check_choice(ScenarioError, "expert_order", self.expert_order, EXPERT_ORDERS)
        check_bool(ScenarioError, "randomize_activation", self.randomize_activation)
        check_choice(ScenarioError, "layer_strategy", self.layer_strategy, LAYER_STRATEGIES)
        if self.objective is not None:
            check_choice(ScenarioError, "objective", self.objective, OBJECTIVES)
        if self.route is not None:
            check_choice(ScenarioError, "route", self.route, ROUTES)
        for name, low in (("layer", 0), ("train_time_steps", 1), ("tokens", 1), ("time_steps", 1)):
            value = getattr(self, name)
            if value is not None:
                check_int(ScenarioError, name, value, low)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def split(cls, kwargs: dict) -> tuple[EpisodeConfig, dict]:
        """(the episode settings among `kwargs`, as a config; the other keywords)."""
        names = cls.names()
        return cls(**{k: v for k, v in kwargs.items() if k in names}), {k: v for k, v in kwargs.items()
                                                                         if k not in names}

    @classmethod
    def of(cls, config: EpisodeConfig | None = None, **settings) -> EpisodeConfig:
        """`config` with `settings` replaced (or a new config from `settings`); unknown names
        are refused with the allowed ones."""
        unknown = sorted(set(settings) - set(cls.names()))
        if unknown:
            raise field_error(ScenarioError, "episode setting", unknown[0], f"allowed: {', '.join(cls.names())}")
        return dataclasses.replace(config, **settings) if config is not None else cls(**settings)

    def generator_kwargs(self) -> dict:
        """Everything but the scenario, as `PlacementGenerator` keywords."""
        return {f: getattr(self, f) for f in self.names() if f != "scenario"}

    def given(self) -> dict:
        """The settings that differ from the defaults (what a `gymnasium.make` call needs)."""
        default = EpisodeConfig()
        return {f: getattr(self, f) for f in self.names()
                if f == "scenario" or getattr(self, f) != getattr(default, f)}


def episode_table(indent: str = "    ") -> str:
    """The settings table of this module's docstring, for the envs' docstrings."""
    rows = [line for line in (__doc__ or "").splitlines() if line.startswith("|")]
    return "\n".join(indent + row for row in rows)


# v0 keyword names from before "slot" meant only an along-track position.
DEPRECATED_KWARGS = {"slots": "time_steps", "train_slots": "train_time_steps"}


def episode_config(owner: str, scenario, episode: EpisodeConfig | None, settings: dict,
                   deprecated_names: bool = True) -> EpisodeConfig:
    """An env constructor's episode settings: `episode` (a config, or None) with `scenario`
    and the keyword `settings` applied. The v0 names `slots` / `train_slots` fold into
    `time_steps` / `train_time_steps` with a DeprecationWarning where the env accepted them
    (`deprecated_names`); any other unknown keyword is a TypeError, as Python's own."""
    given: dict = {}
    for name, value in settings.items():
        if name in EpisodeConfig.names():
            given[name] = value
        elif name in DEPRECATED_KWARGS and deprecated_names:
            new = DEPRECATED_KWARGS[name]
            warnings.warn(f"{name}= is deprecated; use {new}=", DeprecationWarning, stacklevel=4)
            if settings.get(new) is None:
                given[new] = value
        else:
            hint = f" ({owner} takes {DEPRECATED_KWARGS[name]}=)" if name in DEPRECATED_KWARGS else ""
            raise TypeError(f"{owner}() got an unexpected keyword argument {name!r}{hint}")
    if scenario is not None:
        given["scenario"] = scenario
    if episode is not None and not isinstance(episode, EpisodeConfig):
        raise field_error(ScenarioError, "episode", type(episode).__name__, "must be an EpisodeConfig or None")
    return EpisodeConfig.of(episode, **given)
