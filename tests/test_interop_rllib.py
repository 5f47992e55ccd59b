"""RLlib (new API stack) trains PPO on the env through RLlib's own action-masking RLModule and
the `obs_layout="flat"` convention ({"observations", "action_mask"}).

`ray[rllib]` pins an older Gymnasium than the main test environment, so `.ci/run` runs this
file in a virtual environment of its own (`pip install -e ".[rllib,test]"`); elsewhere it is
skipped.
"""

import gymnasium as gym
import numpy as np
import pytest

import xnet_gym  # noqa: F401  (registers the envs)

pytest.importorskip("ray.rllib")

from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.examples.rl_modules.classes.action_masking_rlm import ActionMaskingTorchRLModule
from ray.tune.registry import register_env


class RefuseInvalid(gym.Wrapper):
    """Fails the run if any action RLlib sends is masked out: masking must hold in sampling."""

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if info["invalid_action"]:
            raise AssertionError(f"RLlib sent a masked-out action {action}")
        return obs, reward, terminated, truncated, info


def make_env(config):
    return RefuseInvalid(gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny", obs_layout="flat"))


@pytest.fixture(scope="module")
def ray_local():
    import ray
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_rllib_ppo_trains_one_iteration_masked(ray_local):
    register_env("xnet-tiny-flat", make_env)
    config = (PPOConfig()
              .environment("xnet-tiny-flat")
              .env_runners(num_env_runners=0, rollout_fragment_length=100)
              .training(train_batch_size_per_learner=200, minibatch_size=50, num_epochs=2, lr=1e-3)
              .rl_module(rl_module_spec=RLModuleSpec(module_class=ActionMaskingTorchRLModule,
                                                     model_config={"head_fcnet_hiddens": [32]}))
              .debugging(seed=0))
    algo = config.build_algo()
    try:
        result = algo.train()
    finally:
        algo.stop()
    episode_return = result["env_runners"]["episode_return_mean"]
    assert np.isfinite(episode_return) and -5.0 < episode_return < 0.0
    assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 200
