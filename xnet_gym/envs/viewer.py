"""Renders the current layer's subnet in its neighbourhood: `ansi` text within 80 columns,
or an RGB array drawn by `xnet_gym.show.subnet_map` (matplotlib's object API, so the user's
global backend is never touched; matplotlib is optional: `pip install xnet-gym[viz]`).

Both show the same things: the subnet and its neighbouring slots, the gateway (G) and the
next layer's gateway (g, or its slot offset when outside the window), candidates shaded by
expected stage cost, the experts placed so far, the expert being placed and the satellite
the last step chose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..latency import expected_stage_cost_s
from .problem import Problem

WIDTH = 80
SHADES = ".:-=+*#%"          # cheap to expensive, by the candidate's expected stage cost
MARGIN_SLOTS = 1
CELL = 4                     # characters per (plane, slot) cell


class Viewer:
    def __init__(self):
        self._fig: Any = None

    def __getstate__(self):
        return {"_fig": None}

    def frame(self, render_mode: str, problem: Problem, li: int, experts: np.ndarray, current: int | None = None,
              choice: int | None = None):
        """What an env's `render()` returns in `render_mode`: the ANSI text or the RGB array,
        or None after printing the text (`"human"`)."""
        draw = self.rgb_array if render_mode == "rgb_array" else self.ansi
        frame = draw(problem, li, experts, current=current, choice=choice)
        if render_mode == "human":
            print(frame, flush=True)
            return None
        return frame

    def ansi(self, problem: Problem, li: int, experts: np.ndarray, current: int | None = None,
             choice: int | None = None) -> str:
        inst = problem.instance
        con = inst.constellation
        layer = int(problem.rows.layers[li])
        g, gn = int(problem.gateways[layer]), int(problem.gateways[(layer + 1) % len(problem.gateways)])
        S = con.sats_per_plane
        offset = (con.slot - con.slot[g] + S // 2) % S - S // 2
        subnet = inst.layout.subnet(layer)
        cand = subnet[subnet != g]
        lo, hi = offset[subnet].min() - MARGIN_SLOTS, offset[subnet].max() + MARGIN_SLOTS
        max_cols = (WIDTH - 10) // CELL
        if hi - lo + 1 > max_cols:                  # keep the gateway's neighbourhood within 80 columns
            lo, hi = -(max_cols // 2), max_cols - max_cols // 2 - 1
        cost = expected_stage_cost_s(inst, problem.gateways, layer, cand)
        span = np.ptp(cost) or 1.0
        shade = {int(s): SHADES[min(int((c - cost.min()) / span * len(SHADES)), len(SHADES) - 1)]
                 for s, c in zip(cand, cost)}
        placed: dict[int, list[int]] = {}
        for e, s in enumerate(experts[layer]):
            if s >= 0:
                placed.setdefault(int(s), []).append(e)
        in_subnet = set(subnet.tolist())
        grid: dict[tuple[int, int], str] = {}
        for n in np.flatnonzero((offset >= lo) & (offset <= hi)).tolist():
            if n == g:
                text = "G"
            elif n == gn:
                text = "g"
            elif n in placed:
                es = placed[n]
                text = str(es[0]) if len(es) == 1 else f"{es[0]}+"
            elif n in in_subnet:
                text = shade.get(n, "?")
            else:
                text = "o"                              # a satellite of a neighbouring subnet
            if n == choice:
                text = f"[{text}]"
            grid[(int(con.plane[n]), int(offset[n]))] = text[: CELL - 1].rjust(CELL - 1)
        head = (f"layer {layer}: gateway {g} (G), next gateway {gn} "
                f"({'g' if lo <= offset[gn] <= hi else f'slot offset {int(offset[gn]):+d}'})")
        lines = [head[:WIDTH]]
        if current is not None:
            probs = inst.trace.layer_probabilities(layer)
            lines.append(f"placing expert {current} (p = {probs[current]:.3f}); [x] = last step's choice"[:WIDTH])
        lines.append(f"free candidate by cost, cheap to dear: {SHADES}  digits: experts  o: other subnet"[:WIDTH])
        lines.append("plane | " + "".join(f"{s:+d}".rjust(CELL) for s in range(lo, hi + 1)))
        for p in range(con.n_planes):
            row = "".join(grid.get((p, s), " " * (CELL - 1)).rjust(CELL) for s in range(lo, hi + 1))
            if row.strip():
                lines.append(f"{p:5d} | {row}"[:WIDTH])
        return "\n".join(lines) + "\n"

    def rgb_array(self, problem: Problem, li: int, experts: np.ndarray, current: int | None = None,
                  choice: int | None = None) -> np.ndarray:
        from ..show import canvas
        from ..show.subnet_map import draw_subnet

        layer = int(problem.rows.layers[li])
        if self._fig is None:
            self._fig = canvas.figure(7, 6, dpi=80)
        fig = self._fig
        fig.clf()
        draw_subnet(fig.add_subplot(111), problem.instance, layer, problem.gateways, experts[layer],
                    current=current, choice=choice, title=f"layer {layer}")
        fig.tight_layout()
        return canvas.rgb(fig)

    def close(self):
        self._fig = None
