"""Train an SB3 policy on a placement env, with everything needed to reproduce the run.

The run folder holds `config.json` (every hyperparameter, the env kwargs, versions, wall
time), `model.zip`, `checkpoints/`, `tb/` (TensorBoard) and `training_curve.csv` (latency /
analytic of each finished training episode, by timestep).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import xnet_gym
from xnet_gym.atomic import atomic_write_text
from xnet_gym.errors import XnetError, field_error

from .players import ALGOS
from .policy import CandidateMaskablePolicy, CandidatePolicy
from .wrappers import CheapestFreeAction

# Undiscounted (gamma = 1): the return contract is the episode's -latency / analytic.
DEFAULT_HYPERPARAMETERS = {
    "n_envs": 8,
    "n_steps": 128,
    "batch_size": 256,
    "n_epochs": 5,
    "learning_rate": 3e-4,
    "gamma": 1.0,
    "gae_lambda": 0.95,
    "clip_range": 0.2,
    "ent_coef": 0.01,
    "vf_coef": 0.5,
    "max_grad_norm": 0.5,
    "hidden": 64,
}
# Episodes score on this many random time steps (of the scenario's), for faster steps;
# evaluation always uses every slot.
DEFAULT_TRAIN_TIME_STEPS = 16


class TrainingCurve(BaseCallback):
    """Records latency / analytic of every finished training episode; logs its running mean."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        self.rows: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            if "ratio_to_analytic" in info:
                self.rows.append((self.num_timesteps, float(info["ratio_to_analytic"])))
        if self.rows and self.n_calls % 50 == 0:
            self.logger.record("rollout/ratio_to_analytic", float(np.mean([r for _, r in self.rows[-200:]])))
        return True

    def _on_training_end(self) -> None:
        if not self.rows:
            return
        data = np.asarray(self.rows)
        # Parallel envs finish episodes at the same timestep: average those first.
        steps, inverse = np.unique(data[:, 0], return_inverse=True)
        ratio = np.bincount(inverse, weights=data[:, 1]) / np.bincount(inverse)
        window = min(50, len(steps))
        smooth = np.convolve(ratio, np.ones(window) / window, mode="valid")
        steps = steps[window - 1:]
        keep = np.unique(np.linspace(0, len(steps) - 1, min(400, len(steps))).astype(int))
        lines = ["timesteps,ratio_to_analytic"] + [f"{int(steps[i])},{smooth[i]:.6f}" for i in keep]
        atomic_write_text(self.path, "\n".join(lines) + "\n")


def _versions() -> dict:
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"xnet_gym": xnet_gym.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "gymnasium": gymnasium.__version__,
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def make_train_env(env_id: str, env_kwargs: dict, algo: str, n_envs: int, seed: int):
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, vec_env_cls=DummyVecEnv,
                        wrapper_class=CheapestFreeAction if algo == "ppo" else None)


def train(env_id: str, scenario: str, algo: str = "maskable_ppo", timesteps: int = 100_000, seed: int = 0,
          out="runs/default", env_kwargs: dict | None = None, resume: bool = False,
          progress_bar: bool = True, hyperparameters: dict | None = None, verbose: int = 0) -> Path:
    if algo not in ALGOS:
        raise field_error(XnetError, "--algo", algo, f"allowed: {', '.join(ALGOS)}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps <= 0:
        raise field_error(XnetError, "--timesteps", timesteps, "must be an integer > 0")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    hp = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    import gymnasium as gym

    from xnet_gym.scenario import load_scenario

    kwargs = {"scenario": scenario, **(env_kwargs or {})}
    if kwargs.get("train_time_steps") is None:
        kwargs["train_time_steps"] = min(DEFAULT_TRAIN_TIME_STEPS, load_scenario(scenario).evaluation.time_steps)

    gym.make(env_id, **kwargs).close()   # bad env kwargs fail here, before any worker starts
    venv = make_train_env(env_id, kwargs, algo, hp["n_envs"], seed)
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO as cls
        policy = CandidateMaskablePolicy
    else:
        from stable_baselines3 import PPO as cls
        policy = CandidatePolicy
    model_path = out / "model.zip"
    checkpoints = out / "checkpoints"
    start = None
    if resume:
        found = sorted(checkpoints.glob("*.zip"), key=lambda p: p.stat().st_mtime)
        start = model_path if model_path.is_file() else (found[-1] if found else None)
        if start is None:
            raise field_error(XnetError, "--resume", str(out), "holds no model.zip or checkpoint to resume from")
    if start is not None:
        model = cls.load(start, env=venv, device="cpu", tensorboard_log=str(out / "tb"))
    else:
        algo_kwargs = {k: hp[k] for k in ("n_steps", "batch_size", "n_epochs", "learning_rate", "gamma",
                                         "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm")}
        model = cls(policy, venv, seed=seed, device="cpu", verbose=verbose, tensorboard_log=str(out / "tb"),
                    policy_kwargs={"features_extractor_kwargs": {"hidden": hp["hidden"]}}, **algo_kwargs)
    curve = TrainingCurve(out / "training_curve.csv")
    every = max(timesteps // 5 // hp["n_envs"], 1)
    callbacks = CallbackList([curve, CheckpointCallback(every, str(checkpoints), name_prefix="model")])
    t0 = time.perf_counter()
    model.learn(total_timesteps=timesteps, callback=callbacks, progress_bar=progress_bar,
                reset_num_timesteps=start is None, tb_log_name="run")
    wall = time.perf_counter() - t0
    model.save(model_path)
    config = {"env": env_id, "env_kwargs": kwargs, "algo": algo, "seed": seed, "timesteps": timesteps,
              "total_timesteps": int(model.num_timesteps), "resumed_from": str(start) if start else None,
              "hyperparameters": hp, "policy": policy.__name__, "wall_time_s": wall,
              "wall_time_per_100k_steps_s": wall / timesteps * 100_000, "versions": _versions()}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    venv.close()
    return out
