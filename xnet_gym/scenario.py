"""Scenarios: one TOML file = constellation + links + model + compute + activation + placement
+ evaluation, and for online re-placement workload + migration (the model in docs/model.md).
Presets ship in `xnet_gym/scenarios/*.toml`.

Every spec checks its own fields in `__post_init__` (so `dataclasses.replace` re-checks them)
and is the one place its defaults are written; loading a file adds only the unknown-key and
missing-key checks. Errors name the field, the value and what is allowed. Relative paths in
a scenario resolve against the folder of the file that names them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

from .activation import MAX_TOKENS
from .atomic import atomic_write_text
from .constellation import MAX_ALTITUDE_KM, MAX_DISTANCE_KM, WalkerSpec
from .errors import ScenarioError, check_choice, check_int, check_number, field_error
from .layers import check_seats
from .migration import MigrationSpec
from .moe import MoESpec, model_preset
from .topology import LinkSpec
from .workload import WorkloadSpec

PRESET_DIR = Path(__file__).parent / "scenarios"
SOURCES = ("zipf", "clustered", "trace")
# The two objectives of docs/model.md and the two ring routes: each defined once, here, as
# a type (for annotations) and as its values (for checks and command-line choices).
Objective = Literal["max", "weighted"]
Route = Literal["forward", "return"]
OBJECTIVES: tuple[str, ...] = get_args(Objective)
ROUTES: tuple[str, ...] = get_args(Route)
GFLOPS_RANGE = (1e-3, 1e9)      # an effective rate in GFLOPS: a microcontroller to a data centre
MAX_TIME_STEPS = 100_000


SYNTHETIC_TOKENS = 2000        # tokens of a synthetic trace when a scenario gives none


def _set(spec, key: str, value) -> None:
    object.__setattr__(spec, key, value)


@dataclass(frozen=True)
class TleSpec:
    """A shell of real satellites from a TLE file (see `Constellation.from_tle`)."""
    path: str
    inclination_deg: float
    inclination_tol_deg: float = 0.5
    min_altitude_km: float = 0.0
    max_altitude_km: float = 100000.0
    max_isl_km: float | None = None

    def __post_init__(self):
        s = "constellation"
        if not isinstance(self.path, str) or not self.path:
            raise field_error(ScenarioError, f"{s}.path", self.path, "must be a non-empty path string")
        _set(self, "inclination_deg", check_number(ScenarioError, f"{s}.inclination_deg", self.inclination_deg,
                                                   0, 180, unit="degrees"))
        _set(self, "inclination_tol_deg", check_number(ScenarioError, f"{s}.inclination_tol_deg",
                                                       self.inclination_tol_deg, 0, 90, unit="degrees"))
        _set(self, "min_altitude_km", check_number(ScenarioError, f"{s}.min_altitude_km", self.min_altitude_km,
                                                   0, MAX_ALTITUDE_KM, unit="km"))
        _set(self, "max_altitude_km", check_number(ScenarioError, f"{s}.max_altitude_km", self.max_altitude_km,
                                                   self.min_altitude_km, MAX_ALTITUDE_KM, unit="km"))
        if self.max_isl_km is not None:
            _set(self, "max_isl_km", check_number(ScenarioError, f"{s}.max_isl_km", self.max_isl_km, 0,
                                                  MAX_DISTANCE_KM, low_open=True, unit="km"))


@dataclass(frozen=True)
class ComputeSpec:
    gflops: float | tuple[float, ...] = 7.28     # effective rate of every satellite, or one per satellite

    def __post_init__(self):
        g = self.gflops
        if isinstance(g, (list, tuple)):
            if not g:
                raise field_error(ScenarioError, "compute.gflops", g, "a per-satellite list must not be empty")
            _set(self, "gflops", tuple(check_number(ScenarioError, f"compute.gflops[{i}]", v, *GFLOPS_RANGE)
                                       for i, v in enumerate(g)))
        else:
            _set(self, "gflops", check_number(ScenarioError, "compute.gflops", g, *GFLOPS_RANGE))


@dataclass(frozen=True)
class ActivationSpec:
    source: str = "zipf"
    alpha: float = 1.0
    tokens: int | None = None      # None: SYNTHETIC_TOKENS for synthetic sources, the whole file for traces
    path: str | None = None
    clusters: int = 8
    coactivation_strength: float = 0.0

    def __post_init__(self):
        s = "activation"
        check_choice(ScenarioError, f"{s}.source", self.source, SOURCES)
        # Zipf weights rank^-alpha underflow to zero past alpha ~ 100 for 64 experts.
        _set(self, "alpha", check_number(ScenarioError, f"{s}.alpha", self.alpha, 0, 50))
        if self.tokens is None and self.source != "trace":
            _set(self, "tokens", SYNTHETIC_TOKENS)
        if self.tokens is not None:
            check_int(ScenarioError, f"{s}.tokens", self.tokens, 1, MAX_TOKENS)
        check_int(ScenarioError, f"{s}.clusters", self.clusters, 1)
        _set(self, "coactivation_strength", check_number(ScenarioError, f"{s}.coactivation_strength",
                                                         self.coactivation_strength, 0, 100))
        if self.path is not None and not isinstance(self.path, str):
            raise field_error(ScenarioError, f"{s}.path", self.path, "must be a path string")
        if self.source == "trace" and self.path is None:
            raise ScenarioError("activation.path is missing: source = 'trace' needs an .npz file or an "
                                "ESFT-format folder")


@dataclass(frozen=True)
class PlacementSpec:
    experts_per_satellite: int = 1
    layers_per_subnet: int = 1

    def __post_init__(self):
        check_int(ScenarioError, "placement.experts_per_satellite", self.experts_per_satellite, 1)
        check_int(ScenarioError, "placement.layers_per_subnet", self.layers_per_subnet, 1)


@dataclass(frozen=True)
class EvaluationSpec:
    time_steps: int = 200
    route: str = "forward"
    objective: str = "max"

    def __post_init__(self):
        check_int(ScenarioError, "evaluation.time_steps", self.time_steps, 1, MAX_TIME_STEPS)
        check_choice(ScenarioError, "evaluation.route", self.route, ROUTES)
        check_choice(ScenarioError, "evaluation.objective", self.objective, OBJECTIVES)


MAX_SCENARIO_SEED = 2**63 - 1      # a TOML integer is 64-bit signed: larger seeds would not save


@dataclass(frozen=True)
class Scenario:
    name: str
    constellation: WalkerSpec | TleSpec
    model: MoESpec
    seed: int = 0
    links: LinkSpec = field(default_factory=LinkSpec)
    compute: ComputeSpec = field(default_factory=ComputeSpec)
    activation: ActivationSpec = field(default_factory=ActivationSpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    workload: WorkloadSpec | None = None       # ExpertReplace-v0's drifting windows; None: static serving
    migration: MigrationSpec = field(default_factory=MigrationSpec)
    description: str = ""
    model_preset: str | None = None
    base_dir: str = "."

    def __post_init__(self):
        check_int(ScenarioError, "seed", self.seed, 0, MAX_SCENARIO_SEED)
        for key, kind in (("constellation", (WalkerSpec, TleSpec)), ("model", MoESpec), ("links", LinkSpec),
                          ("compute", ComputeSpec), ("activation", ActivationSpec),
                          ("placement", PlacementSpec), ("evaluation", EvaluationSpec),
                          ("migration", MigrationSpec)):
            if not isinstance(getattr(self, key), kind):
                raise field_error(ScenarioError, key, type(getattr(self, key)).__name__, "wrong spec type")
        if self.workload is not None and not isinstance(self.workload, WorkloadSpec):
            raise field_error(ScenarioError, "workload", type(self.workload).__name__, "wrong spec type")
        _check_fits(self)

    def with_evaluation(self, **changes) -> Scenario:
        """A copy with evaluation keys (time_steps, route, objective) changed and re-checked."""
        return dataclasses.replace(self, evaluation=dataclasses.replace(
            self.evaluation, **{k: v for k, v in changes.items() if v is not None}))

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def to_toml(self) -> str:
        return _to_toml(self)

    def save(self, path) -> None:
        atomic_write_text(Path(path), self.to_toml())


# ----------------------------------------------------------------------------------- parsing

# Old key names still read, with the name they now have.
DEPRECATED_KEYS = {"evaluation": {"slots": "time_steps"}}


def _spec(cls, table, section: str, **extra):
    """A spec from its TOML table: unknown keys fail here; values go to the spec, whose
    `__post_init__` checks them (defaults live only on the dataclass)."""
    if not isinstance(table, dict):
        raise field_error(ScenarioError, section, table, "must be a table")
    table = dict(table)
    for old, new in DEPRECATED_KEYS.get(section, {}).items():
        if old in table:
            if new in table:
                raise field_error(ScenarioError, f"{section}.{old}", table[old],
                                  f"is the old name of {section}.{new}; give only one")
            warnings.warn(f"{section}.{old} is deprecated; write {section}.{new}", DeprecationWarning, stacklevel=4)
            table[new] = table.pop(old)
    allowed = [f.name for f in dataclasses.fields(cls)] + list(extra)
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise field_error(ScenarioError, f"{section}.{unknown[0]}" if section else unknown[0], table[unknown[0]],
                          f"unknown key; allowed in [{section or 'top level'}]: {', '.join(sorted(allowed))}")
    return cls(**{k: v for k, v in table.items() if k not in extra})


def _constellation(t: dict) -> WalkerSpec | TleSpec:
    if not isinstance(t, dict):
        raise field_error(ScenarioError, "constellation", t, "must be a table")
    source = t.get("source", "walker")
    check_choice(ScenarioError, "constellation.source", source, ("walker", "tle"))
    for key in ("path", "inclination_deg") if source == "tle" else ("pattern", "planes", "sats_per_plane",
                                                                     "altitude_km", "inclination_deg"):
        if key not in t:
            raise ScenarioError(f"constellation.{key} is missing: this key is required")
    return _spec(TleSpec if source == "tle" else WalkerSpec, t, "constellation", source=None)


def _model(t: dict) -> tuple[MoESpec, str | None]:
    if not isinstance(t, dict):
        raise field_error(ScenarioError, "model", t, "must be a table")
    if "preset" in t:
        preset = t["preset"]
        if not isinstance(preset, str):
            raise field_error(ScenarioError, "model.preset", preset, "must be a preset name (string)")
        base = model_preset(preset)
        over = {k: v for k, v in t.items() if k != "preset"}
        return (_spec(MoESpec, {**dataclasses.asdict(base), **over}, "model") if over else base), preset
    for key in ("layers", "experts", "top_k", "hidden_size", "expert_ff_size", "vocab_size"):
        if key not in t:
            raise ScenarioError(f"model.{key} is missing: this key is required (or give model.preset)")
    return _spec(MoESpec, {"name": "custom", **t}, "model"), None


def _workload(t) -> WorkloadSpec:
    if isinstance(t, dict):
        t = {k: tuple(v) if isinstance(v, list) else v for k, v in t.items()}
    return _spec(WorkloadSpec, t, "workload")


def scenario_from_dict(data: dict, base_dir=".") -> Scenario:
    if not isinstance(data, dict):
        raise field_error(ScenarioError, "scenario", data, "must be a table")
    allowed = ("name", "seed", "description", "constellation", "links", "model", "compute", "activation",
               "placement", "evaluation", "workload", "migration")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise field_error(ScenarioError, unknown[0], data[unknown[0]],
                          f"unknown key; allowed in [top level]: {', '.join(sorted(allowed))}")
    for required in ("constellation", "model"):
        if required not in data:
            raise ScenarioError(f"[{required}] is missing: this table is required")
    for key in ("name", "description"):
        if key in data and not isinstance(data[key], str):
            raise field_error(ScenarioError, key, data[key], "must be a string")
    model, preset = _model(data["model"])
    return Scenario(name=data.get("name", "unnamed"),
                    description=data.get("description", ""),
                    seed=data.get("seed", 0),
                    constellation=_constellation(data["constellation"]),
                    links=_spec(LinkSpec, data.get("links", {}), "links"),
                    model=model,
                    model_preset=preset,
                    compute=_spec(ComputeSpec, data.get("compute", {}), "compute"),
                    activation=_spec(ActivationSpec, data.get("activation", {}), "activation"),
                    placement=_spec(PlacementSpec, data.get("placement", {}), "placement"),
                    evaluation=_spec(EvaluationSpec, data.get("evaluation", {}), "evaluation"),
                    workload=_workload(data["workload"]) if "workload" in data else None,
                    migration=_spec(MigrationSpec, data.get("migration", {}), "migration"),
                    base_dir=str(base_dir))


def _check_fits(sc: Scenario) -> None:
    """Cross-table checks that are cheap before anything is built."""
    c = sc.constellation
    if isinstance(c, WalkerSpec):
        L = sc.model.layers
        lps = sc.placement.layers_per_subnet
        subnets = -(-L // lps)
        if c.sats_per_plane < subnets:
            raise field_error(ScenarioError, "constellation.sats_per_plane", c.sats_per_plane,
                              f"must be >= the number of ring subnets ({subnets} = ceil(layers {L} / "
                              f"placement.layers_per_subnet {lps})); set placement.layers_per_subnet")
        check_seats(c.planes * (c.sats_per_plane // subnets) - 1, sc.placement.experts_per_satellite,
                    sc.model.experts)
        if isinstance(sc.compute.gflops, tuple) and len(sc.compute.gflops) != c.planes * c.sats_per_plane:
            raise field_error(ScenarioError, "compute.gflops", f"list of {len(sc.compute.gflops)}",
                              f"a per-satellite list needs planes*sats_per_plane = "
                              f"{c.planes * c.sats_per_plane} values")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load_scenario(name_or_path) -> Scenario:
    """A preset name (see `preset_names()`) or a path to a TOML file."""
    if isinstance(name_or_path, Scenario):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if not (path.suffix == ".toml" or os.sep in text or path.exists()):
        preset = PRESET_DIR / f"{text}.toml"
        if not preset.is_file():
            raise field_error(ScenarioError, "scenario", text,
                              f"unknown preset and not a file; presets: {', '.join(preset_names())}")
        path = preset
    if not path.is_file():
        raise field_error(ScenarioError, "scenario", text, "no such file (give a preset name or a .toml path)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise field_error(ScenarioError, "scenario", str(path), f"not valid TOML ({exc})") from None
    return scenario_from_dict(data, base_dir=path.resolve().parent)


# ----------------------------------------------------------------------------------- writing

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _table(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines)


def _absolute_source(sc: Scenario, source: str) -> str:
    """A workload source as written to a saved file: paths made absolute, like [activation]'s."""
    if source == "scenario" or source.startswith("zipf:"):
        return source
    return str(sc.resolve(source).resolve())


def _to_toml(sc: Scenario) -> str:
    head = [f"name = {_toml_value(sc.name)}", f"seed = {sc.seed}"]
    if sc.description:
        head.append(f"description = {_toml_value(sc.description)}")
    con = dataclasses.asdict(sc.constellation)
    if isinstance(sc.constellation, TleSpec):
        con = {"source": "tle", **con, "path": str(sc.resolve(sc.constellation.path).resolve())}
    act = dataclasses.asdict(sc.activation)
    if act["path"] is not None:
        act["path"] = str(sc.resolve(act["path"]).resolve())
    model = {"preset": sc.model_preset} if sc.model_preset and sc.model == model_preset(sc.model_preset) \
        else dataclasses.asdict(sc.model)
    parts = ["\n".join(head), _table("constellation", con), _table("links", dataclasses.asdict(sc.links)),
             _table("model", model), _table("compute", dataclasses.asdict(sc.compute)),
             _table("activation", act), _table("placement", dataclasses.asdict(sc.placement)),
             _table("evaluation", dataclasses.asdict(sc.evaluation))]
    if sc.workload is not None:
        parts.append(_table("workload", {**dataclasses.asdict(sc.workload),
                                         "sources": [_absolute_source(sc, x) for x in sc.workload.sources]}))
    parts.append(_table("migration", dataclasses.asdict(sc.migration)))
    return "\n\n".join(parts) + "\n"


