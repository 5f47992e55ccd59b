"""Scenarios: one TOML file = constellation + links + model + compute + activation + placement
+ evaluation (schema in DESIGN.md section 2). Presets ship in `xnet_gym/scenarios/*.toml`.

Loading checks every key and names the field, the value and what is allowed on error.
Relative paths in a scenario resolve against the folder of the file that names them.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from .atomic import atomic_write_text
from .constellation import WalkerSpec
from .errors import ScenarioError, field_error
from .moe import MoESpec, model_preset
from .topology import LinkSpec

PRESET_DIR = Path(__file__).parent / "scenarios"
SOURCES = ("zipf", "clustered", "trace")
ROUTES = ("forward", "return")
OBJECTIVES = ("max", "weighted")


@dataclass(frozen=True)
class TleSpec:
    """A shell of real satellites from a TLE file (see `Constellation.from_tle`)."""
    path: str
    inclination_deg: float
    inclination_tol_deg: float = 0.5
    min_altitude_km: float = 0.0
    max_altitude_km: float = 100000.0
    max_isl_km: float | None = None


@dataclass(frozen=True)
class ComputeSpec:
    gflops: float | tuple[float, ...] = 7.28


@dataclass(frozen=True)
class ActivationSpec:
    source: str = "zipf"
    alpha: float = 1.0
    tokens: int | None = 2000
    path: str | None = None
    clusters: int = 8
    coactivation_strength: float = 0.0


@dataclass(frozen=True)
class PlacementSpec:
    experts_per_satellite: int = 1
    layers_per_subnet: int = 1


@dataclass(frozen=True)
class EvaluationSpec:
    time_steps: int = 200
    route: str = "forward"
    objective: str = "max"


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
    description: str = ""
    model_preset: str | None = None
    base_dir: str = "."

    def with_evaluation(self, **changes) -> "Scenario":
        """A copy with evaluation keys (time_steps, route, objective) changed and re-checked."""
        ev = dataclasses.asdict(self.evaluation)
        ev.update({k: v for k, v in changes.items() if v is not None})
        return dataclasses.replace(self, evaluation=_evaluation(ev))

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    def to_toml(self) -> str:
        return _to_toml(self)

    def save(self, path) -> None:
        atomic_write_text(Path(path), self.to_toml())


# ----------------------------------------------------------------------------------- parsing

_MISSING = object()


def _get(table: dict, section: str, key: str, kind, default=_MISSING, choices=None):
    name = f"{section}.{key}" if section else key
    if key not in table:
        if default is _MISSING:
            raise ScenarioError(f"{name} is missing: this key is required")
        return default
    value = table[key]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise field_error(ScenarioError, name, value, "must be a finite number")
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise field_error(ScenarioError, name, value, f"must be of type {kind.__name__}")
    if choices is not None and value not in choices:
        raise field_error(ScenarioError, name, value, f"allowed: {', '.join(choices)}")
    return value


def _check_keys(table: dict, section: str, allowed) -> None:
    if not isinstance(table, dict):
        raise field_error(ScenarioError, section, table, "must be a table")
    extra = sorted(set(table) - set(allowed))
    if extra:
        raise field_error(ScenarioError, f"{section}.{extra[0]}" if section else extra[0], table[extra[0]],
                          f"unknown key; allowed in [{section or 'top level'}]: {', '.join(sorted(allowed))}")


def _constellation(t: dict) -> WalkerSpec | TleSpec:
    s = "constellation"
    if t.get("source") == "tle":
        _check_keys(t, s, ("source", "path", "inclination_deg", "inclination_tol_deg",
                           "min_altitude_km", "max_altitude_km", "max_isl_km"))
        return TleSpec(path=_get(t, s, "path", str),
                       inclination_deg=_get(t, s, "inclination_deg", float),
                       inclination_tol_deg=_get(t, s, "inclination_tol_deg", float, 0.5),
                       min_altitude_km=_get(t, s, "min_altitude_km", float, 0.0),
                       max_altitude_km=_get(t, s, "max_altitude_km", float, 100000.0),
                       max_isl_km=_get(t, s, "max_isl_km", float, None))
    _check_keys(t, s, ("source", "pattern", "planes", "sats_per_plane", "phasing", "altitude_km",
                       "inclination_deg"))
    _get(t, s, "source", str, "walker", choices=("walker", "tle"))
    return WalkerSpec(pattern=_get(t, s, "pattern", str),
                      planes=_get(t, s, "planes", int),
                      sats_per_plane=_get(t, s, "sats_per_plane", int),
                      phasing=_get(t, s, "phasing", int, 0),
                      altitude_km=_get(t, s, "altitude_km", float),
                      inclination_deg=_get(t, s, "inclination_deg", float))


def _links(t: dict) -> LinkSpec:
    s = "links"
    names = [f.name for f in dataclasses.fields(LinkSpec)]
    _check_keys(t, s, names)
    defaults = LinkSpec()
    return LinkSpec(**{k: _get(t, s, k, float, getattr(defaults, k)) for k in names})


def _model(t: dict) -> tuple[MoESpec, str | None]:
    s = "model"
    keys = ("layers", "experts", "top_k", "hidden_size", "expert_ff_size", "vocab_size", "bytes_per_value")
    _check_keys(t, s, ("preset", "name") + keys)
    if "preset" in t:
        preset = _get(t, s, "preset", str)
        base = model_preset(preset)
        over = {k: _get(t, s, k, int) for k in keys if k in t}
        return dataclasses.replace(base, **over) if over else base, preset
    values = {k: _get(t, s, k, int) for k in keys if k != "bytes_per_value"}
    values["bytes_per_value"] = _get(t, s, "bytes_per_value", int, 2)
    return MoESpec(name=_get(t, s, "name", str, "custom"), **values), None


def _compute(t: dict) -> ComputeSpec:
    s = "compute"
    _check_keys(t, s, ("gflops",))
    g = t.get("gflops", 7.28)
    if isinstance(g, list):
        if not g or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                            and math.isfinite(v) for v in g):
            raise field_error(ScenarioError, "compute.gflops", g, "a per-satellite list must hold numbers > 0")
        return ComputeSpec(tuple(float(v) for v in g))
    g = _get(t, s, "gflops", float, 7.28)
    if g <= 0:
        raise field_error(ScenarioError, "compute.gflops", g, "must be > 0")
    return ComputeSpec(g)


def _activation(t: dict) -> ActivationSpec:
    s = "activation"
    _check_keys(t, s, [f.name for f in dataclasses.fields(ActivationSpec)])
    spec = ActivationSpec(source=_get(t, s, "source", str, "zipf", SOURCES),
                          alpha=_get(t, s, "alpha", float, 1.0),
                          tokens=_get(t, s, "tokens", int, None),
                          path=_get(t, s, "path", str, None),
                          clusters=_get(t, s, "clusters", int, 8),
                          coactivation_strength=_get(t, s, "coactivation_strength", float, 0.0))
    if spec.tokens is None and spec.source != "trace":
        spec = dataclasses.replace(spec, tokens=2000)
    if spec.tokens is not None and spec.tokens < 1:
        raise field_error(ScenarioError, "activation.tokens", spec.tokens, "must be >= 1")
    if spec.alpha < 0:
        raise field_error(ScenarioError, "activation.alpha", spec.alpha, "must be >= 0")
    if spec.clusters < 1:
        raise field_error(ScenarioError, "activation.clusters", spec.clusters, "must be >= 1")
    if spec.coactivation_strength < 0:
        raise field_error(ScenarioError, "activation.coactivation_strength", spec.coactivation_strength,
                          "must be >= 0")
    if spec.source == "trace" and spec.path is None:
        raise ScenarioError("activation.path is missing: source = 'trace' needs an .npz file or an "
                            "ESFT-format folder")
    return spec


def _placement(t: dict) -> PlacementSpec:
    s = "placement"
    _check_keys(t, s, ("experts_per_satellite", "layers_per_subnet"))
    spec = PlacementSpec(_get(t, s, "experts_per_satellite", int, 1), _get(t, s, "layers_per_subnet", int, 1))
    for k in ("experts_per_satellite", "layers_per_subnet"):
        if getattr(spec, k) < 1:
            raise field_error(ScenarioError, f"placement.{k}", getattr(spec, k), "must be an integer >= 1")
    return spec


def _evaluation(t: dict) -> EvaluationSpec:
    s = "evaluation"
    _check_keys(t, s, ("time_steps", "route", "objective"))
    spec = EvaluationSpec(_get(t, s, "time_steps", int, 200), _get(t, s, "route", str, "forward", ROUTES),
                          _get(t, s, "objective", str, "max", OBJECTIVES))
    if spec.time_steps < 1:
        raise field_error(ScenarioError, "evaluation.time_steps", spec.time_steps, "must be an integer >= 1")
    return spec


def scenario_from_dict(data: dict, base_dir=".") -> Scenario:
    _check_keys(data, "", ("name", "seed", "description", "constellation", "links", "model", "compute",
                           "activation", "placement", "evaluation"))
    for required in ("constellation", "model"):
        if required not in data:
            raise ScenarioError(f"[{required}] is missing: this table is required")
    model, preset = _model(data["model"])
    seed = _get(data, "", "seed", int, 0)
    if seed < 0:
        raise field_error(ScenarioError, "seed", seed, "must be an integer >= 0")
    scenario = Scenario(name=_get(data, "", "name", str, "unnamed"),
                        description=_get(data, "", "description", str, ""),
                        seed=seed,
                        constellation=_constellation(data["constellation"]),
                        links=_links(data.get("links", {})),
                        model=model,
                        model_preset=preset,
                        compute=_compute(data.get("compute", {})),
                        activation=_activation(data.get("activation", {})),
                        placement=_placement(data.get("placement", {})),
                        evaluation=_evaluation(data.get("evaluation", {})),
                        base_dir=str(base_dir))
    _check_fits(scenario)
    return scenario


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
        smallest = c.planes * (c.sats_per_plane // subnets) - 1
        seats = smallest * sc.placement.experts_per_satellite
        if seats < sc.model.experts:
            raise field_error(ScenarioError, "placement.experts_per_satellite",
                              sc.placement.experts_per_satellite,
                              f"the smallest subnet has {smallest} expert candidates, giving {seats} "
                              f"seats for {sc.model.experts} experts; raise experts_per_satellite or "
                              f"use more planes/slots")
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
    return "\n\n".join(parts) + "\n"


