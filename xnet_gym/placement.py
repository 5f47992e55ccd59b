"""The Placement value type: a gateway per layer and a satellite per (layer, expert)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .errors import PlacementError, field_error


@dataclass(frozen=True, eq=False)
class Placement:
    gateways: np.ndarray   # (L,) satellite of each layer's gateway
    experts: np.ndarray    # (L, E) satellite of each expert

    def __post_init__(self):
        g = np.asarray(self.gateways)
        e = np.asarray(self.experts)
        if g.ndim != 1 or e.ndim != 2 or e.shape[0] != g.shape[0]:
            raise field_error(PlacementError, "placement shapes", (g.shape, e.shape),
                              "need gateways (L,) and experts (L, E)")
        if g.dtype.kind not in "iu" or e.dtype.kind not in "iu":
            raise field_error(PlacementError, "placement dtype", (str(g.dtype), str(e.dtype)),
                              "satellite indices must be integers")
        object.__setattr__(self, "gateways", g.astype(np.int64))
        object.__setattr__(self, "experts", e.astype(np.int64))

    def __eq__(self, other):
        return (isinstance(other, Placement) and np.array_equal(self.gateways, other.gateways)
                and np.array_equal(self.experts, other.experts))

    def validate(self, n_satellites: int, n_experts: int, capacity: int) -> Placement:
        """Ranges, shapes, per-layer satellite capacity, and no expert on its own gateway."""
        if self.experts.shape[1] != n_experts:
            raise field_error(PlacementError, "placement.experts.shape", self.experts.shape,
                              f"need (layers, {n_experts})")
        for name, arr in (("gateways", self.gateways), ("experts", self.experts)):
            if arr.size and (arr.min() < 0 or arr.max() >= n_satellites):
                bad = int(arr.min() if arr.min() < 0 else arr.max())
                raise field_error(PlacementError, f"placement.{name}", bad,
                                  f"satellite index must be in [0, {n_satellites - 1}]")
        on_gw = np.argwhere(self.experts == self.gateways[:, None])
        if len(on_gw):
            layer, e = map(int, on_gw[0])
            raise field_error(PlacementError, f"placement.experts[{layer}][{e}]", int(self.experts[layer, e]),
                              "an expert may not sit on its own layer's gateway")
        if capacity < n_experts:
            # In a sorted row a satellite holding more than `capacity` experts repeats at a
            # distance of `capacity` positions.
            srt = np.sort(self.experts, axis=1)
            full = np.argwhere(srt[:, capacity:] == srt[:, :-capacity])
            if len(full):
                layer = int(full[0, 0])
                sat = int(srt[layer, full[0, 1]])
                raise field_error(PlacementError, f"placement.experts[{layer}]", sat,
                                  f"satellite hosts more than experts_per_satellite = {capacity} experts")
        return self

    def with_layer(self, layer: int, experts) -> Placement:
        e = self.experts.copy()
        e[layer] = experts
        return Placement(self.gateways, e)

    def to_dict(self) -> dict:
        return {"gateways": self.gateways.tolist(), "experts": self.experts.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> Placement:
        try:
            return cls(np.asarray(data["gateways"], dtype=np.int64), np.asarray(data["experts"], dtype=np.int64))
        except (KeyError, TypeError, ValueError) as exc:
            raise field_error(PlacementError, "placement JSON", str(exc)[:80],
                              "need {'gateways': [int], 'experts': [[int]]}") from None

    def save(self, path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> Placement:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise field_error(PlacementError, "placement file", str(path), f"unreadable ({exc})") from None
