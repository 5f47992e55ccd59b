"""Env step throughput. Run: python benchmarks/bench_env.py

Random-action steps per second through `gymnasium.make` (default wrappers included) for
ExpertPlacement-v0 on `paper` and CartPole-v1 in the same run; resets are included in the
count, as in training. These machines are noisy: every row is measured in ROUNDS short
windows, interleaved with the other rows, and keeps its best window, so a burst of load
elsewhere on the machine costs every row alike and the ratios stay comparable.
"""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

import xnet_gym  # noqa: F401

ROUNDS = 5
WINDOW_S = 1.0


def steps_per_s(env, seconds=WINDOW_S):
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


def valid_steps_per_s(env, seconds=WINDOW_S):
    """Random *valid* actions read from obs["action_mask"] (ExpertRefine's action space is
    mostly invalid moves, which cost nothing: a plain sample would flatter it)."""
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(100):
            valid = np.flatnonzero(obs["action_mask"][:-1])      # not the stop action
            obs, _, term, trunc, _ = env.step(int(valid[rng.integers(len(valid))]))
            n += 1
            if term or trunc:
                obs, _ = env.reset()
    return n / (time.perf_counter() - t0)


def vec_steps_per_s(venv, seconds=WINDOW_S):
    venv.reset(seed=0)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            venv.step(venv.action_space.sample())
            n += venv.num_envs
    return n / (time.perf_counter() - t0)


def batched_steps_per_s(venv, seconds=WINDOW_S):
    """The batched env: random actions (a fixed pool, so drawing them is not what is timed;
    invalid ones cost the env a fallback, as in the single-env rows), autoreset steps
    included in the count as `make_vec` counts them."""
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    pool = [rng.integers(venv.single_action_space.n, size=venv.num_envs) for _ in range(16)]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for actions in pool:
            venv.step(actions)
            n += venv.num_envs
    return n / (time.perf_counter() - t0)


def batched_rows() -> list:
    rows = []
    for label, kw, sizes in [("paper, train_time_steps=16", {"scenario": "paper", "train_time_steps": 16},
                              (64, 1024, 8192)),
                             ("deepseek-esft, tokens=512, train_time_steps=8",
                              {"scenario": "deepseek-esft", "tokens": 512, "train_time_steps": 8}, (64, 1024, 8192))]:
        for n in sizes:
            venv = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=n, vectorization_mode="vector_entry_point",
                                **kw)
            rows.append((f"batched x{n} (vector_entry_point) ExpertPlacement-v0 {label}", venv, batched_steps_per_s))
    return rows


def main():
    envs = [("CartPole-v1", gym.make("CartPole-v1"), steps_per_s)]
    for label, env_id, kw in [
        ("ExpertPlacement-v0 paper, all 200 time steps", "xnet_gym/ExpertPlacement-v0", {}),
        ("ExpertPlacement-v0 paper, train_time_steps=16", "xnet_gym/ExpertPlacement-v0", {"train_time_steps": 16}),
        ("ExpertPlacement-v0 deepseek-esft (real trace), tokens=512, train_time_steps=8",
         "xnet_gym/ExpertPlacement-v0", {"scenario": "deepseek-esft", "tokens": 512, "train_time_steps": 8}),
        ("ModelPlacement-v0 paper, all 200 time steps", "xnet_gym/ModelPlacement-v0", {}),
        ("ModelPlacement-v0 paper, train_time_steps=16", "xnet_gym/ModelPlacement-v0", {"train_time_steps": 16}),
    ]:
        envs.append((label, gym.make(env_id, **{"scenario": "paper", **kw}), steps_per_s))
    for label, kw in [
        ("ExpertRefine-v0 paper, train_time_steps=16 (valid random actions)", {"train_time_steps": 16}),
        ("ExpertRefine-v0 deepseek-esft-packed, tokens=512, train_time_steps=8 (valid random actions)",
         {"scenario": "deepseek-esft-packed", "tokens": 512, "train_time_steps": 8}),
    ]:
        envs.append((label, gym.make("xnet_gym/ExpertRefine-v0", **{"scenario": "paper", **kw}), valid_steps_per_s))
    for mode in ("sync", "async"):
        venv = gym.make_vec("xnet_gym/ExpertPlacement-v0", num_envs=8, vectorization_mode=mode,
                            scenario="paper", train_time_steps=16)
        envs.append((f"make_vec x8 ({mode}) ExpertPlacement-v0, train_time_steps=16", venv, vec_steps_per_s))
    envs += batched_rows()
    best = {label: 0.0 for label, _, _ in envs}
    for _ in range(ROUNDS):
        for label, env, measure in envs:
            best[label] = max(best[label], measure(env))
    for _, env, _ in envs:
        env.close()
    cart = best["CartPole-v1"]
    print(f"best of {ROUNDS} interleaved windows of {WINDOW_S:g} s per row")
    sync = best["make_vec x8 (sync) ExpertPlacement-v0, train_time_steps=16"]
    print(f"{'env':<104}{'steps/s':>11}{'cost / CartPole step':>22}{'x make_vec sync':>17}")
    for label, sps in best.items():
        print(f"{label:<104}{sps:>11.0f}{cart / sps:>22.2f}{sps / sync:>17.1f}")


if __name__ == "__main__":
    main()
