import json

import pytest

from xnet_gym.agents.evaluate import evaluate_player, make_player
from xnet_gym.agents.train import train
from xnet_gym.cli import main
from xnet_gym.errors import XnetError

EXPERT = "xnet_gym/ExpertPlacement-v0"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(EXPERT, "tiny", "maskable_ppo", 2048, seed=0, out=out, progress_bar=False,
          hyperparameters={"n_envs": 2, "n_steps": 256, "batch_size": 128, "n_epochs": 2})
    return out


def test_a_few_thousand_steps_beat_random_on_tiny(tmp_path):
    """Cheap proof of learning (about 3 s): 2,048 MaskablePPO steps on `tiny` place clearly
    better than the uniform random policy on the same 50 held-out instances."""
    out = train(EXPERT, "tiny", "maskable_ppo", 2048, seed=1, out=tmp_path, progress_bar=False,
                hyperparameters={"n_envs": 2, "n_steps": 256, "batch_size": 128, "n_epochs": 4})
    learned = evaluate_player(make_player(str(out / "model.zip")), EXPERT, {"scenario": "tiny"}, 50, 0)
    random = evaluate_player(make_player("random"), EXPERT, {"scenario": "tiny"}, 50, 0)
    assert learned["geomean_ratio_to_analytic"] < random["geomean_ratio_to_analytic"] - 0.02


@pytest.mark.slow
def test_train_saves_model_config_curve_and_checkpoints(tiny_run):
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["algo"] == "maskable_ppo" and cfg["total_timesteps"] >= 2048
    assert cfg["hyperparameters"]["gamma"] == 1.0 and cfg["env_kwargs"]["scenario"] == "tiny"
    assert (tiny_run / "model.zip").is_file()
    assert list((tiny_run / "checkpoints").glob("*.zip"))
    lines = (tiny_run / "training_curve.csv").read_text().splitlines()
    assert lines[0] == "timesteps,ratio_to_analytic" and len(lines) > 2


@pytest.mark.slow
def test_evaluate_cli_on_trained_model(tiny_run, capsys):
    assert main(["evaluate", "--policy", str(tiny_run / "model.zip"), "--scenario", "tiny", "--episodes", "5",
                 "--objective", "weighted", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["policy"] == "learned" and res["episodes"] == 5
    # Sort-match is optimal under `weighted`: no placement, learned or not, scores below 1.
    assert res["geomean_ratio_to_analytic"] >= 1.0 - 1e-12
    assert res["best_ratio"] >= 1.0 - 1e-12 and res["win_rate_vs_analytic"] == 0.0
    assert res["mean_latency_s"] >= res["mean_analytic_latency_s"] > 0


def test_analytic_through_cli_is_exactly_one(capsys):
    assert main(["evaluate", "--policy", "analytic", "--scenario", "paper", "--episodes", "4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["geomean_ratio_to_analytic"] == 1.0
    assert res["win_rate_vs_analytic"] == 0.0


def test_baselines_scored_on_the_same_instances():
    kw = {"scenario": "paper", "objective": "weighted"}
    rows = {p: evaluate_player(make_player(p), EXPERT, kw, 6, 1) for p in ("space-xnet", "randintra-cg", "randplace")}
    assert rows["space-xnet"]["geomean_ratio_to_analytic"] == pytest.approx(1.0, abs=1e-12)
    assert rows["randintra-cg"]["best_ratio"] > 1.0        # sort-match is optimal under weighted
    assert rows["randplace"]["geomean_ratio_to_analytic"] > rows["randintra-cg"]["geomean_ratio_to_analytic"]


@pytest.mark.slow
def test_resume_continues_the_count(tiny_run):
    train(EXPERT, "tiny", "maskable_ppo", 512, seed=0, out=tiny_run, resume=True, progress_bar=False,
          hyperparameters={"n_envs": 2, "n_steps": 256, "batch_size": 128, "n_epochs": 1})
    cfg = json.loads((tiny_run / "config.json").read_text())
    assert cfg["total_timesteps"] >= 2048 + 512
    assert cfg["resumed_from"].endswith("model.zip")


@pytest.mark.slow
def test_plain_ppo_with_cheapest_free_wrapper(tmp_path):
    out = train(EXPERT, "tiny", "ppo", 512, out=tmp_path, progress_bar=False,
                hyperparameters={"n_envs": 2, "n_steps": 128, "batch_size": 128, "n_epochs": 1})
    res = evaluate_player(make_player(str(out / "model.zip")), EXPERT, {"scenario": "tiny"}, 3, 0)
    assert res["episodes"] == 3 and res["mean_latency_s"] > 0


@pytest.mark.parametrize("scenario", ["paper", "deepseek-esft-packed"])
def test_cheapest_free_wrapper_action_zero_is_the_closed_form(scenario):
    """With the most active expert first, "always the cheapest free seat" is sort-match: the
    wrapper must map action 0 to it and permute the observation the same way."""
    import gymnasium as gym
    import numpy as np

    from xnet_gym.agents.wrappers import CheapestFreeAction

    kw = {"time_steps": 6, "tokens": 300} if scenario != "paper" else {}
    env = CheapestFreeAction(gym.make(EXPERT, scenario=scenario, expert_order="frequency", objective="weighted",
                                      train_time_steps=4, **kw))
    for seed in range(3):
        obs, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            free = obs["action_mask"] > 0
            n_free = int(free.sum())
            assert free[:n_free].all() and not free[n_free:].any()
            assert np.all(np.diff(obs["candidate_cost"][:n_free]) >= 0)
            obs, r, done, _, info = env.step(0)
            total += r
        assert info["invalid_actions"] == 0
        assert total == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.slow
def test_bad_agent_input(tiny_run, tmp_path, capsys):
    with pytest.raises(XnetError, match=r"--policy = '.*missing.zip': no such model file"):
        make_player(str(tmp_path / "missing.zip"))
    # Another shape of the same env: the pointer policy is rebuilt with the same weights.
    row = evaluate_player(make_player(str(tiny_run / "model.zip")), EXPERT, {"scenario": "paper"}, 1, 0)
    assert row["episodes"] == 1 and row["geomean_ratio_to_analytic"] >= 1.0 - 1e-9
    # Another env (other observation keys) cannot be played.
    with pytest.raises(XnetError, match=r"trained on another env or observation shape"):
        evaluate_player(make_player(str(tiny_run / "model.zip")), "xnet_gym/ExpertRefine-v0", {"scenario": "tiny"},
                        1, 0)
    with pytest.raises(XnetError, match=r"--algo = 'dqn': allowed: maskable_ppo, ppo"):
        train(EXPERT, "tiny", "dqn", 10, out=tmp_path)
    with pytest.raises(XnetError, match=r"--timesteps = 0: must be > 0 without --imitate"):
        train(EXPERT, "tiny", "maskable_ppo", 0, out=tmp_path)
    with pytest.raises(XnetError, match=r"--timesteps = -1: must be an integer >= 0"):
        train(EXPERT, "tiny", "maskable_ppo", -1, out=tmp_path)
    with pytest.raises(XnetError, match=r"--policy = 'greediest'"):
        make_player("greediest")
    with pytest.raises(XnetError, match=r"--policy = 'greedy': plays xnet_gym/ExpertRefine-v0"):
        evaluate_player(make_player("greedy"), EXPERT, {"scenario": "tiny"}, 1, 0)
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    with pytest.raises(XnetError, match=r"could not be loaded as maskable_ppo"):
        make_player(str(junk))
    assert main(["evaluate", "--policy", str(tmp_path / "absent.zip"), "--episodes", "1"]) == 2
    assert "no such model file" in capsys.readouterr().err


@pytest.mark.slow
def test_main_job_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--scenario", "tiny", "--timesteps", "256", "--episodes", "3", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    for name in ("learned", "analytic", "RandIntra-CG", "RandIntra", "RandPlace", "random"):
        assert f"\n{name} " in text
    assert (out / "comparison.csv").is_file() and (out / "comparison.png").is_file()
    assert (out / "model.zip").is_file() and (out / "config.json").is_file()
