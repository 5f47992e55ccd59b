"""The whole constellation at one time step: ring subnets, ISLs, gateways and the ring path."""

from __future__ import annotations

import numpy as np

from ..instance import Instance
from . import canvas
from .geo import lon_lat_deg, ring_path


def _segments(lon: np.ndarray, lat: np.ndarray, a: np.ndarray, b: np.ndarray) -> list:
    """(n, 2, 2) line segments between satellites a and b, leaving out those that would run
    across the map's +-180 degree edge."""
    seg = np.stack([np.stack([lon[a], lat[a]], axis=1), np.stack([lon[b], lat[b]], axis=1)], axis=1)
    return list(seg[np.abs(lon[a] - lon[b]) < 180.0])


def draw_constellation(instance: Instance, time_step: int = 0, gateways: np.ndarray | None = None, fig=None):
    """A longitude/latitude map. Artists carry `gid`s the tests read: `satellites`, `gateways`,
    `live_isl`, `failed_isl`, `ring_path`."""
    fig = fig or canvas.figure(11, 5.6)          # first: it says how to install matplotlib if absent
    from matplotlib.collections import LineCollection

    con, topo, layout = instance.constellation, instance.topology, instance.layout
    gateways = layout.central_gateways if gateways is None else np.asarray(gateways)
    fig.clf()
    ax = fig.add_subplot(111)
    lon, lat = lon_lat_deg(con, time_step)
    layer_of = np.full(con.n_satellites, -1)
    for layer in range(layout.n_layers):
        layer_of[layout.subnet(layer)] = layer
    up = topo.up[time_step]
    a, b = con.links[:, 0], con.links[:, 1]
    ax.add_collection(LineCollection(_segments(lon, lat, a[up], b[up]), colors="0.75", linewidths=0.4,
                                     gid="live_isl", label=f"live ISL ({int(up.sum())})"))
    ax.add_collection(LineCollection(_segments(lon, lat, a[~up], b[~up]), colors="tab:red", linewidths=0.6,
                                     linestyles=":", gid="failed_isl", label=f"failed ISL ({int((~up).sum())})"))
    free = layer_of < 0
    ax.scatter(lon[free], lat[free], s=3, c="0.6", linewidths=0)
    ax.scatter(lon[~free], lat[~free], s=6, c=layer_of[~free], cmap="turbo", vmin=0,
               vmax=max(layout.n_layers - 1, 1), linewidths=0, gid="satellites")
    paths = ring_path(topo, gateways, time_step)
    hops = [(p[:-1], p[1:]) for p in paths if len(p) > 1]
    if hops:
        pa, pb = np.concatenate([h[0] for h in hops]), np.concatenate([h[1] for h in hops])
        ax.add_collection(LineCollection(_segments(lon, lat, pa, pb), colors="black", linewidths=1.2,
                                         gid="ring_path", label="ring path, gateway to gateway"))
    ax.scatter(lon[gateways], lat[gateways], marker="*", s=90, c="gold", edgecolors="black", linewidths=0.6,
               zorder=5, gid="gateways", label="gateways")
    cutoff = instance.scenario.links.polar_cutoff_deg
    if cutoff is not None:
        for y in (cutoff, -cutoff):
            ax.axhline(y, color="tab:purple", lw=0.8, ls="--")
        ax.text(-178, cutoff + 1, f"polar cutoff {cutoff:g} deg: no cross-plane ISLs beyond",
                fontsize=7, color="tab:purple")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_xlabel("longitude (deg, Earth-fixed from the first time step)")
    ax.set_ylabel("latitude (deg)")
    ax.set_title(f"{instance.scenario.name}: {con.n_satellites} satellites, {layout.n_layers} layers on ring "
                 f"subnets (colour = layer), time step {time_step} (t = {con.times_s[time_step]:.0f} s)",
                 fontsize=9)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.85)
    fig.tight_layout()
    return fig


def constellation_frames(instance: Instance, frames: int | None = None) -> list[np.ndarray]:
    """RGB frames over the instance's time steps (evenly spaced, at most `frames`)."""
    n = instance.constellation.n_time_steps
    steps = np.unique(np.linspace(0, n - 1, min(frames or n, n)).round().astype(int))
    fig = canvas.figure(11, 5.6, dpi=70)
    return [canvas.rgb(draw_constellation(instance, int(t), fig=fig)) for t in steps]
