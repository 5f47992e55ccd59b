"""`layers=`: the model layers a per-layer solver works on (the others keep their start)."""

from __future__ import annotations

from xnet_gym.errors import ScenarioError, check_int, field_error
from xnet_gym.instance import Instance


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
