import networkx as nx
import numpy as np
import pytest

from xnet_gym.constellation import LIGHT_SPEED_KM_S, Constellation, WalkerSpec
from xnet_gym.topology import LinkSpec, Topology


def make_topology(**links):
    c = Constellation.walker(WalkerSpec("delta", 6, 9, 550.0, 53.0, 2), time_steps=5)
    return Topology(c, LinkSpec(**links), message_bits=65536.0, rng=np.random.default_rng(3))


def test_shortest_paths_match_networkx_with_outages():
    topo = make_topology(link_survival=0.7, polar_cutoff_deg=45.0, hop_delay_s=1e-3, isl_rate_bps=1e9)
    sources = [0, 13, 40]
    dist = topo.distances_from(sources)
    assert dist.shape == (5, 3, 54)
    unreachable = 0
    for k in range(5):
        g = topo.to_networkx(k)
        for i, s in enumerate(sources):
            ref = nx.single_source_dijkstra_path_length(g, s, weight="weight")
            for n in range(54):
                if n in ref:
                    assert abs(dist[k, i, n] - ref[n]) < 1e-12
                else:
                    assert np.isinf(dist[k, i, n])
                    unreachable += 1
    assert unreachable > 0  # the draw does disconnect something, so inf handling is exercised


def test_link_weight_is_propagation_plus_serialisation_plus_hop():
    topo = make_topology(hop_delay_s=2e-3, isl_rate_bps=1e9)
    expected = topo.length_km / LIGHT_SPEED_KM_S + 65536.0 / 1e9 + 2e-3
    np.testing.assert_allclose(topo.weight_s, expected, rtol=1e-15)


@pytest.mark.filterwarnings("ignore:links.*ISLs are down:UserWarning")  # outages are the point
def test_feasibility_rules():
    base = make_topology()
    assert base.up.all()
    polar = make_topology(polar_cutoff_deg=30.0)
    c = polar.constellation
    lat = np.abs(c.latitude_deg)
    a, b = c.links[:, 0], c.links[:, 1]
    high = (lat[:, a] > 30) | (lat[:, b] > 30)
    np.testing.assert_array_equal(polar.up, ~(high & c.inter_plane))
    short = make_topology(max_isl_km=3000.0)
    np.testing.assert_array_equal(short.up, short.length_km <= 3000.0)
    rate = make_topology(max_angular_rate_rad_s=1e-3)
    assert 0 < rate.up.sum() < rate.up.size
    np.testing.assert_array_equal(rate.up, rate.angular_rate_rad_s <= 1e-3)


def test_survival_draw_rate():
    topo = make_topology(link_survival=0.8)
    assert abs(topo.up.mean() - 0.8) < 0.05


def test_time_step_subsets_and_superset_tables_give_the_same_distances(monkeypatch):
    from xnet_gym import topology as topology_module

    topo = make_topology(link_survival=0.7)
    full = topo.distances(np.array([3, 7, 11]))               # cached: a superset table
    steps = np.array([4, 0, 2])
    np.testing.assert_array_equal(topo.distances(np.array([11, 3]), steps), full[steps][:, [2, 0]])
    fresh = make_topology(link_survival=0.7)           # no cached table: computes 3 steps only
    np.testing.assert_array_equal(fresh.distances(np.array([11, 3]), steps), full[steps][:, [2, 0]])
    assert not fresh._cache
    # The cache is bounded in bytes: least recently used tables go first.
    monkeypatch.setattr(topology_module, "CACHE_BYTES", 2 * full[:, :1].nbytes)
    for s in range(10):
        topo.distances(np.array([s]))
    assert sum(t.nbytes for _, t in topo._cache.values()) <= 2 * full[:, :1].nbytes


def test_random_gateway_resets_cache_no_paths():
    import gymnasium as gym

    import xnet_gym  # noqa: F401

    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="paper", train_time_steps=4,
                   layer_strategy="random-gateway")
    env.reset(seed=0)
    topo = env.unwrapped.generator.base.topology
    before = len(topo._cache)
    for _ in range(30):
        env.reset()
    assert len(topo._cache) == before                        # was one 52 MB table per reset
