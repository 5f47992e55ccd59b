"""The project's exception types: bad input fails at the boundary with one of these."""

import math

import numpy as np


class XnetError(ValueError):
    """Base class: a message naming the field, the value and what is allowed."""


class ScenarioError(XnetError):
    """A scenario file, scenario key, preset name or env kwarg is invalid."""


class TraceError(XnetError):
    """An activation trace file or array is invalid."""


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
