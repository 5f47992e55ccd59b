import dataclasses

import numpy as np
import pytest

from xnet_gym import baselines
from xnet_gym.analytic import analytic_placement
from xnet_gym.baselines import EPLB, BruteForce, LocalSearch, Optimum, RandIntraCG
from xnet_gym.errors import ScenarioError
from xnet_gym.instance import build_instance
from xnet_gym.latency import evaluate, evaluate_stages
from xnet_gym.scenario import ActivationSpec, PlacementSpec


def tiny_variant(seed=0, capacity=1, objective="max", strength=3.0):
    base = build_instance("tiny")
    sc = dataclasses.replace(base.scenario, seed=seed, placement=PlacementSpec(capacity),
                             activation=ActivationSpec(source="clustered", alpha=0.5, tokens=80, clusters=3,
                                                       coactivation_strength=strength))
    return build_instance(sc, objective=objective)


@pytest.mark.parametrize("objective", ["max", "weighted"])
@pytest.mark.parametrize("capacity", [1, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_milp_equals_brute_force_on_tiny(objective, capacity, seed):
    inst = tiny_variant(seed, capacity, objective)
    opt = Optimum()
    p_opt = opt.solve(inst)
    p_bf = BruteForce().solve(inst)
    assert opt.last_info["optimal"]
    inst.validate(p_opt)
    assert evaluate(inst, p_opt).latency_s == pytest.approx(evaluate(inst, p_bf).latency_s, rel=1e-12)
    assert evaluate(inst, p_opt).latency_s <= evaluate(inst, analytic_placement(inst)).latency_s + 1e-15


def test_optimum_equals_sort_match_on_paper_under_weighted(paper):
    inst = paper.with_objective("weighted")
    opt = evaluate(inst, Optimum().solve(inst)).latency_s
    analytic = evaluate(inst, analytic_placement(inst)).latency_s
    assert opt == pytest.approx(analytic, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_local_search_never_worse_than_its_start(seed):
    inst = tiny_variant(seed, capacity=2)
    for start in (analytic_placement(inst), RandIntraCG(seed=seed).solve(inst)):
        ls = LocalSearch(time_budget_s=5.0, start=start)
        out = ls.solve(inst)
        inst.validate(out)
        for layer in range(inst.n_layers):
            before = evaluate_stages(inst, start, [layer]).stage_s[0]
            after = evaluate_stages(inst, out, [layer]).stage_s[0]
            assert after <= before + 1e-15
    # From a random start it finds real improvements.
    rand = RandIntraCG(seed=5).solve(inst)
    assert evaluate(inst, LocalSearch(5.0, start=rand).solve(inst)).latency_s < evaluate(inst, rand).latency_s


def test_time_limit_reports_the_bound_and_returns(paper):
    inst = paper.with_time_steps(np.arange(0, 200, 5))
    opt = Optimum(time_limit_s=0.05)
    p = opt.solve(inst)           # returns (no wall-clock assert: the suite must pass on a busy machine)
    info = opt.last_info
    assert info["optimal"] is False
    assert info["stage_bound_s"] <= info["stage_sum_s"]
    assert 0 < info["mip_gap"] <= 1
    inst.validate(p)
    # The incumbent is never worse than the closed form it falls back to.
    assert evaluate(inst, p).latency_s <= evaluate(inst, analytic_placement(inst)).latency_s + 1e-12


def test_eplb_balances_load_and_ignores_latency():
    inst = tiny_variant(0, capacity=2)
    p = EPLB().solve(inst)
    inst.validate(p)
    probs = inst.trace.probabilities()
    for layer in range(inst.n_layers):
        sats = p.experts[layer]
        assert len(np.unique(sats)) == 2                      # ceil(4 / 2) satellites, two experts each
        loads = [probs[layer][sats == s].sum() for s in np.unique(sats)]
        total = probs[layer].sum()
        assert max(loads) <= total / 2 + probs[layer].max()   # greedy LPT bound


def test_bad_solver_input(tiny):
    with pytest.raises(ScenarioError, match=r"solver = 'simplex': unknown solver"):
        baselines.get("simplex")
    bigger = dataclasses.replace(tiny.scenario.model, experts=6)
    # The one seat check runs when the scenario is built, so no solver sees a crowded instance.
    with pytest.raises(ScenarioError, match=r"placement.experts_per_satellite = 1: the smallest subnet has 5 "
                                            r"expert candidates, giving 5 seats for 6 experts"):
        dataclasses.replace(tiny.scenario, model=bigger)
    with pytest.raises(ScenarioError, match=r"time_limit_s = 0"):
        Optimum(time_limit_s=0)
    with pytest.raises(ScenarioError, match=r"brute force size"):
        BruteForce(max_placements=10).solve(tiny)


def test_steepest_descent_in_lockstep_lands_where_each_run_alone_does():
    """`solve_many` (instances descending together, scored on worker threads) gives each
    instance the placement of its own `solve`, bit for bit, and the descent beats brute force's
    start without beating brute force."""
    from xnet_gym.baselines.steepest_descent import SteepestDescent

    instances = [tiny_variant(seed=s, capacity=c) for s in range(4) for c in (1, 2)]
    alone = [SteepestDescent().solve(inst) for inst in instances]
    together = SteepestDescent().solve_many(instances, threads=2)
    for one, many, inst in zip(alone, together, instances):
        np.testing.assert_array_equal(one.experts, many.experts)
        best = evaluate(inst, BruteForce().solve(inst)).latency_s
        assert best <= evaluate(inst, many).latency_s <= evaluate(inst, analytic_placement(inst)).latency_s


def test_best_known_by_steepest_descent_is_each_instance_solved_alone():
    from xnet_gym.agents.evaluate import best_known_latencies, eval_seeds
    from xnet_gym.envs import scoring

    kwargs = {"scenario": "deepseek-esft-packed", "tokens": 128, "train_time_steps": 4}
    together, _ = best_known_latencies("xnet_gym/ExpertRefine-v0", kwargs, 4, 0, "steepest-descent", None)
    import gymnasium as gym
    env = gym.make("xnet_gym/ExpertRefine-v0", **kwargs)
    for s, latency in zip(eval_seeds(0, 4), together):
        env.reset(seed=s)
        problem = env.unwrapped.problem
        layer = int(problem.batch.layers[problem.first])
        alone = baselines.for_layer("steepest-descent", layer, 0, None).solve(problem.instance)
        assert scoring.objective_s(problem, alone) == latency
        assert latency < problem.reference_s


def test_steepest_descent_in_lockstep_refuses_a_layer_list_per_instance_that_does_not_fit():
    from xnet_gym.baselines.steepest_descent import SteepestDescent

    instances = [tiny_variant(seed=0), tiny_variant(seed=1)]
    with pytest.raises(ScenarioError, match=r"layers_each = \[\[0\]\]: must be one layer list \(or None\) per"):
        SteepestDescent().solve_many(instances, layers_each=[[0]])
    with pytest.raises(ScenarioError, match="threads = 0"):
        SteepestDescent().solve_many(instances, threads=0)
    with pytest.raises(ScenarioError, match="layers"):
        SteepestDescent().solve_many(instances, layers_each=[[0], [-1]])
