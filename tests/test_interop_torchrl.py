"""TorchRL drives both envs for a few hundred masked steps through `GymWrapper` and its
`ActionMask` transform, in the default dict layout and the flat one. Needs `interop`."""

import gymnasium as gym
import pytest

import xnet_gym  # noqa: F401  (registers the envs)

pytest.importorskip("torchrl")

from torchrl.envs import GymWrapper, TransformedEnv
from torchrl.envs.gym_like import default_info_dict_reader
from torchrl.envs.transforms import ActionMask
from torchrl.envs.utils import check_env_specs


@pytest.mark.parametrize("env_id", ["xnet_gym/ExpertPlacement-v0", "xnet_gym/ModelPlacement-v0"])
@pytest.mark.parametrize("layout", ["dict", "flat"])
def test_torchrl_masked_rollout(env_id, layout):
    # `weighted`: the closed form is optimal there, so no episode can score below it.
    base = gym.make(env_id, scenario="tiny", objective="weighted", obs_layout=layout)
    wrapped = GymWrapper(base, categorical_action_encoding=True)
    check_env_specs(TransformedEnv(wrapped, ActionMask()))
    wrapped.set_info_dict_reader(default_info_dict_reader(["invalid_action", "ratio_to_analytic"]))
    env = TransformedEnv(wrapped, ActionMask())
    env.set_seed(0)
    rollout = env.rollout(300, break_when_any_done=False)
    assert rollout.batch_size[0] == 300
    assert bool(rollout["action_mask"].gather(-1, rollout["action"][..., None]).all())
    assert not bool(rollout["next", "invalid_action"].any())
    done = rollout["next", "done"].squeeze(-1)
    ratios = rollout["next", "ratio_to_analytic"][done]
    assert int(done.sum()) >= 300 // base.unwrapped.generator.spec.n_experts // max(base.unwrapped.problem.n_rows, 1)
    assert bool((ratios >= 1.0 - 1e-6).all())


def test_torchrl_wraps_the_batched_env_under_same_step_autoreset():
    """What docs/interop.md tells TorchRL users: make the batched env with
    autoreset_mode="same_step", and GymWrapper takes it as it is."""
    venv = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=8, scenario="tiny",
                        vectorization_mode="vector_entry_point", autoreset_mode="same_step")
    env = TransformedEnv(GymWrapper(venv, categorical_action_encoding=True), ActionMask())
    env.set_seed(0)
    rollout = env.rollout(20, break_when_any_done=False)
    assert rollout.batch_size == (8, 20)
    assert bool(rollout["action_mask"].gather(-1, rollout["action"][..., None]).all())
    assert int(rollout["next", "done"].sum()) >= 8 * 4             # episodes of 4 steps, reset in place


def test_torchrl_drives_the_refinement_env_flat():
    base = gym.make("xnet_gym/ExpertRefine-v0", scenario="tiny", obs_layout="flat")
    env = TransformedEnv(GymWrapper(base, categorical_action_encoding=True), ActionMask())
    check_env_specs(env)
    env.set_seed(0)
    rollout = env.rollout(100, break_when_any_done=False)
    assert bool(rollout["action_mask"].gather(-1, rollout["action"][..., None]).all())
