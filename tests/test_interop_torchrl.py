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
