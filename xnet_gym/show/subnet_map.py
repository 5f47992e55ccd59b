"""One layer's ring subnet in its neighbourhood, with a placement on it.

The grid is (along-track slot, plane): x is the slot's offset from the gateway's slot (so a
subnet that wraps past slot 0 stays in one piece), y the orbital plane. Around the subnet,
MARGIN_SLOTS slots of each neighbouring subnet are drawn in grey.
"""

from __future__ import annotations

import numpy as np

from ..instance import Instance
from ..latency import expected_stage_cost_s
from ..placement import Placement
from . import canvas

MARGIN_SLOTS = 2


def _slot_offset(slot: np.ndarray, origin: int, sats_per_plane: int) -> np.ndarray:
    return (slot - origin + sats_per_plane // 2) % sats_per_plane - sats_per_plane // 2


def draw_subnet(ax, instance: Instance, layer: int, gateways: np.ndarray, experts: np.ndarray, *,
                current: int | None = None, choice: int | None = None, moved: np.ndarray | None = None,
                title: str = "", colorbar: bool = True) -> None:
    """Draw layer `layer` with `experts` (E,) satellite ids (-1 = not placed yet). Artists'
    gids: `neighbours`, `candidates`, `gateway`, `next_gateway`, `experts`, `choice`, `moved`."""
    con = instance.constellation
    S = con.sats_per_plane
    g = int(gateways[layer])
    g_next = int(gateways[(layer + 1) % len(gateways)])
    subnet = instance.layout.subnet(layer)
    cand = subnet[subnet != g]
    x_all = _slot_offset(con.slot, int(con.slot[g]), S)
    lo, hi = x_all[subnet].min() - MARGIN_SLOTS, x_all[subnet].max() + MARGIN_SLOTS
    window = np.flatnonzero((x_all >= lo) & (x_all <= hi))
    near = np.setdiff1d(window, subnet)
    x, y = x_all, con.plane
    ax.scatter(x[near], y[near], s=10, c="0.85", linewidths=0, gid="neighbours", label="other subnets")
    cost_ms = 1e3 * expected_stage_cost_s(instance, gateways, layer, cand)
    sc = ax.scatter(x[cand], y[cand], s=34, c=cost_ms, cmap="viridis", linewidths=0, gid="candidates")
    if colorbar:
        ax.figure.colorbar(sc, ax=ax, fraction=0.05, pad=0.02).set_label("expected stage cost (ms)", fontsize=8)
    probs = instance.trace.layer_probabilities(layer)
    placed = experts >= 0
    if placed.any():
        sats, inverse = np.unique(experts[placed], return_inverse=True)
        mass = np.bincount(inverse, weights=probs[placed])
        ax.scatter(x[sats], y[sats], s=40 + 900 * mass, facecolors="none", edgecolors="tab:orange",
                   linewidths=1.8, gid="experts", label="experts (size = activation probability)")
        ids = np.flatnonzero(placed)
        for s in sats:
            ax.annotate(",".join(map(str, ids[experts[ids] == s])), (x[s], y[s]), fontsize=6, ha="center",
                        va="bottom", xytext=(0, 5), textcoords="offset points")
    if moved is not None and moved.any():
        ms = experts[moved]
        ax.scatter(x[ms], y[ms], s=260, facecolors="none", edgecolors="tab:red", linewidths=1.5, gid="moved",
                   label="moved experts")
    if choice is not None and choice >= 0:
        ax.scatter([x[choice]], [y[choice]], marker="s", s=160, facecolors="none", edgecolors="tab:red",
                   linewidths=1.5, gid="choice", label="this step's choice")
    ax.scatter([x[g]], [y[g]], marker="*", s=220, c="gold", edgecolors="black", zorder=5, gid="gateway",
               label=f"gateway {g}")
    if lo <= x[g_next] <= hi:
        ax.scatter([x[g_next]], [y[g_next]], marker="^", s=120, c="white", edgecolors="black", zorder=5,
                   gid="next_gateway", label=f"next gateway {g_next}")
    else:
        side = hi if x[g_next] > hi else lo
        ax.annotate(f"next gateway {g_next}\n(slot offset {int(x[g_next]):+d})", (side, y[g_next]),
                    fontsize=7, ha="center", color="0.3", gid="next_gateway")
    if current is not None:
        title = f"{title}  placing expert {current} (p = {probs[current]:.3f})".strip()
    ax.set_title(title or f"layer {layer}", fontsize=9)
    ax.set_xlabel("along-track slot (offset from the gateway's)", fontsize=8)
    ax.set_ylabel("orbital plane", fontsize=8)
    ax.set_xlim(lo - 0.8, hi + 0.8)
    ax.tick_params(labelsize=7)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3, fontsize=6, framealpha=0.8)


def draw_placements(instance: Instance, layer: int, placements: dict[str, Placement], fig=None):
    """One panel per placement of `layer`; from the second panel on, experts on another
    satellite than in the first are ringed in red."""
    names = list(placements)
    fig = fig or canvas.figure(5.2 * len(names), 6.0)
    fig.clf()
    first = placements[names[0]].experts[layer]
    for i, name in enumerate(names):
        p = placements[name]
        ax = fig.add_subplot(1, len(names), i + 1)
        moved = None if i == 0 else p.experts[layer] != first
        n_moved = 0 if moved is None else int(moved.sum())
        label = f"{name}: layer {layer}" + (f", {n_moved} experts moved" if i else "")
        draw_subnet(ax, instance, layer, p.gateways, p.experts[layer], moved=moved, title=label)
    fig.tight_layout()
    return fig
