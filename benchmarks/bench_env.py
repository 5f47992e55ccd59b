"""Env step throughput (issue: envs). Run: python benchmarks/bench_env.py

Random-action steps per second through `gymnasium.make` (default wrappers included) for
ExpertPlacement-v0 on `paper` and CartPole-v1 in the same run, so the ratio is fair on a noisy
machine; resets are included in the count, as in training.
"""

from __future__ import annotations

import time

import gymnasium as gym

import xnet_gym  # noqa: F401


def steps_per_s(env, seconds=3.0):
    env.reset(seed=0)
    env.action_space.seed(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset()
    return n / (time.perf_counter() - t0)


def vec_steps_per_s(venv, seconds=3.0):
    venv.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            venv.step(venv.action_space.sample())
            n += venv.num_envs
    return n / (time.perf_counter() - t0)


def main():
    cart = steps_per_s(gym.make("CartPole-v1"))
    rows = [("CartPole-v1", cart)]
    for label, env_id, kw in [
        ("ExpertPlacement-v0 paper, all 200 time steps", "xnet_gym/ExpertPlacement-v0", {}),
        ("ExpertPlacement-v0 paper, train_time_steps=16", "xnet_gym/ExpertPlacement-v0", {"train_time_steps": 16}),
        ("ExpertPlacement-v0 deepseek-esft (real trace), tokens=512, train_time_steps=8",
         "xnet_gym/ExpertPlacement-v0", {"scenario": "deepseek-esft", "tokens": 512, "train_time_steps": 8}),
        ("ModelPlacement-v0 paper, all 200 time steps", "xnet_gym/ModelPlacement-v0", {}),
        ("ModelPlacement-v0 paper, train_time_steps=16", "xnet_gym/ModelPlacement-v0", {"train_time_steps": 16}),
    ]:
        rows.append((label, steps_per_s(gym.make(env_id, **{"scenario": "paper", **kw}))))
    for mode in ("sync", "async"):
        venv = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=8, vectorization_mode=mode,
                            scenario="paper", train_time_steps=16)
        rows.append((f"make_vec x8 ({mode}) ExpertPlacement-v0, train_time_steps=16", vec_steps_per_s(venv)))
        venv.close()
    print(f"{'env':<74}{'steps/s':>10}{'cost / CartPole step':>22}")
    for label, sps in rows:
        print(f"{label:<74}{sps:>10.0f}{cart / sps:>22.2f}")


if __name__ == "__main__":
    main()
