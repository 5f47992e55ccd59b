"""`layers=` and `start=`: the model layers a per-layer search works on, and the placement it
starts from (the closed form by default); the other layers keep the start's experts."""

from __future__ import annotations

from xnet_gym.errors import ScenarioError, check_int, field_error
from xnet_gym.instance import Instance
from xnet_gym.placement import Placement


def check_layers(layers) -> list[int] | None:
    """`layers=`: search only these layers (the others keep the start's experts)."""
    if layers is None:
        return None
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise field_error(ScenarioError, "layers", layers, "must be a list of layer indices or None")
    return [check_int(ScenarioError, "layers", layer, 0) for layer in layers]


def layers_to_search(layers: list[int] | None, instance: Instance) -> list[int]:
    L = instance.n_layers
    if layers is None:
        return list(range(L))
    return [check_int(ScenarioError, "layers", layer, 0, L - 1) for layer in layers]


def check_start(start) -> Placement | None:
    """`start=`: a Placement to search from, or None for the closed form."""
    if start is not None and not isinstance(start, Placement):
        raise field_error(ScenarioError, "start", type(start).__name__, "must be an xnet_gym Placement or None")
    return start
