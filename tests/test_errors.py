"""Bad input fails at the boundary, naming the field, the value and what is allowed."""

import os

import numpy as np
import pytest
from conftest import BASE_TOML, write_scenario

from xnet_gym.activation import ActivationTrace, load_trace_npz, save_trace_npz
from xnet_gym.errors import PlacementError, ScenarioError, TraceError
from xnet_gym.instance import build_instance
from xnet_gym.placement import Placement
from xnet_gym.scenario import load_scenario


def scenario_with(tmp_path, old, new):
    assert old in BASE_TOML
    return write_scenario(tmp_path, BASE_TOML.replace(old, new))


@pytest.mark.parametrize("old,new,needles", [
    ("planes = 3\n", "", ["constellation.planes", "missing", "required"]),
    ('pattern = "delta"', 'pattern = "hexagon"', ["constellation.pattern", "'hexagon'", "delta, star"]),
    ("altitude_km = 550.0", "altitude_km = -5.0", ["constellation.altitude_km", "-5.0", "[100, 400000] km"]),
    ("inclination_deg = 53.0", "inclination_deg = 181.0", ["constellation.inclination_deg", "181.0", "[0, 180]"]),
    ("inclination_deg = 53.0", "inclination_deg = -1.0", ["constellation.inclination_deg", "-1.0", "[0, 180]"]),
    ("planes = 3", "planes = 0", ["constellation.planes", "0", "[1, 1000000]"]),
    ('preset = "tiny"', 'preset = "tiny"\ntop_k = 5', ["model.top_k", "5", "<= model.experts (4)"]),
    ("sats_per_plane = 6", "sats_per_plane = 2", ["constellation.sats_per_plane", "2", "layers_per_subnet"]),
    ("planes = 3\n", "planes = 2\n", ["placement.experts_per_satellite", "1", "3 seats for 4 experts"]),
    ("[evaluation]", "[links]\nlink_survival = 0.0\n[evaluation]", ["links.link_survival", "0.0", "(0, 1]"]),
    ("[evaluation]", "[links]\nlink_survival = 1.5\n[evaluation]", ["links.link_survival", "1.5", "(0, 1]"]),
    ("[evaluation]", "[placement]\nexperts_per_satellite = 0\n[evaluation]",
     ["placement.experts_per_satellite", "0", ">= 1"]),
    ("time_steps = 2", "time_steps = 2\nobjective = \"mean\"", ["evaluation.objective", "'mean'", "max, weighted"]),
    ("time_steps = 2", "slotz = 2", ["evaluation.slotz", "unknown key"]),
    ('preset = "tiny"', 'preset = "gpt-5"', ["model.preset", "'gpt-5'", "tiny"]),
    ("planes = 3", 'planes = "three"', ["constellation.planes", "'three'", "int"]),
])
def test_bad_scenario_values(tmp_path, old, new, needles):
    path = scenario_with(tmp_path, old, new)
    with pytest.raises(ScenarioError) as err:
        build_instance(load_scenario(path))
    for needle in needles:
        assert needle in str(err.value)


def test_unknown_preset_and_missing_path(tmp_path):
    with pytest.raises(ScenarioError, match=r"scenario = 'paperz': unknown preset.*presets: .*paper"):
        load_scenario("paperz")
    missing = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError, match=r"no such file"):
        load_scenario(missing)


def test_invalid_toml(tmp_path):
    p = write_scenario(tmp_path, "name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(p)


def test_trace_wrong_shape_range_and_duplicates():
    with pytest.raises(TraceError, match=r"trace.experts.shape = \(3, 4\)"):
        ActivationTrace(np.zeros((3, 4), dtype=int), 4)
    with pytest.raises(TraceError, match=r"trace.experts = 7: expert ids must be in \[0, 3\]"):
        ActivationTrace(np.array([[[0, 7]]]), 4)
    with pytest.raises(TraceError, match=r"trace.experts = -1"):
        ActivationTrace(np.array([[[0, -1]]]), 4)
    with pytest.raises(TraceError, match=r"trace.experts\[0, 1\] = \[2, 2\]: .*distinct"):
        ActivationTrace(np.array([[[0, 1], [2, 2]]]), 4)


def test_trace_that_does_not_fit_the_model(tmp_path):
    t = ActivationTrace(np.array([[[0, 1]]] * 2), 4)
    save_trace_npz(t, tmp_path / "two_layers.npz")
    p = write_scenario(tmp_path, BASE_TOML.replace("tokens = 50", 'source = "trace"\npath = "two_layers.npz"'))
    with pytest.raises(TraceError, match=r"activation.path \(.*two_layers.npz\) = '2 layers x 4 experts, top-2': "
                                         r"the model needs 3 layers x 4 experts, top-2"):
        build_instance(p)


def test_npz_that_needs_pickle(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, experts=np.array([object()], dtype=object))
    with pytest.raises(TraceError, match="need pickle"):
        load_trace_npz(path, 4)
    with pytest.raises(TraceError, match="no such file"):
        load_trace_npz(tmp_path / "absent.npz", 4)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    t = ActivationTrace(np.array([[[0, 1]]]), 4)

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", boom)
    with pytest.raises(OSError):
        save_trace_npz(t, tmp_path / "t.npz")
    assert os.listdir(tmp_path) == []   # no target, no temporary file


def test_placement_errors(tiny):
    g = tiny.layout.central_gateways
    cand = [tiny.layout.candidates(layer)[:4] for layer in range(3)]
    ok = Placement(g, np.stack(cand))
    tiny.validate(ok)
    bad = np.stack(cand)
    bad[1, 2] = 10_000
    with pytest.raises(PlacementError, match=r"placement.experts = 10000: satellite index must be in \[0, 17\]"):
        tiny.validate(Placement(g, bad))
    crowded = np.stack(cand)
    crowded[0, :] = cand[0][0]
    with pytest.raises(PlacementError, match="more than experts_per_satellite = 1"):
        tiny.validate(Placement(g, crowded))
    on_gw = np.stack(cand)
    on_gw[2, 0] = g[2]
    with pytest.raises(PlacementError, match=r"placement.experts\[2\]\[0\].*own layer's gateway"):
        tiny.validate(Placement(g, on_gw))


@pytest.mark.parametrize("name,params,needle", [
    ("RandPlace", {"seed": -1}, r"seed = -1: must be an integer >= 0"),
    ("RandIntra", {"seed": 1.5}, r"seed = 1.5: must be an integer >= 0"),
    ("RandPlace", {"seeds": 1}, r"RandPlace parameters = \['seeds'\]: allowed: seed"),
    ("optimum", {"mip_rel_gap": 2}, r"mip_rel_gap = 2: must be in \(0, 1\)"),
    ("optimum", {"time_limit_s": "10"}, r"time_limit_s = '10': must be a finite number > 0"),
    ("local-search", {"time_budget_s": float("nan")}, r"time_budget_s = nan: must be a finite number > 0"),
    ("local-search", {"start": 3}, r"start = 'int': must be an xnet_gym Placement or None"),
    ("brute-force", {"max_placements": 0}, r"max_placements = 0: must be an integer >= 1"),
    ("Space-XNet", {"seed": 0}, r"Space-XNet parameters = \['seed'\]: allowed: none"),
])
def test_solver_parameters(name, params, needle):
    from xnet_gym import baselines

    with pytest.raises(ScenarioError, match=needle):
        baselines.get(name, **params)


def test_env_reset_options_and_calls_out_of_order():
    import gymnasium as gym

    import xnet_gym  # noqa: F401
    from xnet_gym.activation import zipf_trace
    from xnet_gym.envs import PlacementGenerator
    from xnet_gym.errors import XnetError

    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny")
    with pytest.raises(XnetError, match=r"analytic_action\(\) needs an episode in progress"):
        env.unwrapped.analytic_action()
    with pytest.raises(ScenarioError, match=r"reset options = \['time_steps'\]: allowed keys: layer, trace"):
        env.reset(seed=0, options={"time_steps": 3})
    with pytest.raises(ScenarioError,
                       match=r"options\['trace'\] = 'ndarray': must be an xnet_gym.activation.ActivationTrace"):
        env.reset(seed=0, options={"trace": np.zeros((3, 10, 2), dtype=int)})
    wrong = zipf_trace(2, 4, 2, 50, 1.0, np.random.default_rng(0))     # tiny has 3 layers
    with pytest.raises(TraceError, match=r"trace = '2 layers x 4 experts, top-2': the model needs 3 layers x 4 "
                                         r"experts, top-2"):
        env.reset(seed=0, options={"trace": wrong})
    model = gym.make("xnet_gym/ModelPlacement-v0", scenario="tiny")
    with pytest.raises(ScenarioError, match=r"layer = 1: ModelPlacement places every layer"):
        gym.make("xnet_gym/ModelPlacement-v0", scenario="tiny", layer=1)
    with pytest.raises(ScenarioError, match=r"options\['layer'\] = 1: ModelPlacement places every layer"):
        model.reset(seed=0, options={"layer": 1})
    with pytest.raises(ScenarioError, match=r"block_size = 0: must be an integer >= 1"):
        PlacementGenerator("tiny", scope="stage", block_size=0)


@pytest.mark.parametrize("old,new,needles", [
    ("[evaluation]", "[links]\nhop_delay_s = 1e308\n[evaluation]", ["links.hop_delay_s", "[0, 3600] s"]),
    ("[evaluation]", "[compute]\ngflops = 1e-300\n[evaluation]", ["compute.gflops", "[0.001, 1e+09]"]),
    ("altitude_km = 550.0", "altitude_km = 1e-9", ["constellation.altitude_km", "[100, 400000] km"]),
    ("altitude_km = 550.0", "altitude_km = 1e300", ["constellation.altitude_km", "1e+300"]),
    ("tokens = 50", "tokens = 50\nalpha = 1e6", ["activation.alpha", "[0, 50]"]),
    ("tokens = 50", "tokens = 10000000000", ["activation.tokens", "[1, 10000000]"]),
    ("time_steps = 2", "time_steps = 1000000", ["evaluation.time_steps", "[1, 100000]"]),
])
def test_extreme_but_well_formed_values_fail_at_the_boundary(tmp_path, old, new, needles):
    """Values that used to pass and then give NaN, overflow or MemoryError deep inside."""
    with pytest.raises(ScenarioError) as err:
        load_scenario(scenario_with(tmp_path, old, new))
    for needle in needles:
        assert needle in str(err.value)


def test_tle_spec_names_its_fields():
    from xnet_gym.scenario import TleSpec

    with pytest.raises(ScenarioError, match=r"constellation.inclination_tol_deg = -1: must be a finite number in "
                                            r"\[0, 90\] degrees"):
        TleSpec(path="x.tle", inclination_deg=53.0, inclination_tol_deg=-1)


def test_specs_check_themselves_when_replaced():
    import dataclasses

    from xnet_gym.scenario import load_scenario as load

    sc = load("tiny")
    with pytest.raises(ScenarioError, match=r"evaluation.objective = 'mean'"):
        dataclasses.replace(sc.evaluation, objective="mean")
    with pytest.raises(ScenarioError, match=r"placement.experts_per_satellite = 0"):
        dataclasses.replace(sc, placement=dataclasses.replace(sc.placement, experts_per_satellite=0))


def test_core_install_passes_the_env_checker_without_matplotlib():
    """Without matplotlib the envs advertise only `ansi`, so Gymnasium's checker (render
    check included) passes on the core install."""
    import subprocess
    import sys

    code = """
import sys
class HideMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "matplotlib":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, HideMatplotlib())
import gymnasium as gym
from gymnasium.utils.env_checker import check_env
import xnet_gym
env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny")
check_env(env.unwrapped)
print(env.unwrapped.metadata["render_modes"])
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # `human` prints the text view (check_env renders it); `rgb_array` needs matplotlib.
    assert done.stdout.strip().splitlines()[-1] == "['human', 'ansi']"


def test_inputs_that_used_to_pass_validation_and_then_break(tmp_path, capsys):
    """Each of these was accepted before and then scored wrongly, truncated silently or died
    with a raw traceback."""
    from xnet_gym.cli import main
    from xnet_gym.tle import TleError, parse_tle_file

    # A trace whose top-k differs from the model's: `compare --trace` scored it without a word.
    top3 = ActivationTrace(np.array([[[0, 1, 2]] * 5] * 3), 4)
    save_trace_npz(top3, tmp_path / "top3.npz")
    assert main(["compare", "--scenario", "tiny", "--trace", str(tmp_path / "top3.npz")]) == 2
    assert "--trace = '3 layers x 4 experts, top-3': the model needs 3 layers x 4 experts, top-2" in \
        capsys.readouterr().err
    # activation.tokens beyond the trace was cut silently.
    two = ActivationTrace(np.array([[[0, 1]] * 5] * 3), 4)
    save_trace_npz(two, tmp_path / "five.npz")
    p = write_scenario(tmp_path, BASE_TOML.replace("tokens = 50", 'source = "trace"\npath = "five.npz"\ntokens = 9'))
    with pytest.raises(TraceError, match=r"activation.tokens = 9: the trace at .*five.npz has only 5 tokens"):
        build_instance(p)
    # A truncated .npz (raw BadZipFile) and random bytes (a misleading "needs pickle").
    good = (tmp_path / "five.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(TraceError, match=r"not a readable .npz, truncated or damaged"):
        load_trace_npz(tmp_path / "cut.npz", 4)
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(256))
    with pytest.raises(TraceError, match=r"is not an .npz file \(no zip signature\)"):
        load_trace_npz(tmp_path / "noise.npz", 4)
    # An empty TLE file (raw "zero-size array").
    (tmp_path / "empty.tle").write_text("\n")
    with pytest.raises(TleError, match=r"holds no TLE records"):
        parse_tle_file(tmp_path / "empty.tle")


def test_mostly_down_links_warn(tmp_path):
    p = write_scenario(tmp_path, BASE_TOML.replace("[evaluation]", "[links]\nmax_isl_km = 1.0\n[evaluation]"))
    with pytest.warns(UserWarning, match=r"links: 100.0% of the ISLs are down .*max_isl_km = 1.0"):
        build_instance(p)


def test_sizes_are_refused_with_an_estimate_before_allocating(tmp_path):
    import gymnasium as gym

    import xnet_gym  # noqa: F401

    big = BASE_TOML.replace("planes = 3", "planes = 1000").replace("sats_per_plane = 6", "sats_per_plane = 1000")
    big = big.replace("time_steps = 2", "time_steps = 200")
    with pytest.raises(ScenarioError, match=r"scenario size = 't': needs about .* GiB .* the limit is 8 GiB"):
        build_instance(write_scenario(tmp_path, big))
    with pytest.raises(ScenarioError, match=r"evaluation.time_steps = 1000000: must be an integer \[1, 100000\]"):
        gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny", time_steps=10**6)
    for env_id in ("xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0"):
        with pytest.raises(ScenarioError, match=r"tokens = 1000000000000: must be an integer \[1, 10000000\]"):
            gym.make(env_id, scenario="tiny", tokens=10**12)
