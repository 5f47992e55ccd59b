"""SB3 through the batched vector env (`BatchedVecEnv`, `xnet-gym train --vec batched`)."""

import json

import numpy as np
import pytest

from xnet_gym.agents.batched_vec_env import BatchedVecEnv
from xnet_gym.agents.evaluate import evaluate_player, make_player
from xnet_gym.agents.train import make_train_env, train
from xnet_gym.envs import ExpertPlacementVectorEnv
from xnet_gym.errors import XnetError

EXPERT = "xnet_gym/ExpertPlacement-v0"


def test_the_adapter_speaks_sb3s_vecenv_protocol():
    from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
    venv = make_train_env(EXPERT, {"scenario": "paper", "train_time_steps": 16}, "maskable_ppo", 6, seed=4,
                          vec="batched")
    assert is_masking_supported(venv)
    obs = venv.reset()
    assert set(obs) == set(venv.observation_space.spaces) and obs["action_mask"].shape == (6, 32)
    returns = np.zeros(6)
    for _t in range(8):
        masks = get_action_masks(venv)
        assert masks.shape == (6, 32) and np.array_equal(masks, obs["action_mask"] > 0)
        action = np.array(venv.env_method("analytic_action"))
        obs, reward, done, infos = venv.step(action)
        assert reward.dtype == np.float32
        returns += reward
    assert done.all()                                     # lockstep: all end on the 8th step
    # SB3 buffers float32 rewards (as its DummyVecEnv does): their sum is -1 within float32;
    # the exact score travels in the info.
    np.testing.assert_allclose(returns, -1.0, atol=1e-6)
    for info in infos:
        assert info["ratio_to_analytic"] == 1.0 and info["episode"]["l"] == 8
        assert info["episode"]["r"] == pytest.approx(-1.0, abs=1e-6)
        assert set(info["terminal_observation"]) == set(obs) and not info["TimeLimit.truncated"]
    assert obs["expert"][:, 2].max() == 0.0               # the next episodes' first observation
    with pytest.raises(AttributeError, match="answers action_masks, analytic_action"):
        venv.env_method("render")
    venv.close()


def test_same_seed_same_episodes_through_the_adapter():
    def first_obs(seed):
        venv = make_train_env(EXPERT, {"scenario": "tiny"}, "maskable_ppo", 4, seed=seed, vec="batched")
        obs = venv.reset()
        venv.close()
        return obs["candidate_cost"]
    assert np.array_equal(first_obs(3), first_obs(3)) and not np.array_equal(first_obs(3), first_obs(4))


def test_the_adapter_needs_same_step_autoreset_and_the_cli_checks_vec(tmp_path):
    with pytest.raises(XnetError, match="autoreset_mode = 'NextStep'"):
        BatchedVecEnv(ExpertPlacementVectorEnv(2, scenario="tiny"))
    with pytest.raises(XnetError, match="--vec = 'batched'"):
        train("xnet_gym/ModelPlacement-v0", "tiny", timesteps=10, out=tmp_path / "x",
              hyperparameters={"vec": "batched"})
    with pytest.raises(XnetError, match="--vec = 'batched'"):
        train(EXPERT, "tiny", algo="ppo", timesteps=10, out=tmp_path / "x", hyperparameters={"vec": "batched"})


def test_batched_training_learns_on_tiny(tmp_path):
    """The same cheap proof of learning as the DummyVecEnv path (test_agents), through the
    batched env: 2,048 MaskablePPO steps beat random clearly on 50 held-out instances; and
    an imitation warm start through it scores the closed form exactly."""
    hp = {"n_envs": 2, "n_steps": 256, "batch_size": 128, "n_epochs": 4, "vec": "batched"}
    out = train(EXPERT, "tiny", "maskable_ppo", 2048, seed=1, out=tmp_path / "rl", progress_bar=False,
                hyperparameters=hp)
    assert json.loads((out / "config.json").read_text())["hyperparameters"]["vec"] == "batched"
    learned = evaluate_player(make_player(str(out / "model.zip")), EXPERT, {"scenario": "tiny"}, 50, 0)
    random = evaluate_player(make_player("random"), EXPERT, {"scenario": "tiny"}, 50, 0)
    assert learned["geomean_ratio_to_analytic"] < random["geomean_ratio_to_analytic"] - 0.02
    out = train(EXPERT, "tiny", timesteps=0, out=tmp_path / "bc", imitate="analytic", imitation_steps=3000,
                progress_bar=False, hyperparameters={"vec": "batched", "n_envs": 16})
    row = evaluate_player(make_player(str(out / "model.zip")), EXPERT, {"scenario": "tiny"}, 40, seed=3)
    assert row["geomean_ratio_to_analytic"] <= 1.0 + 1e-9 and row["worst_ratio"] <= 1.0 + 1e-9
