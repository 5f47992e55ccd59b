"""Use the env from TorchRL: `GymWrapper` plus the `ActionMask` transform, no glue code.

    pip install torchrl          # or the project's `interop` extra
    python examples/torchrl_rollout.py

TorchRL reads the Dict observation as a composite spec, and `ActionMask` applies
`obs["action_mask"]` to the action spec, so random rollouts draw only valid actions. A
closed-form policy written as a TensorDict callable scores -1.0 per episode (TorchRL stores
rewards as float32, so the sum is -1.0 to float32 precision).
"""

import gymnasium as gym
import torch
from torchrl.envs import GymWrapper, TransformedEnv
from torchrl.envs.transforms import ActionMask
from torchrl.envs.utils import check_env_specs

import xnet_gym  # noqa: F401  (registers the ids)

if __name__ == "__main__":
    base = gym.make("xnet_gym/ExpertPlacement-v0", scenario="tiny")
    env = TransformedEnv(GymWrapper(base, categorical_action_encoding=True), ActionMask())
    check_env_specs(env)
    env.set_seed(0)

    episodes = 5
    steps = episodes * base.unwrapped.generator.spec.n_experts
    random = env.rollout(steps, break_when_any_done=False)
    assert bool(random["action_mask"].gather(-1, random["action"][..., None]).all())   # only valid actions
    print(f"random rollout: {episodes} episodes, mean return {random['next', 'reward'].sum().item() / episodes:.4f}")

    def closed_form(td):
        td["action"] = torch.tensor(base.unwrapped.analytic_action())
        return td

    analytic = env.rollout(steps, policy=closed_form, break_when_any_done=False)
    per_episode = analytic["next", "reward"].reshape(episodes, -1).sum(-1)
    print(f"closed form: returns per episode {[round(float(r), 6) for r in per_episode]}")
