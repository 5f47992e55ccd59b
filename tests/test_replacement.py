"""Online re-placement: the workload, migration's physical cost, the window scorer, the
baselines and ExpertReplace-v0."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import networkx as nx
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import xnet_gym  # noqa: F401  (registers the envs)
from xnet_gym.activation import ActivationTrace, save_trace_npz
from xnet_gym.analytic import analytic_placement
from xnet_gym.baselines.replacement import REPLACERS, Oracle, PeriodicResolve, Static, score_run
from xnet_gym.errors import ScenarioError
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate
from xnet_gym.migration import MigrationSpec, expert_bytes, plan_copies, time_step_s
from xnet_gym.replacement import draw_episode, replay
from xnet_gym.scenario import load_scenario, scenario_from_dict
from xnet_gym.workload import SCHEDULES, WorkloadSpec, draw_windows, load_sources, mix_weights

TINY_WORKLOAD = WorkloadSpec(sources=("scenario", "zipf:1.5"), schedule="cycle", windows=4, tokens_per_window=64,
                             time_steps_per_window=1, dominant_share=0.8, dwell_windows=1)


def tiny_episode(seed=0, migration=None, workload=TINY_WORKLOAD, layer=1):
    migration = migration or MigrationSpec()
    sc = dataclasses.replace(load_scenario("tiny"), workload=workload, migration=migration)
    inst = build_instance(sc)
    rng = np.random.default_rng(seed)
    sources = load_sources(workload, sc, inst.trace, rng)
    return draw_episode(inst, workload, migration, sources, rng, layer=layer)


# ------------------------------------------------------------------------------ workload

@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_gives_shares_that_sum_to_one(schedule):
    spec = WorkloadSpec(sources=("a", "b", "c"), schedule=schedule, dwell_windows=2)
    w = mix_weights(spec, 12, np.random.default_rng(3))
    assert w.shape == (12, 3) and np.all(w >= 0)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


def test_cycle_and_switch_leaders():
    spec = WorkloadSpec(sources=("a", "b", "c"), schedule="cycle", dwell_windows=2, dominant_share=0.7)
    lead = mix_weights(spec, 12, np.random.default_rng(1)).argmax(axis=1)
    # Each leader holds for two windows, then the next source in order leads.
    assert np.all(lead[0::2] == lead[1::2])
    assert np.all(np.diff(lead[0::2]) % 3 == 1)
    w = mix_weights(spec, 4, np.random.default_rng(1))
    assert sorted(w[0].tolist()) == pytest.approx([0.15, 0.15, 0.7])
    sw = mix_weights(dataclasses.replace(spec, schedule="switch"), 12, np.random.default_rng(2))
    lead = sw.argmax(axis=1)
    assert set(np.unique(sw)) == {0.0, 1.0}
    assert np.all(lead[0::2] == lead[1::2]) and np.all(lead[1:-1:2] != lead[2::2])


def test_train_and_test_windows_never_share_a_token(tmp_path):
    # Layer 0 of the first half of the trace routes only to experts 0 and 1, the second half
    # only to 2 and 3: a window's experts tell where its tokens came from.
    n = 400
    x = np.empty((3, n, 2), dtype=np.int64)
    x[:, : n // 2] = [0, 1]
    x[:, n // 2:] = [2, 3]
    path = tmp_path / "halves.npz"
    save_trace_npz(ActivationTrace(x, 4), path)
    spec = WorkloadSpec(sources=(str(path),), windows=6, tokens_per_window=50, test_share=0.5)
    sc = load_scenario("tiny")
    sources = load_sources(spec, sc, build_instance(sc).trace, np.random.default_rng(0))
    for split, allowed in (("train", {0, 1}), ("test", {2, 3})):
        windows = draw_windows(spec, sources, 4, np.random.default_rng(5), split)
        seen = set(np.unique(np.concatenate([t.experts[0].ravel() for t in windows.traces])).tolist())
        assert seen == allowed


def test_the_same_seed_draws_the_same_episode():
    a, b = tiny_episode(seed=7), tiny_episode(seed=7)
    assert all(np.array_equal(x.experts, y.experts) for x, y in zip(a.windows.traces, b.windows.traces))
    assert np.array_equal(a.windows.time_steps, b.windows.time_steps)
    c = tiny_episode(seed=8)
    assert not all(np.array_equal(x.experts, y.experts) for x, y in zip(a.windows.traces, c.windows.traces))


def _scenario_with(workload: dict, migration: dict | None = None) -> dict:
    import tomllib

    data = tomllib.loads(load_scenario("tiny").to_toml())
    data["workload"] = workload
    if migration is not None:
        data["migration"] = migration
    return data


@pytest.mark.parametrize(("workload", "migration", "match"), [
    ({"sources": ["scenario", "zipf:1"], "weights": [0.5, 0.6]}, None, r"workload\.weights = .*must sum to 1"),
    ({"sources": ["scenario"], "tokens_per_window": 10_000}, None,
     r"workload\.tokens_per_window = 10000: a window longer than workload\.sources\[0\]"),
    ({"sources": ["no/such/trace.npz"]}, None, r"workload\.sources\[0\] = 'no/such/trace.npz': no such file"),
    ({"sources": []}, None, r"workload\.sources = \(\): must be a non-empty list"),
    ({"sources": ["zipf:x"]}, None, r"workload\.sources\[0\] = 'zipf:x'"),
    ({"schedule": "weekly"}, None, r"workload\.schedule = 'weekly': allowed: static, cycle"),
    ({"sources": ["scenario"]}, {"budget_bytes": -1.0}, r"migration\.budget_bytes = -1\.0: must be a finite number"),
    ({"sources": ["scenario"]}, {"rate_share": 0.0}, r"migration\.rate_share = 0\.0"),
    ({"windowz": 3}, None, r"workload\.windowz = 3: unknown key"),
])
def test_bad_workload_specs_fail_with_the_field(workload, migration, match):
    with pytest.raises(ScenarioError, match=match):
        sc = scenario_from_dict(_scenario_with(workload, migration))
        inst = build_instance(sc)
        load_sources(sc.workload, sc, inst.trace, np.random.default_rng(0))


def test_a_drift_scenario_saves_and_loads_the_same(tmp_path):
    sc = load_scenario("deepseek-esft-packed-drift")
    path = tmp_path / "drift.toml"
    sc.save(path)
    back = load_scenario(path)
    assert back.migration == sc.migration
    assert back.workload.schedule == "cycle" and back.workload.windows == sc.workload.windows
    assert [p.split("/")[-1] for p in back.workload.sources] == ["esft_intent.npz", "esft_law.npz",
                                                                  "esft_summary.npz"]


# ----------------------------------------------------------------------------- migration

def test_migration_cost_matches_a_hand_computation_on_tiny():
    # A slow reserved channel (1e-5 of the 1 Gbit/s ISLs = 10 kbit/s) so the copies take a
    # visible share of the window.
    mig = MigrationSpec(bytes_per_parameter=2, rate_share=1e-5)
    ep = tiny_episode(migration=mig)
    inst = ep.instance
    # tiny: hidden 64, expert_ff 128 -> 3 * 64 * 128 parameters x 2 bytes.
    assert expert_bytes(inst.model, mig) == 3 * 64 * 128 * 2 == 49152
    assert ep.channel_bps == pytest.approx(1e9 * 1e-5)
    assert ep.window_s == pytest.approx(time_step_s(inst.constellation)) == pytest.approx(
        inst.constellation.times_s[1])
    before = ep.start
    after = before.copy()
    after[0], after[1] = before[1], before[0]          # a swap: both experts move
    if before[0] == before[1]:
        pytest.skip("the start put experts 0 and 1 together")
    j = 2
    step = int(ep.windows.time_steps[j][0])
    graph = inst.topology.to_networkx(step)
    hops, path_s = [], []
    for e in (0, 1):
        u, v = int(ep.candidates[before[e]]), int(ep.candidates[after[e]])
        path = nx.shortest_path(graph, u, v, weight="weight")
        hops.append(len(path) - 1)
        path_s.append(nx.path_weight(graph, path, weight="weight"))
    bits = 49152 * 8
    send_s = bits / 1e4                                  # 39.3 s per copy on the 10 kbit/s channel
    landing = [send_s + path_s[0], 2 * send_s + path_s[1]]
    plan = plan_copies(inst.topology, step, ep.candidates[before], ep.candidates[after], 49152, ep.channel_bps,
                       ep.window_s)
    assert plan.moved.tolist() == [0, 1]
    assert plan.hops.tolist() == hops
    np.testing.assert_allclose(plan.landing_s, landing, rtol=1e-12)
    assert plan.bytes == 2 * 49152 and plan.link_bytes == 49152 * sum(hops)
    score = ep.serve(j, before, after)
    share = max(landing) / ep.window_s
    win = ep.window_instance(j)
    lat = lambda a: evaluate(win, ep.placement(a), split=False).stage_s[ep.layer]  # noqa: E731
    assert score.cutover_s == pytest.approx(max(landing), rel=1e-12)
    assert score.latency_s == pytest.approx(share * lat(before) + (1 - share) * lat(after), rel=1e-12)
    assert score.moved == 2 and score.bytes == 98304


def test_a_budget_that_binds_refuses_a_run_that_moves_too_much():
    mig = MigrationSpec(budget_bytes=49152.0)            # one tiny expert per window
    ep = tiny_episode(migration=mig)
    assert ep.budget_experts == 1
    a = ep.start.copy()
    b = a.copy()
    b[0], b[1] = a[1], a[0]
    runs = [a] * ep.n_served
    replay(ep, runs)                                    # staying put costs nothing
    with pytest.raises(ScenarioError, match=r"window 1 migration bytes = 98304: moves more than .* 49152"):
        replay(ep, [b, *runs[1:]])


# ---------------------------------------------------------------------------- baselines

def test_the_oracle_reproduces_the_closed_form_of_every_window_exactly():
    ep = tiny_episode()
    scores = score_run(ep, Oracle().solve(ep))
    for j, s in enumerate(scores, start=1):
        win = ep.window_instance(j)
        cf = evaluate(win, analytic_placement(win, ep.base.gateways), split=False).stage_s[ep.layer]
        assert s.latency_s == cf and s.ratio == 1.0 and s.cutover_s == 0.0


def test_static_first_never_moves_and_periodic_resolve_keeps_the_budget():
    mig = MigrationSpec(budget_bytes=2 * 49152.0)
    ep = tiny_episode(migration=mig, workload=dataclasses.replace(TINY_WORKLOAD, windows=6))
    static = score_run(ep, Static().solve(ep))
    assert all(s.moved == 0 and s.cutover_s == 0.0 for s in static)
    resolve = score_run(ep, PeriodicResolve().solve(ep))
    assert all(s.moved <= 2 for s in resolve)
    # Unbudgeted, re-solving every window is the closed form on the last window's tokens.
    free = dataclasses.replace(ep, budget_bytes=math.inf)
    run = PeriodicResolve().solve(free)
    for j, a in enumerate(run.assignments, start=1):
        assert np.array_equal(a, ep.closed_form(ep.history_instance(j)))
    assert set(REPLACERS) == {"static", "periodic-resolve", "oracle"}


def test_resolve_beats_static_when_the_task_switches():
    # Two synthetic tasks with their own popularity order, switching every window: the
    # placement fit on the warm-up is wrong half the time, re-solving is right half the time.
    wl = WorkloadSpec(sources=("zipf:2", "zipf:2"), schedule="switch", windows=8, tokens_per_window=256,
                      dwell_windows=2)
    ratios = {"static": [], "resolve": []}
    for seed in range(3):
        ep = tiny_episode(seed=seed, workload=wl, layer=0)
        ratios["static"] += [s.ratio for s in score_run(ep, Static().solve(ep))]
        ratios["resolve"] += [s.ratio for s in score_run(ep, PeriodicResolve().solve(ep))]
    assert np.mean(ratios["resolve"]) < np.mean(ratios["static"])


# ---------------------------------------------------------------------------------- env

def make_tiny_env(**kw):
    kw.setdefault("workload", TINY_WORKLOAD)
    return gym.make("xnet_gym/ExpertReplace-v0", scenario="tiny", **kw)


def test_the_env_passes_the_gymnasium_checker():
    env = make_tiny_env()
    check_env(env.unwrapped, skip_render_check=True)
    env = make_tiny_env(gain_observation=True, obs_layout="flat")
    check_env(env.unwrapped, skip_render_check=True)


def test_committing_at_once_is_the_static_baseline_and_the_return_is_minus_the_mean_ratio():
    env = make_tiny_env()
    env.reset(seed=3)
    u = env.unwrapped
    ret, done = 0.0, False
    while not done:
        _obs, r, done, _, info = env.step(u.commit_action)
        ret += r
    ep = u.episode
    static = score_run(ep, Static().solve(ep))
    assert [s.ratio for s in u.scores] == [s.ratio for s in static]
    assert ret == pytest.approx(-np.mean([s.ratio for s in static]), rel=1e-12)
    assert info["mean_ratio_to_reference"] == pytest.approx(-ret, rel=1e-12)


def test_the_mask_keeps_every_window_within_the_budget():
    env = make_tiny_env(migration={"budget_bytes": 49152.0}, max_moves=4)
    u = env.unwrapped
    assert u.budget_experts == 1
    rng = np.random.default_rng(0)
    for seed in range(3):
        obs, info = env.reset(seed=seed)
        done = False
        while not done:
            mask = obs["action_mask"] > 0
            assert mask[u.commit_action]
            a = int(rng.choice(np.flatnonzero(mask)))
            obs, _r, done, _, info = env.step(a)
            assert info["moved_experts"] <= 1 and not info["invalid_action"]
            # No swap ever fits a one-expert budget.
            assert not mask[u.n_moves: u.commit_action].any()
        assert all(s.moved <= 1 for s in u.scores)


def test_an_invalid_action_costs_and_moves_nothing():
    env = make_tiny_env(migration={"budget_bytes": 0.0})
    obs, _ = env.reset(seed=0)
    assert obs["action_mask"][:-1].sum() == 0
    _obs2, r, done, _, info = env.step(0)
    assert r == -0.1 and info["invalid_action"] and info["moved_experts"] == 0 and not done
    with pytest.raises(ScenarioError, match=r"reset options = \['tokens'\]: allowed: layer"):
        env.reset(options={"tokens": 3})
    with pytest.raises(ScenarioError, match=r"workload\.window = 3: unknown key"):
        make_tiny_env(workload={"window": 3})
    with pytest.raises(ScenarioError, match=r"workload = None: scenario 'tiny' has no \[workload\] table"):
        gym.make("xnet_gym/ExpertReplace-v0", scenario="tiny")


def test_greedy_play_is_deterministic_and_no_worse_on_its_estimate():
    def play(seed):
        env = make_tiny_env(gain_observation=True)
        env.reset(seed=seed)
        u, done, trace = env.unwrapped, False, []
        while not done:
            a = u.greedy_action()
            before = u._ep.moves.total_s
            if a != u.commit_action:
                assert u._core.action_latencies_s(u._ep)[a] < before
            _obs, r, done, _, _info = env.step(a)
            trace.append((a, r))
        return trace
    assert play(4) == play(4)


def test_the_replace_command_scores_every_baseline_on_the_same_episodes(tmp_path, capsys):
    import csv

    from xnet_gym.cli import main

    out = tmp_path / "replace.csv"
    assert main(["replace", "--scenario", "tiny-drift", "--baselines", "--policy", "greedy", "--episodes", "3",
                 "--csv", str(out)]) == 0
    rows = {r["policy"]: r for r in csv.DictReader(out.open())}
    assert float(rows["oracle"]["geomean_ratio"]) == 1.0
    assert float(rows["static"]["experts_moved_per_window"]) == 0.0
    # Every policy on the same episodes: the oracle is the lower reference of each of them.
    for r in rows.values():
        assert len(r["episode_ratios"].split()) == 3
        assert all(float(x) >= 1.0 - 0.1 for x in r["episode_ratios"].split())
    assert main(["replace", "--scenario", "tiny-drift", "--policy", "periodic-resolve:history_tokens=128",
                 "--episodes", "1"]) == 0
    assert main(["replace", "--scenario", "tiny-drift", "--policy", "static:fi=3"]) == 2
    assert "static parameters = ['fi']: allowed: fit" in capsys.readouterr().err


@pytest.mark.slow
def test_an_agent_trained_on_tiny_drift_re_places_better_than_never_moving(tmp_path):
    """Learning, not a shape check: the expert-pair policy, cloned from steepest descent on the
    routing history (2,000 steps, seconds), re-places held-out episodes better than the
    placement that never moves."""
    pytest.importorskip("sb3_contrib")
    from xnet_gym.agents.replace_eval import evaluate_replace
    from xnet_gym.agents.train import train

    out = train("xnet_gym/ExpertReplace-v0", "tiny-drift", timesteps=0, out=tmp_path / "run", imitate="greedy",
                imitation_steps=2000, progress_bar=False, torch_threads=1, hyperparameters={"n_envs": 4})
    rows = {r["policy"]: r for r in evaluate_replace("tiny-drift", ["static", str(out / "model.zip")],
                                                     range(3_000_000_000, 3_000_000_020), log=lambda _: None)}
    agent, static = rows[str(out / "model.zip")], rows["static"]
    assert agent["geomean_ratio"] < static["geomean_ratio"] - 0.005
    assert agent["experts_moved_per_window"] > 0


def test_a_pickled_env_continues_the_same_episode():
    import pickle

    env = make_tiny_env(gain_observation=True)
    env.reset(seed=1)
    env.step(env.unwrapped.greedy_action())
    twin = pickle.loads(pickle.dumps(env))
    done = False
    while not done:
        a = env.unwrapped.greedy_action()
        assert twin.unwrapped.greedy_action() == a
        obs, r, done, _, info = env.step(a)
        obs2, r2, _, _, info2 = twin.step(a)
        assert r == r2 and all(np.array_equal(obs[k], obs2[k]) for k in obs)
    assert info["mean_ratio_to_reference"] == info2["mean_ratio_to_reference"]
