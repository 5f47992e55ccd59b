import json

import gymnasium as gym
import numpy as np
import pytest
from conftest import ESFT, TLE_FILE, need_shared
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import xnet_gym  # noqa: F401
from xnet_gym.activation import load_trace_npz
from xnet_gym.errors import ScenarioError
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate
from xnet_gym.shipped_data import ESFT_NPZ, STARLINK_SHELL, STARLINK_TLE
from xnet_gym.tle import TleError, _satrecs, from_tle, parse_tle_file, propagate


def test_tle_loader_propagates_every_satellite_of_the_shared_file():
    names, l1, l2 = parse_tle_file(need_shared(TLE_FILE))
    assert len(names) == 9038
    recs = _satrecs(l1, l2)
    epoch = np.median([r.jdsatepoch + r.jdsatepochF for r in recs])
    pos, _vel = propagate(recs, np.array([epoch, epoch + 0.01]))
    assert pos.shape == (2, 9038, 3)
    r = np.linalg.norm(pos, axis=-1)
    assert r.min() > 6371 + 150 and r.max() < 6371 + 700


def test_inferred_grid_on_the_53_degree_shell():
    c = from_tle(STARLINK_TLE, time_steps=3, max_isl_km=3000.0, **STARLINK_SHELL)
    assert c.n_satellites == 1382
    degree = np.bincount(c.links.ravel(), minlength=c.n_satellites)
    assert degree.max() <= 4
    assert (degree == 4).mean() > 0.5
    length = np.linalg.norm(c.positions_km[0, c.links[:, 0]] - c.positions_km[0, c.links[:, 1]], axis=1)
    assert length.max() <= 3000.0
    assert 60 <= c.n_planes <= 80                 # Starlink shell 1: 72 planes nominal
    # Inter-plane neighbours are close in phase; intra-plane ones are the plane's next satellite.
    inter = c.links[c.inter_plane]
    assert np.all(np.abs(c.plane[inter[:, 0]] - c.plane[inter[:, 1]]) >= 1)
    intra = c.links[~c.inter_plane]
    assert np.all(c.plane[intra[:, 0]] == c.plane[intra[:, 1]])


def test_shipped_subset_matches_the_shared_file():
    full = dict(zip(*parse_tle_file(need_shared(TLE_FILE))[:2]))
    names, l1, _ = parse_tle_file(STARLINK_TLE)
    assert all(full[n] == a for n, a in zip(names, l1))


def test_shipped_npz_reproduces_esft_summary():
    summary = json.loads((need_shared(ESFT) / "intent" / "summary.json").read_text())["token_scores"]
    trace = load_trace_npz(ESFT_NPZ, 64)
    assert trace.experts.shape == (26, 8222, 6)
    ref = np.array([[summary[str(layer)][str(e)] for e in range(64)] for layer in range(1, 27)])
    np.testing.assert_allclose(trace.probabilities() / 6, ref, atol=5e-5)
    assert np.abs(np.round(trace.probabilities() / 6, 4) - ref).max() <= 1e-4 + 1e-12


def test_bad_tle_input(tmp_path):
    names, l1, l2 = parse_tle_file(STARLINK_TLE)
    good = [names[0], l1[0], l2[0]]
    bad_sum = [*good[:2], l2[0][:68] + str((int(l2[0][68]) + 1) % 10)]
    p = tmp_path / "bad.tle"
    p.write_text("\n".join(bad_sum) + "\n")
    with pytest.raises(TleError, match=r"bad.tle:3 checksum = '\d': the mod-10 checksum of this line is"):
        parse_tle_file(p)
    p.write_text("\n".join([good[0], good[1][:60], good[2]]) + "\n")
    with pytest.raises(TleError, match=r"bad.tle:2 = .*69 characters \(got 60\)"):
        parse_tle_file(p)
    with pytest.raises(TleError, match=r"shell filter = .*selects no satellite of 1382"):
        from_tle(STARLINK_TLE, inclination_deg=97.6, time_steps=1)
    with pytest.raises(TleError, match="no such TLE file"):
        parse_tle_file(tmp_path / "absent.tle")


@pytest.mark.parametrize("scenario", ["deepseek-esft", "deepseek-esft-packed", "starlink-tle"])
def test_envs_run_on_real_data_presets(scenario):
    for env_id in ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0"):
        env = gym.make(env_id, scenario=scenario, time_steps=4, train_time_steps=2, tokens=256)
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
        env.close()


def test_packed_capacity_is_honoured_everywhere():
    from xnet_gym import baselines
    from xnet_gym.analytic import analytic_placement

    inst = build_instance("deepseek-esft-packed", time_steps=2)
    assert inst.capacity == 3
    for name in ("Space-XNet", "RandIntra-CG", "RandIntra", "RandPlace", "eplb"):
        cls = baselines.SOLVERS[name]
        p = (cls(seed=1) if cls.randomized else cls()).solve(inst)
        inst.validate(p)                              # raises if any satellite holds > 3 experts
        assert np.bincount(p.experts[0]).max() <= 3
    p = analytic_placement(inst)
    assert np.bincount(p.experts[0]).max() == 3       # sort-match fills the cheapest seats first
    assert evaluate(inst, p).latency_s > 0
    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="deepseek-esft-packed", time_steps=2, tokens=128, layer=0)
    env.reset(seed=0)
    u = env.unwrapped
    a = 0
    for _ in range(3):
        assert u.action_masks()[a]
        env.step(a)
    assert not u.action_masks()[a]                     # full after three experts
    assert u.action_masks().any()


def test_experts_per_satellite_below_one_is_rejected(tmp_path):
    from conftest import BASE_TOML, write_scenario

    p = write_scenario(tmp_path, BASE_TOML + "[placement]\nexperts_per_satellite = 0\n")
    with pytest.raises(ScenarioError, match=r"placement.experts_per_satellite = 0: must be an integer >= 1"):
        build_instance(p)
