"""Any placement method as a benchmark policy, through one small protocol.

A policy has a `name`, a `kind` (closed-form, baseline, search, learned or user), a `batch`
(instances per call; 1 for every route here) and `play(episode) -> (latency_s, same_gateways)`:
the latency it reaches on one instance, scored by the project's one evaluator, and whether it
kept the episode's gateways (the paper's RandIntra and RandPlace move them, so they solve
another problem and never set the best known latency). Four routes build one from
a command-line spec (`parse_policy`):

- `analytic`: the closed form;
- a baseline solver name (`steepest-descent`, `local-search`, `anneal`, `RandIntra`, ...),
  optionally with a budget: `anneal@0.5s` (wall time) or `anneal@20000it` (iterations);
- `module:function` or `path/to/file.py:function`: a plain Python callable. Its first
  parameter says what it maps:
  - `instance` → it returns an `xnet_gym.Placement` for the instance (an optional `layer`
    parameter receives the one layer that is scored);
  - `obs` or `observation` → it returns an action of the track's env, step by step (an
    optional `env` parameter receives the env; a `env_id` attribute on the function picks
    another env of the suite, e.g. `xnet_gym/ExpertRefine-v0`);
  a `kind` attribute on the function overrides "user";
- a path to an SB3 `.zip` saved by `xnet-gym train`: played through the env it was trained
  on (its `config.json` says which, and whether it observes the gains), rebuilt for the
  track's shapes when its network allows it (`xnet_gym.agents.players`). SB3 zips hold pickles: load
  only files you trust.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import XnetError, field_error
from ..placement import Placement
from .suite import TRACK_ENVS, BenchmarkError, Track

KINDS = ("closed-form", "baseline", "search", "learned", "user")
_BUDGET = re.compile(r"^(?P<name>[A-Za-z][\w-]*)@(?P<value>[0-9.eE+-]+)(?P<unit>s|it)$")


class Episode:
    """One instance of a track, as a policy sees it: the `problem` (its instance, layer and
    closed-form reference) and `env(env_id, **extra)`, that env reset to the instance."""

    def __init__(self, track: Track, index: int, problem, envs: dict):
        self.track, self.index, self.problem = track, index, problem
        self.seed = track.seeds[index]
        self._envs = envs

    @property
    def layer(self) -> int:
        return int(self.problem.batch.layers[self.problem.first])

    def env(self, env_id: str | None = None, wrap: Callable | None = None, **extra):
        """(env, obs): the env `env_id` (default: the track's) with the track's instance
        settings and `extra` keywords, optionally wrapped by `wrap`, reset to this instance.
        The instance is checked to be the track's."""
        import gymnasium as gym

        from .suite import problem_digest

        env_id = env_id or self.track.env
        if env_id not in TRACK_ENVS:
            raise field_error(BenchmarkError, "env_id", env_id, f"allowed: {', '.join(TRACK_ENVS)}")
        key = (env_id, wrap, tuple(sorted(extra.items())))
        if key not in self._envs:
            env = gym.make(env_id, **self.track.env_kwargs, **extra)
            self._envs[key] = wrap(env) if wrap is not None else env
        env = self._envs[key]
        obs, _ = env.reset(seed=self.seed)
        if problem_digest(env.unwrapped.problem) != problem_digest(self.problem):
            raise field_error(BenchmarkError, "env_id", env_id,
                              f"draws another instance than track {self.track.name} on seed {self.seed}")
        return env, obs


class PlacementPolicy:
    """`place(instance, layer) -> Placement`, scored on the episode's layer."""

    batch = 1

    def __init__(self, name: str, kind: str, place: Callable):
        self.name, self.kind, self._place = name, kind, place

    def play(self, episode: Episode) -> tuple[float, bool]:
        from ..envs import scoring

        problem = episode.problem
        placement = self._place(problem.instance, episode.layer)
        if not isinstance(placement, Placement):
            raise field_error(BenchmarkError, f"policy {self.name}", type(placement).__name__,
                              f"returned this on track {episode.track.name}, seed {episode.seed}; "
                              "a placement policy must return an xnet_gym.Placement")
        try:
            problem.instance.validate(placement)
        except XnetError as exc:
            raise field_error(BenchmarkError, f"policy {self.name}", "an infeasible placement",
                              f"returned on track {episode.track.name}, seed {episode.seed}: {exc}") from None
        return scoring.objective_s(problem, placement), bool(np.array_equal(placement.gateways, problem.gateways))


class ActionPolicy:
    """`act(obs[, env]) -> action`, played through an env until the episode ends; the score
    is the env's final latency (ExpertRefine-v0: the best placement of the episode)."""

    batch = 1

    def __init__(self, name: str, kind: str, act: Callable, env_id: str | None = None, env_kwargs=None,
                 start: Callable | None = None, wrap: Callable | None = None):
        self.name, self.kind, self._act = name, kind, act
        self.env_id, self.env_kwargs, self._start, self._wrap = env_id, dict(env_kwargs or {}), start, wrap

    def prepare(self, episode: Episode) -> None:
        """Build the env (and fit a model to its shapes) before the clock starts."""
        env, _ = episode.env(self.env_id, self._wrap, **self.env_kwargs)
        if self._start is not None:
            self._start(env)

    def play(self, episode: Episode) -> tuple[float, bool]:
        env, obs = episode.env(self.env_id, self._wrap, **self.env_kwargs)
        if self._start is not None:
            self._start(env)
        masks = env.get_wrapper_attr("action_masks")
        info: dict = {}
        done, step = False, 0
        while not done:
            action = self._act(obs, env)
            where = f"on track {episode.track.name}, seed {episode.seed}, step {step}"
            try:
                a = int(action)
                ok = a == action and not isinstance(action, (bool, np.bool_))
            except (TypeError, ValueError, OverflowError):
                ok = False
            n = env.action_space.n
            if not ok or not 0 <= a < n:
                raise field_error(BenchmarkError, f"policy {self.name}: action", action,
                                  f"returned {where}; allowed: an integer in [0, {n - 1}]")
            if not masks()[a]:
                raise field_error(BenchmarkError, f"policy {self.name}: action", a,
                                  f"returned {where} is masked out (obs['action_mask'][{a}] == 0); allowed: "
                                  "one of np.flatnonzero(obs['action_mask'])")
            obs, _, terminated, truncated, info = env.step(a)
            done, step = terminated or truncated, step + 1
        return float(info.get("best_latency_s", info["latency_s"])), True


# ------------------------------------------------------------------------------- parsing
def _solver_policy(spec: str) -> PlacementPolicy:
    from .. import baselines

    m = _BUDGET.match(spec)
    name, budget = (m["name"], (float(m["value"]), m["unit"])) if m else (spec, None)
    by_lower = {k.lower(): k for k in baselines.SOLVERS}
    if name.lower() not in by_lower:
        raise field_error(BenchmarkError, "--policy", spec, _ALLOWED)
    cls = baselines.SOLVERS[by_lower[name.lower()]]
    seconds, iterations = None, None
    if budget is not None:
        value, unit = budget
        if not value > 0 or (unit == "it" and value != int(value)):
            raise field_error(BenchmarkError, "--policy", spec,
                              "a budget must be a positive number (iterations: whole)")
        seconds, iterations = (None, int(value)) if unit == "it" else (value, None)
    try:                                   # checks the budget against the solver, before any work
        baselines.for_layer(cls.name, budget_s=seconds, iterations=iterations)
    except XnetError as exc:
        raise field_error(BenchmarkError, "--policy", spec, str(exc)) from None
    kind = "closed-form" if getattr(cls, "reference", False) else (
        "baseline" if getattr(cls, "paper_strategy", False) else "search")
    label = cls.name + (f"@{budget[0]:g}{budget[1]}" if budget else "")

    def place(instance, layer):
        # A fresh solver per instance: only the scored layer is searched, and a randomised
        # solver starts from seed 0 on every instance (order-free, reproducible).
        return baselines.for_layer(cls.name, layer, 0, seconds, iterations).solve(instance)

    return PlacementPolicy(label, kind, place)


def _load_callable(spec: str) -> tuple[str, Callable]:
    where, _, attr = spec.rpartition(":")
    if not where or not attr:
        raise field_error(BenchmarkError, "--policy", spec,
                          "a callable is given as module:function or file.py:function")
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise field_error(BenchmarkError, "--policy", spec, f"no such file: {where}")
        mod_name = f"xnet_gym_benchmark_user_{abs(hash(str(path.resolve())))}"
        loader = importlib.util.spec_from_file_location(mod_name, path)
        if loader is None or loader.loader is None:
            raise field_error(BenchmarkError, "--policy", spec, "cannot be imported as a Python file")
        module = importlib.util.module_from_spec(loader)
        sys.modules[mod_name] = module
        loader.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise field_error(BenchmarkError, "--policy", spec,
                              f"module {where!r} cannot be imported ({exc})") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise field_error(BenchmarkError, "--policy", spec, f"{where} has no callable named {attr!r}")
    return attr, fn


def callable_policy(fn: Callable, name: str | None = None) -> PlacementPolicy | ActionPolicy:
    """A Python callable as a policy, by its first parameter's name (module docstring)."""
    name = str(name or getattr(fn, "__name__", type(fn).__name__))
    kind = getattr(fn, "kind", "user")
    if kind not in KINDS:
        raise field_error(BenchmarkError, f"policy {name}: kind", kind, f"allowed: {', '.join(KINDS)}")
    try:
        params = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        params = []
    first = params[0] if params else None
    if first == "instance":
        takes_layer = "layer" in params
        return PlacementPolicy(name, kind, lambda inst, layer: fn(inst, layer=layer) if takes_layer else fn(inst))
    if first in ("obs", "observation"):
        takes_env = "env" in params
        env_id = getattr(fn, "env_id", None)
        if env_id is not None and env_id not in TRACK_ENVS:
            raise field_error(BenchmarkError, f"policy {name}: env_id", env_id, f"allowed: {', '.join(TRACK_ENVS)}")
        act = (lambda obs, env: fn(obs, env=env)) if takes_env else (lambda obs, env: fn(obs))
        return ActionPolicy(name, kind, act, env_id=env_id)
    raise field_error(BenchmarkError, f"policy {name}: first parameter", first,
                      "allowed: instance (returns a Placement) or obs / observation (returns an action)")


def model_policy(path: str, name: str | None = None) -> ActionPolicy:
    """An SB3 zip saved by `xnet-gym train`, played through the env it was trained on."""
    try:
        from ..agents.players import LearnedPlayer
    except ImportError as exc:
        raise field_error(BenchmarkError, "--policy", path,
                          f"scoring an SB3 model needs the rl extra ({exc}): pip install 'xnet-gym[rl]' "
                          "torch==2.13.0") from None
    from ..agents.players import needs_cheapest_free_wrapper
    from ..agents.wrappers import CheapestFreeAction

    player = LearnedPlayer(path)          # sets torch's threads (xnet_gym.agents.threads: one unless told otherwise)
    env_id = player.config.get("env", TRACK_ENVS[0])
    if env_id not in TRACK_ENVS:
        raise field_error(BenchmarkError, "--policy", path, f"was trained on {env_id}; the benchmark plays "
                          f"{', '.join(TRACK_ENVS)}")
    trained = player.config.get("env_kwargs", {})
    extra = {"gain_observation": True} if trained.get("gain_observation") else {}
    def start(env):
        # Every episode: a shape comparison (cheap), and a rebuild of the network where the
        # track's shapes differ from the model's (`LearnedPlayer.check`).
        player.check(env)

    return ActionPolicy(name or _model_name(path), "learned", lambda obs, env: player.act(env, obs), env_id=env_id,
                        env_kwargs=extra, start=start,
                        wrap=CheapestFreeAction if needs_cheapest_free_wrapper(player) else None)


def _model_name(path: str) -> str:
    p = Path(path)
    return f"learned:{p.parent.name or p.stem}"


_ALLOWED = ("allowed: analytic, a solver name (optionally @SECONDSs or @ITERATIONSit, e.g. anneal@0.5s), "
            "module:function or file.py:function, or a path to an SB3 .zip")


def replace_runner():
    """`xnet_gym.agents.replace_eval`, which runs re-placement policies (baselines, players,
    zips) on held-out episodes: the re-placement tracks reach the agents through here."""
    from ..agents import replace_eval
    return replace_eval


def is_replace_spec(spec) -> bool:
    """A policy spec of `xnet-gym replace` (a re-placement baseline, a player, a zip trained on
    ExpertReplace-v0), which only re-placement tracks run; every other spec is a placement
    policy, which only the other tracks run."""
    from ..agents.players import _run_config
    from ..baselines.replacement import REPLACERS

    if not isinstance(spec, str):
        return False
    runner = replace_runner()
    if spec.endswith(".zip"):
        return _run_config(Path(spec)).get("env") == runner.ENV_ID
    return spec in runner.PLAYERS or spec.partition(":")[0] in REPLACERS


def parse_policy(spec: str):
    """A policy from its command-line spec (module docstring)."""
    if not isinstance(spec, str) or not spec:
        raise field_error(BenchmarkError, "--policy", spec, _ALLOWED)
    if spec.endswith(".zip"):
        if not Path(spec).is_file():
            raise field_error(BenchmarkError, "--policy", spec, "no such model file (a .zip saved by xnet-gym train)")
        return model_policy(spec)
    if ":" in spec:
        attr, fn = _load_callable(spec)
        return callable_policy(fn, name=attr)
    if spec.lower() == "analytic":
        from ..analytic import analytic_placement
        return PlacementPolicy("analytic", "closed-form", lambda instance, layer: analytic_placement(instance))
    return _solver_policy(spec)
