"""Walker constellations: satellite positions and velocities over the scenario's time steps.

Geometry follows docs/model.md. Satellite index n = p * S + s for plane p and slot s.
Orbits are circular; positions are ECI in km, velocities in km/s (the analytic derivative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ScenarioError, check_choice, check_int, check_number

EARTH_RADIUS_KM = 6371.0
MU_KM3_S2 = 398600.4418
LIGHT_SPEED_KM_S = 299792.458
# Physical ranges of the inputs: wide enough for any Earth orbit, narrow enough that every
# derived number (periods, lengths, delays) stays finite.
MIN_ALTITUDE_KM = 100.0            # the Karman line
MAX_ALTITUDE_KM = 400_000.0        # beyond the Moon's distance no Earth shell makes sense
MAX_DISTANCE_KM = 1_000_000.0
MAX_SATELLITES = 1_000_000

PATTERNS = ("delta", "star")


@dataclass(frozen=True)
class WalkerSpec:
    pattern: str
    planes: int
    sats_per_plane: int
    altitude_km: float
    inclination_deg: float
    phasing: int = 0

    def __post_init__(self):
        s = "constellation"
        check_choice(ScenarioError, f"{s}.pattern", self.pattern, PATTERNS)
        check_int(ScenarioError, f"{s}.planes", self.planes, 1, MAX_SATELLITES)
        check_int(ScenarioError, f"{s}.sats_per_plane", self.sats_per_plane, 1, MAX_SATELLITES)
        check_int(ScenarioError, f"{s}.planes x sats_per_plane", self.planes * self.sats_per_plane, 1, MAX_SATELLITES)
        check_int(ScenarioError, f"{s}.phasing", self.phasing, 0, self.planes - 1)
        object.__setattr__(self, "altitude_km", check_number(ScenarioError, f"{s}.altitude_km", self.altitude_km,
                                                             MIN_ALTITUDE_KM, MAX_ALTITUDE_KM, unit="km"))
        object.__setattr__(self, "inclination_deg", check_number(ScenarioError, f"{s}.inclination_deg",
                                                                 self.inclination_deg, 0, 180, unit="degrees"))

    @property
    def semi_major_axis_km(self) -> float:
        return EARTH_RADIUS_KM + self.altitude_km

    @property
    def mean_motion_rad_s(self) -> float:
        return float(np.sqrt(MU_KM3_S2 / self.semi_major_axis_km**3))

    @property
    def period_s(self) -> float:
        return 2.0 * np.pi / self.mean_motion_rad_s


@dataclass(frozen=True, eq=False)
class Constellation:
    """Satellite states over K time steps.

    `plane` and `slot` give each satellite's (p, s) grid index; for a Walker shell they are
    exact, for a TLE shell (`from_tle`) they are inferred. `links` (M, 2) is the +Grid of
    candidate ISLs with `inter_plane` (M,) flags; `topology` decides per slot which are up.
    """

    positions_km: np.ndarray      # (K, N, 3)
    velocities_km_s: np.ndarray   # (K, N, 3)
    times_s: np.ndarray           # (K,)
    plane: np.ndarray             # (N,)
    slot: np.ndarray              # (N,)
    n_planes: int
    sats_per_plane: int
    links: np.ndarray             # (M, 2) int, i < j
    inter_plane: np.ndarray       # (M,) bool
    label: str = ""
    names: tuple[str, ...] | None = None   # satellite names (TLE shells)

    @property
    def n_satellites(self) -> int:
        return self.positions_km.shape[1]

    @property
    def n_time_steps(self) -> int:
        return self.positions_km.shape[0]

    @property
    def latitude_deg(self) -> np.ndarray:
        """(K, N) geocentric latitude."""
        r = np.linalg.norm(self.positions_km, axis=-1)
        return np.degrees(np.arcsin(self.positions_km[..., 2] / r))

    @classmethod
    def from_tle(cls, path, inclination_deg: float, **shell) -> Constellation:
        """A shell of real satellites from a 3LE file, propagated with sgp4 (see `tle.from_tle`)."""
        from .tle import from_tle  # sgp4 is needed only here
        return from_tle(path, inclination_deg, **shell)

    @classmethod
    def walker(cls, spec: WalkerSpec, time_steps: int) -> Constellation:
        check_int(ScenarioError, "evaluation.time_steps", time_steps, 1)
        P, S, F = spec.planes, spec.sats_per_plane, spec.phasing
        a = spec.semi_major_axis_km
        w = spec.mean_motion_rad_s
        times_s = np.arange(time_steps) * (spec.period_s / time_steps)
        spread = 2.0 * np.pi if spec.pattern == "delta" else np.pi
        plane = np.repeat(np.arange(P), S)
        slot = np.tile(np.arange(S), P)
        raan = spread * plane / P
        u0 = 2.0 * np.pi * slot / S + 2.0 * np.pi * F * plane / (P * S)
        u = u0[None, :] + w * times_s[:, None]                       # (K, N)
        inc = np.radians(spec.inclination_deg)
        cos_o, sin_o = np.cos(raan)[None, :], np.sin(raan)[None, :]
        cos_u, sin_u = np.cos(u), np.sin(u)
        cos_i, sin_i = np.cos(inc), np.sin(inc)
        pos = a * np.stack([cos_o * cos_u - sin_o * sin_u * cos_i,
                            sin_o * cos_u + cos_o * sin_u * cos_i,
                            sin_u * sin_i * np.ones_like(cos_o)], axis=-1)
        vel = a * w * np.stack([-cos_o * sin_u - sin_o * cos_u * cos_i,
                                -sin_o * sin_u + cos_o * cos_u * cos_i,
                                cos_u * sin_i * np.ones_like(cos_o)], axis=-1)
        links, inter = walker_grid_links(P, S, F, spec.pattern)
        return cls(pos, vel, times_s, plane, slot, P, S, links, inter,
                   label=f"walker-{spec.pattern} {P}x{S} F={F} {spec.altitude_km:g} km "
                         f"{spec.inclination_deg:g} deg")


def walker_grid_links(P: int, S: int, F: int, pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """+Grid ISLs: intra-plane ring, inter-plane neighbours, and the delta seam shifted by F."""
    p = np.repeat(np.arange(P), S)
    s = np.tile(np.arange(S), P)
    n = p * S + s
    intra = np.stack([n, p * S + (s + 1) % S], axis=1)
    m = p < P - 1
    inter = np.stack([n[m], (p[m] + 1) * S + s[m]], axis=1)
    parts = [intra, inter]
    flags = [np.zeros(len(intra), bool), np.ones(len(inter), bool)]
    if pattern == "delta" and P > 1:
        last = np.arange(S)
        wrap = np.stack([(P - 1) * S + last, (last + F) % S], axis=1)
        parts.append(wrap)
        flags.append(np.ones(S, bool))
    links = np.concatenate(parts)
    inter_plane = np.concatenate(flags)
    links = np.sort(links, axis=1)
    # Tiny shells (S <= 2, P <= 2) produce self-loops and duplicate pairs; a graph sums
    # duplicate edges, so drop them here.
    keep = links[:, 0] != links[:, 1]
    links, inter_plane = links[keep], inter_plane[keep]
    _, first = np.unique(links, axis=0, return_index=True)
    first = np.sort(first)
    return links[first].astype(np.int64), inter_plane[first]
