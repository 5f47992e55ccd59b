"""Renders the current layer's subnet: `ansi` text, or an RGB array drawn with matplotlib.

The grid is the subnet's (plane, along-track slot) layout; G marks the gateway, numbers are
placed expert ids, `.` is a free candidate. matplotlib is optional (`pip install
xnet-gym[viz]`) and is used through its object API (`Figure` + `FigureCanvasAgg`), so the
user's global backend is never touched.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import XnetError
from .problem import Problem


class Viewer:
    def __init__(self):
        self._fig: Any = None
        self._canvas: Any = None

    def __getstate__(self):
        return {"_fig": None, "_canvas": None}

    @staticmethod
    def _grid(problem: Problem, li: int, experts: np.ndarray):
        inst = problem.instance
        layer = int(problem.rows.layers[li])
        sats = inst.layout.subnet(layer)
        con = inst.constellation
        planes, along = con.plane[sats], con.slot[sats]
        gateway = int(problem.gateways[layer])
        placed: dict[int, list[int]] = {}
        for e, s in enumerate(experts[layer]):
            placed.setdefault(int(s), []).append(e)
        return layer, sats, planes, along, gateway, placed

    def ansi(self, problem: Problem, li: int, experts: np.ndarray) -> str:
        layer, sats, planes, along, gateway, placed = self._grid(problem, li, experts)
        p_vals, s_vals = np.unique(planes), np.unique(along)
        cell = {(int(p), int(s)): int(n) for n, p, s in zip(sats, planes, along)}
        lines = [f"layer {layer}: subnet of {len(sats)} satellites, gateway {gateway} (G); "
                 f"rows = planes, columns = along-track slots"]
        for p in p_vals:
            row = []
            for s in s_vals:
                n = cell.get((int(p), int(s)))
                if n is None:
                    row.append("  ")
                elif n == gateway:
                    row.append(" G")
                elif n in placed:
                    row.append(",".join(map(str, placed[n])).rjust(2))
                else:
                    row.append(" .")
            lines.append(f"plane {int(p):3d} |" + " ".join(row))
        return "\n".join(lines) + "\n"

    def rgb_array(self, problem: Problem, li: int, experts: np.ndarray) -> np.ndarray:
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise XnetError("render_mode = 'rgb_array' needs matplotlib: pip install 'xnet-gym[viz]'") from None
        layer, sats, planes, along, gateway, placed = self._grid(problem, li, experts)
        probs = problem.instance.trace.layer_probabilities(layer)
        if self._fig is None:
            self._fig = Figure(figsize=(6, 4), dpi=80)
            self._canvas = FigureCanvasAgg(self._fig)
        fig = self._fig
        fig.clf()
        ax = fig.add_subplot(111)
        ax.scatter(along, planes, s=12, c="lightgray", label="candidate")
        pos = {int(n): (s, p) for n, p, s in zip(sats, planes, along)}
        gx, gy = pos.get(gateway, (np.nan, np.nan))
        for n, es in placed.items():
            if n not in pos:
                continue
            x, y = pos[n]
            ax.plot([gx, x], [gy, y], color="tab:blue", alpha=0.3, lw=1)
            ax.scatter([x], [y], s=40 + 600 * probs[es].sum(), c="tab:orange", alpha=0.8)
            ax.annotate(",".join(map(str, es)), (x, y), fontsize=7, ha="center", va="center")
        ax.scatter([gx], [gy], marker="*", s=250, c="tab:red", label="gateway")
        ax.set_xlabel("along-track slot")
        ax.set_ylabel("plane")
        ax.set_title(f"layer {layer}: experts sized by activation probability")
        self._canvas.draw()
        return np.asarray(self._canvas.buffer_rgba())[..., :3].copy()

    def close(self):
        self._fig = self._canvas = None
