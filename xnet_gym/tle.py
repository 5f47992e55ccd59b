"""Real orbits: a constellation from two-line element sets, propagated with sgp4.

`from_tle` (also `Constellation.from_tle`) reads a 3LE file (name line + TLE lines 1 and 2),
checks every line's length and checksum, keeps one shell (an inclination and altitude band),
propagates it with sgp4's vectorised `SatrecArray` over one orbital period from the shell's
median epoch, groups it into orbital planes by RAAN (at that common instant: RAAN drifts
several degrees a day, so element-set RAANs from different epochs do not cluster), orders each
plane by argument of latitude, and infers a +Grid: the next satellite in the plane, and the
nearest-phase satellite in each adjacent plane (matched one to one, closest phase first), each
no longer than `max_isl_km` at the first time step. Altitudes are a - R_E with R_E = 6371.0 km.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .constellation import EARTH_RADIUS_KM, MU_KM3_S2, Constellation
from .errors import TleError, field_error
from .topology import OUTAGE_WARNING


def _checksum(line: str) -> int:
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


def parse_tle_file(path) -> tuple[list[str], list[str], list[str]]:
    """(names, line1s, line2s) of a 3LE file; every line is checked (length 69, checksum)."""
    path = Path(path)
    if not path.is_file():
        raise field_error(TleError, "constellation.path", str(path), "no such TLE file")
    raw = [ln.rstrip("\r\n") for ln in path.read_text(encoding="ascii", errors="replace").splitlines()]
    raw = [ln for ln in raw if ln.strip()]
    if not raw:
        raise field_error(TleError, "constellation.path", str(path), "holds no TLE records (the file is empty)")
    if len(raw) % 3:
        raise field_error(TleError, f"{path.name}", f"{len(raw)} non-empty lines",
                          "a 3LE file has a name line, line 1 and line 2 per satellite (a multiple of 3)")
    names, l1, l2 = raw[0::3], raw[1::3], raw[2::3]
    for i in range(len(names)):
        for offset, line, tag in ((1, l1[i], "1"), (2, l2[i], "2")):
            where = f"{path.name}:{3 * i + offset + 1}"
            if len(line) != 69 or not line.startswith(tag + " "):
                raise field_error(TleError, where, line[:20] + "...",
                                  f"TLE line {tag} must start with '{tag} ' and be 69 characters (got {len(line)})")
            if not line[68].isdigit() or _checksum(line) != int(line[68]):
                raise field_error(TleError, f"{where} checksum", line[68],
                                  f"the mod-10 checksum of this line is {_checksum(line)}")
    return [n.strip() for n in names], l1, l2


def _satrecs(l1, l2):
    from sgp4.api import Satrec

    return [Satrec.twoline2rv(a, b) for a, b in zip(l1, l2)]


def propagate(satrecs, jd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TEME positions (km) and velocities (km/s), shape (K, N, 3), at Julian dates `jd` (K,)."""
    from sgp4.api import SatrecArray

    whole = np.floor(jd)
    err, r, v = SatrecArray(satrecs).sgp4(whole, jd - whole)
    if np.any(err):
        bad = np.argwhere(err)[0]
        raise field_error(TleError, f"satellite {int(bad[0])}", int(err[bad[0], bad[1]]),
                          "sgp4 could not propagate it (error code; 0 is success)")
    return r.transpose(1, 0, 2), v.transpose(1, 0, 2)


def shell_mask(satrecs, inclination_deg, inclination_tol_deg, min_altitude_km, max_altitude_km):
    inc = np.degrees([s.inclo for s in satrecs])
    n_rad_s = np.array([s.no_kozai for s in satrecs]) / 60.0
    altitude_km = (MU_KM3_S2 / n_rad_s**2) ** (1 / 3) - EARTH_RADIUS_KM
    return ((np.abs(inc - inclination_deg) <= inclination_tol_deg)
            & (altitude_km >= min_altitude_km) & (altitude_km <= max_altitude_km)), altitude_km


def _planes_by_raan(r: np.ndarray, v: np.ndarray, gap_deg: float):
    h = np.cross(r, v)
    raan = np.degrees(np.arctan2(h[:, 0], -h[:, 1])) % 360.0
    order = np.argsort(raan)
    gaps = np.diff(np.r_[raan[order], raan[order[0]] + 360.0])
    # Start the numbering after the widest gap, so a partial shell has its seam there.
    start = (int(np.argmax(gaps)) + 1) % len(order)
    order = np.roll(order, -start)
    gaps = np.roll(gaps, -start)
    plane_of_sorted = np.r_[0, np.cumsum(gaps[:-1] > gap_deg)]
    plane = np.empty(len(raan), dtype=np.int64)
    plane[order] = plane_of_sorted
    wraps = gaps[-1] <= 3 * np.median(gaps[gaps > gap_deg]) if np.any(gaps > gap_deg) else False
    node = np.stack([np.cos(np.radians(raan)), np.sin(np.radians(raan)), np.zeros_like(raan)], axis=1)
    h_hat = h / np.linalg.norm(h, axis=1, keepdims=True)
    u = np.arctan2(np.einsum("nd,nd->n", r, np.cross(h_hat, node)), np.einsum("nd,nd->n", r, node)) % (2 * np.pi)
    return plane, u, bool(wraps)


def _grid_links(plane, u, r0, n_planes, wraps, max_isl_km):
    links, inter = [], []
    for p in range(n_planes):
        members = np.flatnonzero(plane == p)
        members = members[np.argsort(u[members])]
        if len(members) >= 2:
            nxt = np.roll(members, -1)
            pairs = np.stack([members, nxt], axis=1)[: len(members) if len(members) > 2 else 1]
            links.append(pairs)
            inter.append(np.zeros(len(pairs), bool))
    pairs_p = [(p, p + 1) for p in range(n_planes - 1)] + ([(n_planes - 1, 0)] if wraps and n_planes > 2 else [])
    for p, q in pairs_p:
        a = np.flatnonzero(plane == p)
        b = np.flatnonzero(plane == q)
        if not len(a) or not len(b):
            continue
        dphase = np.abs((u[a][:, None] - u[b][None, :] + np.pi) % (2 * np.pi) - np.pi)
        # Greedy one-to-one matching, closest phase first: each satellite gets at most one
        # link to each adjacent plane, so no satellite has more than four.
        flat = np.argsort(dphase, axis=None)
        ia, ib = np.unravel_index(flat, dphase.shape)
        used_a = np.zeros(len(a), bool)
        used_b = np.zeros(len(b), bool)
        for x, y in zip(ia, ib):
            if used_a[x] or used_b[y]:
                continue
            used_a[x] = used_b[y] = True
            links.append(np.array([[a[x], b[y]]]))
            inter.append(np.ones(1, bool))
            if used_a.all() or used_b.all():
                break
    pairs = np.sort(np.concatenate(links), axis=1)
    flags = np.concatenate(inter)
    if max_isl_km is not None:
        length = np.linalg.norm(r0[pairs[:, 0]] - r0[pairs[:, 1]], axis=1)
        keep = length <= max_isl_km
        pairs, flags = pairs[keep], flags[keep]
        dropped = 1.0 - keep.mean() if keep.size else 0.0
        if dropped > OUTAGE_WARNING:
            # TLE shells drop too-long links when the grid is built, so the topology's own
            # outage warning never sees them: say it here, as the Walker route does.
            warnings.warn(f"links: {100 * dropped:.1f}% of the TLE shell's +Grid ISLs are longer than max_isl_km = "
                          f"{max_isl_km} km and dropped (longest kept: {length[keep].max() if keep.any() else 0:.0f} "
                          f"km of {length.max():.0f}); most paths will cost the outage penalty", UserWarning,
                          stacklevel=3)
    _, first = np.unique(pairs, axis=0, return_index=True)
    first = np.sort(first)
    return pairs[first], flags[first]


def from_tle(path, inclination_deg: float, inclination_tol_deg: float = 0.5, min_altitude_km: float = 0.0,
             max_altitude_km: float = 100000.0, time_steps: int = 1, max_isl_km: float | None = None,
             raan_gap_deg: float = 1.0) -> Constellation:
    names, l1, l2 = parse_tle_file(path)
    recs = _satrecs(l1, l2)
    mask, altitude_km = shell_mask(recs, inclination_deg, inclination_tol_deg, min_altitude_km, max_altitude_km)
    if not mask.any():
        raise field_error(TleError, "shell filter",
                          f"inclination {inclination_deg} +- {inclination_tol_deg} deg, altitude "
                          f"[{min_altitude_km}, {max_altitude_km}] km",
                          f"selects no satellite of {len(recs)} in {Path(path).name} (altitudes "
                          f"{altitude_km.min():.0f}..{altitude_km.max():.0f} km)")
    shell = [r for r, m in zip(recs, mask) if m]
    epochs = np.array([s.jdsatepoch + s.jdsatepochF for s in shell])
    t0_jd = float(np.median(epochs))
    period_s = 2 * np.pi / np.median([s.no_kozai / 60.0 for s in shell])
    times_s = np.arange(time_steps) * (period_s / time_steps)
    pos, vel = propagate(shell, t0_jd + times_s / 86400.0)
    plane, u, wraps = _planes_by_raan(pos[0], vel[0], raan_gap_deg)
    n_planes = int(plane.max()) + 1
    S = round(np.median(np.bincount(plane)))
    slot = np.floor(u / (2 * np.pi) * S).astype(np.int64) % S
    links, inter = _grid_links(plane, u, pos[0], n_planes, wraps, max_isl_km)
    label = (f"TLE shell of {len(shell)} satellites from {Path(path).name}: {n_planes} planes, "
             f"epoch JD {t0_jd:.4f}")
    return Constellation(pos, vel, times_s, plane, slot, n_planes, S, links, inter, label=label,
                         names=tuple(n for n, m in zip(names, mask) if m))


def constellation_from_tle_spec(scenario, time_steps: int) -> Constellation:
    spec = scenario.constellation
    return from_tle(scenario.resolve(spec.path), spec.inclination_deg, spec.inclination_tol_deg,
                    spec.min_altitude_km, spec.max_altitude_km, time_steps, spec.max_isl_km)

