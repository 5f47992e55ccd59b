"""SB3 training throughput through DummyVecEnv and through the batched env, in one run.

    python benchmarks/bench_training.py [--timesteps 24576] [--rounds 2]

MaskablePPO with the project's defaults (n_steps 128, batch 256, 5 epochs) on `paper`
(`train_time_steps=16`), for 8 and 64 envs, each path trained `--timesteps` steps per round;
rounds are interleaved and each row keeps its best, as in bench_env.py (a noisy machine costs
every row alike). Reported: timesteps per second of the whole `learn` (rollouts and updates),
and of the rollouts alone (SB3's `collect_rollouts`: env steps plus policy inference).
"""

from __future__ import annotations

import argparse
import time

from sb3_contrib import MaskablePPO

from xnet_gym.agents.policy import CandidateMaskablePolicy
from xnet_gym.agents.train import DEFAULT_HYPERPARAMETERS, make_train_env

ENV = "xnet_gym/ExpertPlacement-v0"
KWARGS = {"scenario": "paper", "train_time_steps": 16}


def measure(vec: str, n_envs: int, timesteps: int) -> tuple[float, float]:
    venv = make_train_env(ENV, KWARGS, "maskable_ppo", n_envs, seed=0, vec=vec)
    hp = DEFAULT_HYPERPARAMETERS
    model = MaskablePPO(CandidateMaskablePolicy, venv, seed=0, device="cpu", n_steps=hp["n_steps"],
                        batch_size=hp["batch_size"], n_epochs=hp["n_epochs"], gamma=hp["gamma"],
                        policy_kwargs={"features_extractor_kwargs": {"hidden": hp["hidden"]}})
    rollout_s = 0.0
    collect = model.collect_rollouts

    def timed(*args, **kwargs):
        nonlocal rollout_s
        t = time.perf_counter()
        try:
            return collect(*args, **kwargs)
        finally:
            rollout_s += time.perf_counter() - t

    model.collect_rollouts = timed
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps)
    wall = time.perf_counter() - t0
    steps = model.num_timesteps
    venv.close()
    return steps / wall, steps / rollout_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=24_576)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = [(vec, n) for n in (8, 64) for vec in ("dummy", "batched")]
    best = dict.fromkeys(rows, (0.0, 0.0))
    for _ in range(args.rounds):
        for vec, n in rows:
            learn, rollout = measure(vec, n, args.timesteps)
            best[vec, n] = (max(best[vec, n][0], learn), max(best[vec, n][1], rollout))
    print(f"MaskablePPO on paper (train_time_steps=16), {args.timesteps} timesteps per run, best of {args.rounds}")
    print(f"{'envs':<34}{'learn steps/s':>15}{'rollout steps/s':>17}")
    for (vec, n), (learn, rollout) in best.items():
        label = f"{n} x {'DummyVecEnv' if vec == 'dummy' else 'batched (BatchedVecEnv)'}"
        print(f"{label:<34}{learn:>15.0f}{rollout:>17.0f}")


if __name__ == "__main__":
    main()
