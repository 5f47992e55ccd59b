"""The project's exception types: bad input fails at the boundary with one of these."""


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
