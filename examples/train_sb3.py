"""Train and evaluate a masked PPO agent with Stable-Baselines3 from Python (no CLI).

    python examples/train_sb3.py [TIMESTEPS]

sb3-contrib's MaskablePPO with xnet-gym's candidate-wise pointer policy, on `tiny`, then
scored on held-out episodes against the closed form and a random policy.
"""

import sys

import gymnasium as gym
import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.env_util import make_vec_env

import xnet_gym  # noqa: F401  (registers the ids)
from xnet_gym.agents.policy import CandidateMaskablePolicy

ENV = "xnet_gym/ExpertPlacement-v0"


def geomean_ratio(env, act, seeds) -> float:
    """Geometric mean of latency / closed form over held-out episodes (reset seeds)."""
    ratios = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        done = False
        while not done:
            obs, _, done, _, info = env.step(act(env, obs))
        ratios.append(info["ratio_to_analytic"])
    return float(np.exp(np.mean(np.log(ratios))))


if __name__ == "__main__":
    timesteps = int(sys.argv[1]) if len(sys.argv) > 1 else 4096
    venv = make_vec_env(ENV, n_envs=2, seed=0, env_kwargs={"scenario": "tiny"})
    # gamma = 1: the reward contract is an undiscounted return.
    model = MaskablePPO(CandidateMaskablePolicy, venv, n_steps=256, batch_size=128, n_epochs=4, gamma=1.0,
                        seed=0, device="cpu")
    model.learn(total_timesteps=timesteps)

    env = gym.make(ENV, scenario="tiny")
    held_out = range(10_000, 10_050)                 # seeds never used in training
    rng = np.random.default_rng(0)

    def learned(env, obs):
        action, _ = model.predict(obs, deterministic=True, action_masks=env.unwrapped.action_masks())
        return int(action)

    print(f"learned geomean x analytic: {geomean_ratio(env, learned, held_out):.4f}")
    print(f"random  geomean x analytic: "
          f"{geomean_ratio(env, lambda e, o: int(rng.choice(np.flatnonzero(o['action_mask']))), held_out):.4f}")
    print(f"analytic geomean x analytic: "
          f"{geomean_ratio(env, lambda e, o: e.unwrapped.analytic_action(), held_out):.4f}")
