"""`xnet-gym benchmark`: frozen tracks, the policy protocol, determinism, and clear errors."""

import csv
import json

import gymnasium as gym
import numpy as np
import pytest

from xnet_gym import baselines
from xnet_gym.benchmark import BenchmarkError, callable_policy, load_suite, parse_policy
from xnet_gym.benchmark.runner import load_best_known, run_track, update_best_known
from xnet_gym.benchmark.suite import SUITE_FILE, problem_digest, track_sha256
from xnet_gym.cli import main
from xnet_gym.envs import scoring
from xnet_gym.placement import Placement

EXAMPLE = "examples/benchmark_policy.py"
DETERMINISTIC = ["analytic", "steepest-descent", "local-search", "anneal@2000it", "RandIntra-CG",
                 f"{EXAMPLE}:unblock_bottlenecks", f"{EXAMPLE}:cheapest_free"]


@pytest.fixture(scope="module")
def suite():
    return load_suite()


def quiet(line):
    pass


def test_every_track_rebuilds_the_instances_its_hash_records(suite):
    assert {t.group for t in suite.tracks.values()} >= {"in-distribution", "ood-routing", "ood-constellation",
                                                       "ood-model", "drift", "quick"}
    for track in suite.tracks.values():
        assert track.instances_sha256 is not None, track.name
        assert track_sha256(track) == track.instances_sha256, track.name


def test_the_hash_covers_what_an_instance_is(suite):
    track = suite.tracks["quick-tiny"]
    a, b = track.problems(limit=2)
    assert problem_digest(a) != problem_digest(b)
    # The same seed in the refinement env is the same instance (agents of both kinds meet it).
    env = gym.make("xnet_gym/ExpertRefine-v0", **track.env_kwargs)
    env.reset(seed=track.seeds[0])
    assert problem_digest(env.unwrapped.problem) == problem_digest(a)


def test_two_runs_give_the_same_instances_and_scores(suite):
    for name in ("quick-tiny", "quick-clustered"):
        track = suite.tracks[name]
        first = run_track(track, DETERMINISTIC, log=quiet)
        second = run_track(track, DETERMINISTIC, log=quiet)
        assert first.instances_sha256 == second.instances_sha256 == track.instances_sha256
        assert list(first.latency_s) == list(second.latency_s)
        for policy, lat in first.latency_s.items():
            assert np.array_equal(lat, second.latency_s[policy]), (name, policy)


def test_scores_against_brute_force_and_the_closed_form(suite):
    track = suite.tracks["quick-tiny"]
    result = run_track(track, ["analytic", "steepest-descent", "anneal@2000it", "brute-force"], log=quiet)
    optimum = result.latency_s["brute-force"]
    # The closed form's row is the episode's reference, exactly; nothing beats the optimum.
    assert np.array_equal(result.latency_s["analytic"], result.reference_s)
    for name, lat in result.latency_s.items():
        assert (lat >= optimum * (1 - 1e-12)).all(), name
    assert np.allclose(result.best_known_s, optimum, rtol=1e-12)
    rows = {r["policy"]: r for r in result.rows()}
    assert rows["analytic"]["geomean_x_closed_form"] == 1.0 and rows["analytic"]["win_rate"] == 0.0
    # Search finds something below the closed form on tiny's max objective.
    assert rows["steepest-descent"]["geomean_x_closed_form"] < 0.999
    assert rows["steepest-descent"]["win_rate"] > 0.0


def test_gateway_moving_strategies_never_set_the_best_known(suite):
    result = run_track(suite.tracks["quick-tiny"], ["RandPlace"], log=quiet)
    # RandPlace moves gateways (another problem): it beats the closed form on some tiny
    # instances, but the best known stays the closed form's.
    assert (result.latency_s["RandPlace"] < result.reference_s).any()
    assert np.array_equal(result.best_known_s, result.reference_s)


def test_steepest_descent_solver_lands_where_the_greedy_player_does(suite):
    track = suite.tracks["quick-clustered"]
    env = gym.make("xnet_gym/ExpertRefine-v0", **track.env_kwargs, gain_observation=True, max_moves=1000)
    for seed in track.seeds[:4]:
        env.reset(seed=seed)
        u = env.unwrapped
        done = False
        while not done:
            _, _, done, _, info = env.step(u.greedy_action())
        problem = u.problem
        layer = int(problem.batch.layers[problem.first])
        placement = baselines.get("steepest-descent", layers=[layer]).solve(problem.instance)
        assert scoring.objective_s(problem, placement) == info["latency_s"]


def test_best_known_record_is_folded_in_and_used(tmp_path, suite):
    track = suite.tracks["quick-clustered"]
    path = tmp_path / "best.json"
    first = run_track(track, ["steepest-descent"], log=quiet)
    update_best_known([first], path)
    stored = load_best_known(path)
    assert stored[track.name]["instances_sha256"] == track.instances_sha256
    # A later run of the closed form alone is scored against the stored search results.
    later = run_track(track, ["analytic"], log=quiet, stored=stored)
    assert np.array_equal(later.best_known_s, first.best_known_s)
    row = later.rows()[0]
    assert row["geomean_x_best_known"] > 1.01
    # A partial run (--instances) does not use or change a record of the whole track.
    partial = run_track(track, ["analytic"], log=quiet, stored=stored, limit=2)
    assert np.array_equal(partial.best_known_s, partial.reference_s)


def test_cli_quick_run_writes_every_output(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--quick", "--baselines", "--policy", f"{EXAMPLE}:unblock_bottlenecks",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "track quick-tiny" in printed and "wrote" in printed
    all_rows = list(csv.DictReader((out / "results.csv").open()))
    assert {r["track"] for r in all_rows} == {"quick-tiny", "quick-clustered", "quick-replace"}
    # The drift track runs the re-placement baselines and skips the placement policy.
    drift = {r["policy"]: r for r in all_rows if r["track"] == "quick-replace"}
    assert "unblock_bottlenecks" not in drift and "skipping" in printed
    assert float(drift["oracle"]["geomean_x_closed_form"]) == 1.0
    assert {"static", "periodic-resolve", "greedy"} <= set(drift)
    rows = [r for r in all_rows if r["track"] != "quick-replace"]
    policies = {r["policy"] for r in rows}
    assert {"analytic", "RandIntra-CG", "RandIntra", "RandPlace", "steepest-descent", "local-search",
            "anneal@2000it", "unblock_bottlenecks"} <= policies
    assert {r["kind"] for r in rows} == {"closed-form", "baseline", "search", "user"}
    for key in ("geomean_x_closed_form", "geomean_x_best_known", "win_rate", "worst_x_closed_form",
                "s_per_instance", "batch"):
        assert key in rows[0]
    data = json.loads((out / "results.json").read_text())
    assert data["suite_version"] == 1 and data["command"].startswith("xnet-gym benchmark --quick")
    assert data["tracks"]["quick-tiny"]["instances_sha256"] == load_suite().tracks["quick-tiny"].instances_sha256
    assert "| unblock_bottlenecks | user |" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000


# ------------------------------------------------------------------------------ bad input
def test_unknown_track_is_named(capsys):
    assert main(["benchmark", "--track", "nope", "--baselines", "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "--track = 'nope': unknown track; allowed: paper, deepseek-esft" in err


def test_quick_refuses_a_full_track(suite):
    with pytest.raises(BenchmarkError, match="'paper': is not a quick track"):
        suite.select(["paper"], quick=True)


def test_unknown_policy_and_budget_are_named():
    with pytest.raises(BenchmarkError, match="--policy = 'magic': allowed: analytic, a solver name"):
        parse_policy("magic")
    with pytest.raises(BenchmarkError, match=r"steepest-descent budget = 1\.0: this solver takes no time budget"):
        parse_policy("steepest-descent@1s")
    with pytest.raises(BenchmarkError, match=r"local-search iterations = 5: this solver takes no iteration budget"):
        parse_policy("local-search@5it")
    with pytest.raises(BenchmarkError, match="no callable named 'nothing'"):
        parse_policy(f"{EXAMPLE}:nothing")
    with pytest.raises(BenchmarkError, match=r"no such file: missing\.py"):
        parse_policy("missing.py:place")
    with pytest.raises(BenchmarkError, match="no such model file"):
        parse_policy("missing/model.zip")


def test_a_callable_with_an_invalid_action_is_stopped(suite):
    track = suite.tracks["quick-tiny"]

    def out_of_range(obs):
        return 99

    def masked(obs):
        return int(np.flatnonzero(obs["action_mask"] == 0)[0]) if (obs["action_mask"] == 0).any() else 0

    def fraction(obs):
        return 0.5

    with pytest.raises(BenchmarkError, match=r"policy out_of_range: action = 99: returned on track quick-tiny, "
                                             r"seed 3000000000, step 0; allowed: an integer in \[0, 4\]"):
        run_track(track, [callable_policy(out_of_range)], log=quiet)
    with pytest.raises(BenchmarkError, match=r"policy masked: action = \d: returned on track quick-tiny, seed "
                                             r"\d+, step \d+ is masked out"):
        run_track(track, [callable_policy(masked)], log=quiet)
    with pytest.raises(BenchmarkError, match=r"policy fraction: action = 0\.5"):
        run_track(track, [callable_policy(fraction)], log=quiet)


def test_a_callable_with_an_infeasible_placement_is_stopped(suite):
    track = suite.tracks["quick-tiny"]

    def crowded(instance, layer):
        gateways = instance.layout.central_gateways
        experts = np.tile(instance.layout.candidates(0, gateways[0])[:1], (instance.n_layers, instance.n_experts))
        return Placement(gateways, experts)

    def not_a_placement(instance):
        return [1, 2, 3]

    with pytest.raises(BenchmarkError, match=r"policy crowded = 'an infeasible placement': returned on track "
                                             r"quick-tiny, seed 3000000000: .*more than experts_per_satellite = 1"):
        run_track(track, [callable_policy(crowded)], log=quiet)
    with pytest.raises(BenchmarkError, match="policy not_a_placement = 'list': returned this on track quick-tiny"):
        run_track(track, [callable_policy(not_a_placement)], log=quiet)
    with pytest.raises(BenchmarkError, match=r"first parameter = 'x': allowed: instance .* or obs / observation"):
        callable_policy(lambda x: 0)


def _suite_file(tmp_path, body: str):
    path = tmp_path / "suite.toml"
    path.write_text("version = 1\n" + body)
    return path


def test_a_missing_trace_file_is_named(tmp_path):
    scenario = (SUITE_FILE.parent / "scenarios" / "packed-law.toml").read_text()
    (tmp_path / "bad.toml").write_text(scenario.replace("../../data/esft_law.npz", "nowhere/law.npz"))
    path = _suite_file(tmp_path, '[[tracks]]\nname = "t"\ngroup = "ood-routing"\nenv = "xnet_gym/ExpertPlacement-v0"\n'
                                 'scenario = "bad.toml"\nseeds = [1]\n')
    track = load_suite(path).tracks["t"]
    with pytest.raises(Exception, match=r"activation.path = '.*nowhere/law.npz': no such file"):
        track.problems()


@pytest.mark.parametrize("body, message", [
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "tiny"\n'
     'seeds = [1, 1]\n', r"track t: seeds = \[1, 1\]: must not repeat a seed"),
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ModelPlacement-v0"\nscenario = "tiny"\nseeds = [1]\n',
     "track t: env = 'xnet_gym/ModelPlacement-v0': allowed: xnet_gym/ExpertPlacement-v0"),
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "tiny"\nseeds = [1]\n'
     'budget = 3\n', r"tracks\[0\].budget = 3: unknown key"),
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "no.toml"\n'
     'seeds = [1]\n', "track t: scenario = 'no.toml': no such file"),
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "tiny"\nseeds = [1]\n'
     'budgets_s = [-1.0]\n', r"track t: budgets_s\[0\] = -1.0: must be a finite number > 0"),
    ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "tiny"\n',
     "tracks\\[0\\].seeds is missing"),
])
def test_bad_suite_files_are_named(tmp_path, body, message):
    with pytest.raises(BenchmarkError, match=message):
        load_suite(_suite_file(tmp_path, body))


def test_a_changed_track_fails_its_hash(tmp_path):
    body = ('[[tracks]]\nname = "t"\ngroup = "quick"\nenv = "xnet_gym/ExpertPlacement-v0"\nscenario = "tiny"\n'
            f'seeds = [1, 2]\ninstances_sha256 = "{"0" * 64}"\n')
    track = load_suite(_suite_file(tmp_path, body)).tracks["t"]
    with pytest.raises(BenchmarkError, match=r"track t: instances_sha256 = '0+': does not match the instances"):
        run_track(track, ["analytic"], log=quiet)


def test_out_must_be_a_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["benchmark", "--quick", "--policy", "analytic", "--out", str(blocker)]) == 2
    assert "is a file; give a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------- SB3 zips
SMALL = {"n_envs": 2, "n_steps": 64, "batch_size": 64, "n_epochs": 1}


@pytest.mark.slow
def test_a_refine_zip_trained_on_one_shape_is_scored_on_another(tmp_path, suite):
    from xnet_gym.agents.train import train

    out = train("xnet_gym/ExpertRefine-v0", "tiny", "maskable_ppo", 0, seed=0, out=tmp_path / "r", progress_bar=False,
                env_kwargs={"gain_observation": True}, imitate="greedy", imitation_steps=1500,
                hyperparameters=SMALL)
    model = str(out / "model.zip")
    cache: dict = {}                        # one loaded model across tracks, as `xnet-gym benchmark` keeps it
    same = run_track(suite.tracks["quick-tiny"], [model, "steepest-descent"], log=quiet, policies=cache)
    # quick-clustered: 6 experts (not 4), 7 candidates (not 5), 2 seats each (not 1).
    other = run_track(suite.tracks["quick-clustered"], [model, "steepest-descent"], log=quiet, policies=cache)
    again = run_track(suite.tracks["quick-tiny"], [model], log=quiet, policies=cache)      # and back again
    assert np.array_equal(again.latency_s["learned:r"], same.latency_s["learned:r"])
    for result, slack in ((same, 0.002), (other, 0.03)):
        rows = {r["policy"]: r for r in result.rows()}
        learned, search = rows["learned:r"], rows["steepest-descent"]
        assert learned["kind"] == "learned" and learned["geomean_x_best_known"] >= 1.0 - 1e-12
        # It learned to descend, on the shape it never saw too: below the closed form on the
        # geomean, and near the steepest descent it imitated (closed form to steepest: 0.4 % on
        # tiny, 3.6 % on quick-clustered, where it measured 0.990).
        assert learned["geomean_x_closed_form"] < 1.0 and learned["win_rate"] > 0.0
        assert learned["geomean_x_closed_form"] <= search["geomean_x_closed_form"] + slack


@pytest.mark.slow
def test_a_zip_whose_network_cannot_take_the_shapes_is_named(tmp_path, suite):
    from sb3_contrib import MaskablePPO

    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny")
    folder = tmp_path / "flat"
    folder.mkdir()
    MaskablePPO("MultiInputPolicy", env, n_steps=64, batch_size=64).save(folder / "model.zip")
    (folder / "config.json").write_text(json.dumps({"env": "xnet_gym/ExpertPlacement-v0", "algo": "maskable_ppo",
                                                    "env_kwargs": {"scenario": "tiny"}}))
    model = str(folder / "model.zip")
    run_track(suite.tracks["quick-tiny"], [model], log=quiet)             # its own shapes: fine
    with pytest.raises(Exception, match=r"cannot take this env's shapes: parameter .* is \(\d+, \d+\) in the model "
                                        r"and would need \(\d+, \d+\)"):
        run_track(suite.tracks["quick-clustered"], [model], log=quiet)
