"""Plain Gymnasium: a random policy and the closed form on ExpertPlacement-v0.

    python examples/random_and_analytic.py [SCENARIO]

The return of every episode is -latency / latency(closed form) of that episode, so the
closed form's return is exactly -1.0 and a random policy's is below it.
"""

import sys

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401  (registers the ids)


def play(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        obs, reward, done, _, info = env.step(policy(env, obs))
        total += reward
    return total, info


def random_policy(rng):
    return lambda env, obs: int(rng.choice(np.flatnonzero(obs["action_mask"])))


def analytic_policy(env, obs):
    return env.unwrapped.analytic_action()


if __name__ == "__main__":
    scenario = sys.argv[1] if len(sys.argv) > 1 else "tiny"
    env = gym.make("xnet_gym/ExpertPlacement-v0", scenario=scenario)
    rng = np.random.default_rng(0)
    for seed in range(3):
        ret, info = play(env, analytic_policy, seed)
        print(f"episode {seed}: analytic return {ret!r}, stage latency {info['latency_s']:.6f} s")
        ret, info = play(env, random_policy(rng), seed)
        print(f"episode {seed}: random   return {ret:.6f} = -ratio {-info['ratio_to_analytic']:.6f}, "
              f"stage latency {info['latency_s']:.6f} s")
