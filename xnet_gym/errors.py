"""The project's exception types and boundary checks: bad input fails where it enters, with
a message naming the field, the value and what is allowed.

One family per boundary:
- `ScenarioError`: what a problem is made of: scenario files and their specs (also when built
  in Python or changed with `dataclasses.replace`), env constructor kwargs, reset options and
  solver parameters. `TleError` (a TLE file or shell filter) is one.
- `TraceError`: activation trace files and arrays.
- `PlacementError`: a placement that does not fit its instance.
- `ActionError`: an env action outside the action space, or a step out of order.
The CLI reports any `XnetError` as one `xnet-gym: error:` line.
"""

import math

import numpy as np


class XnetError(ValueError):
    """Base class: a message naming the field, the value and what is allowed."""


class ScenarioError(XnetError):
    """A scenario file, scenario key, preset name or env kwarg is invalid."""


class TraceError(XnetError):
    """An activation trace file or array is invalid."""


class TleError(ScenarioError):
    """A TLE file or shell filter is invalid."""


class PlacementError(XnetError):
    """A placement does not fit its instance (ranges, capacity, shapes)."""


def field_error(cls, field: str, value, allowed: str) -> XnetError:
    """Build the house-style message: `field = value: allowed`."""
    return cls(f"{field} = {value!r}: {allowed}")


def check_int(cls, field: str, value, low: int, high: int | None = None) -> int:
    """`value` as an int in [low, high] (no bools, no floats), or the house-style error."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise field_error(cls, field, value, f"must be an integer {allowed}")
    return int(value)


def check_positive(cls, field: str, value) -> float:
    """`value` as a finite float > 0, or the house-style error."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise field_error(cls, field, value, "must be a finite number > 0")
    return float(value)


def check_number(cls, field: str, value, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, unit: str = "") -> float:
    """`value` as a finite float in [low, high] ((low, high] with `low_open`), or the error.
    Physical quantities get ranges that keep every derived number finite."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    x = float(value) if ok else math.nan
    bad = not ok or not math.isfinite(x) or (low is not None and (x <= low if low_open else x < low)) or (
        high is not None and x > high)
    if bad:
        if low is not None and high is not None:
            rng = f" in {'(' if low_open else '['}{low:g}, {high:g}]"
        elif low is not None:
            rng = f" {'>' if low_open else '>='} {low:g}"
        else:
            rng = "" if high is None else f" <= {high:g}"
        raise field_error(cls, field, value, f"must be a finite number{rng}{' ' + unit if unit else ''}")
    return x


def check_bool(cls, field: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise field_error(cls, field, value, "must be True or False")
    return bool(value)


def check_choice(cls, field: str, value, allowed) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise field_error(cls, field, value, f"allowed: {', '.join(allowed)}")
    return value


class ActionError(XnetError):
    """An env action is not an integer in the action space, or a step is out of order."""


def check_action(action, n_actions: int) -> int:
    """An env action as an int in [0, n_actions - 1]: Python and NumPy integers, or numbers
    equal to one (1.0); never a bool, a fraction or inf."""
    kind = type(action)
    if kind is int or kind is np.int64:           # the common case, checked cheaply
        a = int(action)
        ok = 0 <= a < n_actions
    else:
        try:
            a = int(action)
            ok = a == action and 0 <= a < n_actions and not isinstance(action, (bool, np.bool_))
        except (TypeError, ValueError, OverflowError):
            ok = False
    if not ok:
        raise ActionError(f"action = {action!r}: must be an integer in [0, {n_actions - 1}]")
    return a


def check_actions(actions, n_envs: int, n_actions: int) -> np.ndarray:
    """A vector env's actions as an int64 array (n_envs,) in [0, n_actions - 1]; the message
    names the first bad sub-env."""
    a = np.asarray(actions)
    if a.shape != (n_envs,):
        raise ActionError(f"actions: shape {a.shape}; expected ({n_envs},), one action per sub-env")
    if a.dtype.kind in "iu":
        bad = (a < 0) | (a >= n_actions)
    elif a.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(a) | (a != np.round(a)) | (a < 0) | (a >= n_actions)
    else:
        raise ActionError(f"actions: dtype {a.dtype}; must be integers in [0, {n_actions - 1}]")
    if bad.any():
        i = int(np.argmax(bad))
        raise ActionError(f"actions[{i}] = {a[i].item()!r}: must be an integer in [0, {n_actions - 1}]")
    return a.astype(np.int64, copy=False)
