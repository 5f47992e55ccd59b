"""Agents that start from the closed form: imitation warm starts, the refinement agent, and
evaluation against a best-known search. Each test asserts what was learned, on held-out
instances, not a shape."""

import json

import gymnasium as gym
import numpy as np
import pytest

from xnet_gym.agents.evaluate import evaluate_player, make_player
from xnet_gym.agents.imitation import collect_demonstrations
from xnet_gym.agents.train import make_train_env, train
from xnet_gym.cli import main
from xnet_gym.errors import XnetError

EXPERT = "xnet_gym/ExpertPlacement-v0"
REFINE = "xnet_gym/ExpertRefine-v0"


@pytest.mark.parametrize("encoder", ["mlp", "attention"])
def test_imitation_reproduces_the_closed_form_on_held_out_instances(tmp_path, encoder):
    out = train(EXPERT, "tiny", timesteps=0, out=tmp_path / "bc", imitate="analytic", imitation_steps=3000,
                progress_bar=False, hyperparameters={"encoder": encoder})
    config = json.loads((out / "config.json").read_text())
    assert config["imitation"]["expert"] == "analytic" and config["imitation"]["agreement"] > 0.99
    row = evaluate_player(make_player(str(out / "model.zip")), EXPERT, {"scenario": "tiny"}, 40, seed=3)
    assert row["geomean_ratio_to_analytic"] <= 1.0 + 1e-9
    assert row["worst_ratio"] <= 1.0 + 1e-9


def test_value_targets_are_the_closed_forms_returns_to_go():
    venv = make_train_env(EXPERT, {"scenario": "tiny", "objective": "weighted"}, "maskable_ppo", 2, seed=0)
    demos = collect_demonstrations(venv, 40)
    known = demos["value_known"].astype(bool)
    # Under `weighted` the closed form is optimal: each episode's return-to-go at its first
    # step is exactly -1 (the reward contract), and the steps of one expert each count once.
    first = known & (demos["obs"]["expert"][:, 2] == 0.0)          # progress 0: an episode's first step
    assert first.sum() >= 4
    np.testing.assert_allclose(demos["returns"][first], -1.0, atol=1e-12)
    assert demos["actions"].shape == (40,) and demos["masks"].shape == (40, 5)
    venv.close()


def test_behaviour_cloning_rejects_other_experts_and_algorithms(tmp_path):
    with pytest.raises(XnetError, match="--imitate = 'anneal': allowed: analytic, greedy"):
        train(EXPERT, "tiny", timesteps=0, out=tmp_path / "x", imitate="anneal")
    with pytest.raises(XnetError, match="needs --algo maskable_ppo"):
        train(EXPERT, "tiny", algo="ppo", timesteps=0, out=tmp_path / "x", imitate="analytic")
    with pytest.raises(XnetError, match="must be > 0 without --imitate"):
        train(EXPERT, "tiny", timesteps=0, out=tmp_path / "x")
    with pytest.raises(XnetError, match="--imitate = 'analytic': on xnet_gym/ExpertRefine-v0, allowed: greedy"):
        train(REFINE, "tiny", timesteps=10, out=tmp_path / "x", imitate="analytic")
    with pytest.raises(XnetError, match="--imitate = 'greedy': on xnet_gym/ExpertPlacement-v0, allowed: analytic"):
        train(EXPERT, "tiny", timesteps=10, out=tmp_path / "x", imitate="greedy")
    with pytest.raises(XnetError, match="--algo = 'ppo': xnet_gym/ExpertRefine-v0 trains with maskable_ppo"):
        train(REFINE, "tiny", algo="ppo", timesteps=10, out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_refinement_agent_never_ends_worse_than_its_start_and_learns(tmp_path):
    out = train(REFINE, "tiny", timesteps=4096, out=tmp_path / "refine", progress_bar=False,
                env_kwargs={"max_moves": 8})
    env = gym.make(REFINE, scenario="tiny", max_moves=8)
    player = make_player(str(out / "model.zip"))
    player.check(env)
    returns = []
    for i in range(30):
        obs, _ = env.reset(seed=10**9 + i)
        total, done = 0.0, False
        while not done:
            obs, reward, done, _, info = env.step(player.act(env, obs))
            total += reward
        returns.append(total)
        assert total == pytest.approx(1.0 - info["ratio_to_analytic"], abs=1e-12)
    assert np.mean(returns) >= 0.0
    learned = evaluate_player(player, REFINE, {"scenario": "tiny", "max_moves": 8}, 30, seed=0)
    rand = evaluate_player(make_player("random"), REFINE, {"scenario": "tiny", "max_moves": 8}, 30, seed=0)
    assert learned["geomean_ratio_to_analytic"] < rand["geomean_ratio_to_analytic"] < 1.0


def test_greedy_imitation_with_gain_observation_plays_steepest_descent(tmp_path):
    """A refinement agent that imitates steepest descent, seeing each action's exact gain,
    scores what steepest descent scores on held-out instances, and beats the closed form."""
    kwargs = {"scenario": "tiny", "gain_observation": True}
    out = train(REFINE, "tiny", timesteps=0, out=tmp_path / "greedy", imitate="greedy", imitation_steps=3000,
                progress_bar=False, env_kwargs={"gain_observation": True})
    config = json.loads((out / "config.json").read_text())
    assert config["imitation"]["expert"] == "greedy" and config["imitation"]["agreement"] > 0.99
    learned = evaluate_player(make_player(str(out / "model.zip")), REFINE, kwargs, 40, seed=3)
    greedy = evaluate_player(make_player("greedy"), REFINE, kwargs, 40, seed=3)
    assert greedy["geomean_ratio_to_analytic"] < 0.999          # tiny has headroom for steepest descent
    assert learned["geomean_ratio_to_analytic"] == pytest.approx(greedy["geomean_ratio_to_analytic"], abs=1e-9)
    assert learned["worst_ratio"] <= 1.0
    with pytest.raises(XnetError, match="trained with --gain-observation: evaluate it the same way"):
        evaluate_player(make_player(str(out / "model.zip")), REFINE, {"scenario": "tiny"}, 1, seed=3)


def test_gain_observation_is_refused_on_the_constructive_env(capsys):
    assert main(["evaluate", "--scenario", "tiny", "--gain-observation", "--policy", "analytic"]) == 2
    err = capsys.readouterr().err
    assert "--gain-observation" in err and "is an option of ExpertRefine-v0 and ExpertReplace-v0" in err


def test_evaluate_reports_the_ratio_to_a_best_known_search(capsys):
    assert main(["evaluate", "--scenario", "tiny", "--policy", "analytic", "random", "--best-known", "anneal",
                 "--budget", "0.2", "--episodes", "10", "--json"]) == 0
    rows = {r["policy"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    assert set(rows) == {"analytic", "random", "anneal"}
    assert rows["anneal"]["geomean_ratio_to_best_known"] == pytest.approx(1.0, abs=1e-12)
    assert rows["analytic"]["geomean_ratio_to_best_known"] >= 1.0
    assert rows["random"]["geomean_ratio_to_best_known"] > rows["analytic"]["geomean_ratio_to_best_known"]
    assert all(r["inference_s_per_instance"] > 0 for r in rows.values())


def test_show_placement_plays_a_trained_model(tmp_path):
    pytest.importorskip("matplotlib")
    from xnet_gym.agents.players import play_on_instance
    from xnet_gym.analytic import analytic_placement
    from xnet_gym.instance import build_instance

    out = train(EXPERT, "tiny", timesteps=0, out=tmp_path / "bc", imitate="analytic", imitation_steps=2000,
                progress_bar=False)
    inst = build_instance("tiny")
    learned = play_on_instance(str(out / "model.zip"), inst, layer=1)
    # A clone of the closed form places layer 1 as the closed form does (the rest is its too).
    np.testing.assert_array_equal(learned.experts, analytic_placement(inst).experts)
    png = tmp_path / "p.png"
    assert main(["show", "placement", "--scenario", "tiny", "--layer", "1", "--policy", str(out / "model.zip"),
                 "--against", "analytic", "--out", str(png)]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_records_imitation_and_hyperparameters(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--scenario", "tiny", "--timesteps", "0", "--imitate", "analytic", "--imitation-steps",
                 "400", "--encoder", "attention", "--ent-coef", "0.001", "--learning-rate", "1e-4",
                 "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["hyperparameters"]["encoder"] == "attention"
    assert config["hyperparameters"]["ent_coef"] == 0.001 and config["hyperparameters"]["learning_rate"] == 1e-4
    assert config["imitation"]["steps"] == 400 and config["total_timesteps"] == 0


def test_a_solver_scores_the_same_through_both_envs():
    """On the refinement env a solver walks to its placement; on the constructive env it is
    played expert by expert: the same held-out instances, the same scores."""
    kw = {"scenario": "tiny"}
    walked = evaluate_player(make_player("local-search"), REFINE, {**kw, "max_moves": 16}, 20, seed=0)
    built = evaluate_player(make_player("local-search"), EXPERT, kw, 20, seed=0)
    assert walked["ratios"] == pytest.approx(built["ratios"], abs=1e-12)
    assert walked["geomean_ratio_to_analytic"] < 1.0
