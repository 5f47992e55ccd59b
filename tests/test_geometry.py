import numpy as np
import pytest

from xnet_gym.constellation import EARTH_RADIUS_KM, MU_KM3_S2, Constellation, WalkerSpec


def spec(pattern="delta", P=5, S=8, F=2, inc=53.0):
    return WalkerSpec(pattern=pattern, planes=P, sats_per_plane=S, phasing=F, altitude_km=550.0,
                      inclination_deg=inc)


def test_intra_plane_link_length_is_chord():
    c = Constellation.walker(spec(), time_steps=7)
    a = EARTH_RADIUS_KM + 550.0
    pos = c.positions_km
    intra = c.links[~c.inter_plane]
    assert len(intra) == 5 * 8
    length = np.linalg.norm(pos[:, intra[:, 1]] - pos[:, intra[:, 0]], axis=-1)
    np.testing.assert_allclose(length, 2 * a * np.sin(np.pi / 8), rtol=1e-12)


def test_orbits_are_circular_with_kepler_speed():
    c = Constellation.walker(spec(), time_steps=5)
    a = EARTH_RADIUS_KM + 550.0
    np.testing.assert_allclose(np.linalg.norm(c.positions_km, axis=-1), a, rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(c.velocities_km_s, axis=-1), np.sqrt(MU_KM3_S2 / a), rtol=1e-12)
    assert np.abs(np.einsum("knd,knd->kn", c.positions_km, c.velocities_km_s)).max() < 1e-6
    assert np.abs(c.latitude_deg).max() <= 53.0 + 1e-9


def test_velocity_is_derivative_of_position():
    sp = spec()
    period = sp.period_s
    K = 100000
    fine = Constellation.walker(sp, time_steps=K)   # dt = period / K
    dt = period / K
    fd = (fine.positions_km[2] - fine.positions_km[0]) / (2 * dt)
    np.testing.assert_allclose(fd, fine.velocities_km_s[1], atol=1e-6)


def test_delta_wrap_links_last_plane_to_first_shifted_by_F():
    P, S, F = 5, 8, 3
    c = Constellation.walker(spec(P=P, S=S, F=F), time_steps=1)
    pairs = {tuple(x) for x in c.links[c.inter_plane].tolist()}
    for s in range(S):
        a, b = (P - 1) * S + s, (s + F) % S
        assert (min(a, b), max(a, b)) in pairs
    assert len(c.links) == P * S * 2


def test_delta_wrap_closes_the_phase_pattern():
    # Virtual plane P is plane 0 shifted by F slots: the seam link is as short as the others.
    P, S, F = 6, 10, 2
    c = Constellation.walker(spec(P=P, S=S, F=F, inc=60.0), time_steps=1)
    inter = c.links[c.inter_plane]
    L = np.linalg.norm(c.positions_km[0, inter[:, 1]] - c.positions_km[0, inter[:, 0]], axis=-1)
    seam = (c.plane[inter[:, 0]] == 0) & (c.plane[inter[:, 1]] == P - 1)
    assert seam.sum() == S
    assert L[seam].max() < 1.5 * L[~seam].max()


def test_star_has_no_seam_links():
    P, S = 6, 8
    c = Constellation.walker(spec("star", P=P, S=S, F=0, inc=87.0), time_steps=1)
    pl = c.plane[c.links]
    assert not np.any((pl[:, 0] == 0) & (pl[:, 1] == P - 1))
    assert len(c.links) == P * S + (P - 1) * S
    # RAAN from the orbit normal: a star spreads its planes over pi, a delta over 2 pi.
    h = np.cross(c.positions_km[0], c.velocities_km_s[0])
    def angle_gap(a, b):
        return np.abs(np.angle(np.exp(1j * (a - b))))

    assert angle_gap(np.arctan2(h[:, 0], -h[:, 1]), np.pi * c.plane / P).max() < 1e-12
    d = Constellation.walker(spec("delta", P=P, S=S, F=1), time_steps=1)
    hd = np.cross(d.positions_km[0], d.velocities_km_s[0])
    assert angle_gap(np.arctan2(hd[:, 0], -hd[:, 1]), 2 * np.pi * d.plane / P).max() < 1e-12


def test_time_slots_span_one_period():
    sp = spec()
    c = Constellation.walker(sp, time_steps=4)
    np.testing.assert_allclose(c.times_s, np.arange(4) * sp.period_s / 4)
    one = Constellation.walker(sp, time_steps=1)
    assert one.times_s.tolist() == [0.0]


@pytest.mark.parametrize("P,S", [(1, 1), (2, 2), (1, 3)])
def test_degenerate_shells_have_no_self_loops_or_duplicates(P, S):
    c = Constellation.walker(WalkerSpec("delta", P, S, 550.0, 53.0, 0), time_steps=1)
    assert np.all(c.links[:, 0] < c.links[:, 1])
    assert len(np.unique(c.links, axis=0)) == len(c.links)
