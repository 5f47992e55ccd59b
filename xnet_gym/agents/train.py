"""Train an SB3 policy on a placement env, with everything needed to reproduce the run.

The run folder holds `config.json` (every hyperparameter, the env kwargs, versions, wall
time), `model.zip`, `checkpoints/`, `tb/` (TensorBoard) and `training_curve.csv` (latency /
analytic of each finished training episode, by timestep, appended as training goes).

Interruptions: every save is atomic (written beside, renamed over); Ctrl-C saves the model,
the config (`"interrupted": true`) and the curve; `--resume` continues from the newest
intact save, skips truncated ones with a warning, extends the same curve, and refuses a run
folder made with another env, algorithm or env kwargs. Output paths are checked before any
work starts, and a run that fails leaves no empty folder behind.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import xnet_gym
from xnet_gym.atomic import atomic_write_text, output_path_problem
from xnet_gym.envs.capabilities import capabilities
from xnet_gym.errors import XnetError, field_error

from .players import ALGOS
from .policy import CandidateMaskablePolicy, CandidatePolicy
from .settings import VEC_KINDS
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
    "encoder": "mlp",           # the ExpertPlacement policy's candidate encoder: "mlp" or "attention"
    "vec": "dummy",             # "dummy": SB3's DummyVecEnv of single envs; "batched": the batched vector env
}
# Episodes score on this many random time steps (of the scenario's), for faster steps;
# evaluation always uses every slot.
DEFAULT_TRAIN_TIME_STEPS = 16


class TrainingCurve(BaseCallback):
    """Appends latency / analytic of every finished training episode to the run's
    `training_curve.csv` as training goes (flushed every `flush_every` episodes and at the
    end), so a killed run keeps its curve and a resumed run extends the same file. Logs the
    running mean to TensorBoard."""

    def __init__(self, path: Path, flush_every: int = 500):
        super().__init__()
        self.path = path
        self.flush_every = flush_every
        self.pending: list[str] = []
        self.recent: list[float] = []

    def _on_step(self) -> bool:
        for info, done in zip(self.locals.get("infos", []), self.locals.get("dones", [])):
            if done and "ratio_to_analytic" in info:
                ratio = float(info["ratio_to_analytic"])
                self.pending.append(f"{self.num_timesteps},{ratio:.6f}\n")
                self.recent = [*self.recent[-199:], ratio]
        if self.recent and self.n_calls % 50 == 0:
            self.logger.record("rollout/ratio_to_analytic", float(np.mean(self.recent)))
        if len(self.pending) >= self.flush_every:
            self.flush()
        return True

    def flush(self) -> None:
        if not self.pending:
            return
        new = not self.path.is_file()
        with open(self.path, "a") as fh:
            fh.write(("timesteps,ratio_to_analytic\n" if new else "") + "".join(self.pending))
        self.pending = []

    def _on_training_end(self) -> None:
        self.flush()


class ProgressLines(BaseCallback):
    """Progress where no progress bar can draw (output to a file or a pipe): one line every
    `every` steps with the steps done, the rate and the time left, so a slow run can be told
    from a hung one."""

    def __init__(self, total: int, every: int, stream=None):
        super().__init__()
        self.total, self.every, self.stream = total, max(every, 1), stream
        self._start_steps, self._t0, self._next = 0, 0.0, 0

    def _on_training_start(self) -> None:
        self._start_steps, self._t0 = self.num_timesteps, time.perf_counter()
        self._next = self._start_steps + self.every

    def _on_step(self) -> bool:
        if self.num_timesteps >= self._next:
            self._next += self.every
            done = self.num_timesteps - self._start_steps
            rate = done / max(time.perf_counter() - self._t0, 1e-9)
            eta = max(self.total - done, 0) / rate if rate > 0 else float("inf")
            print(f"  {self.num_timesteps:>10,} steps  {100 * min(done / self.total, 1):5.1f} %  {rate:8.0f} steps/s  "
                  f"ETA {eta:6.0f} s", file=self.stream or sys.stdout, flush=True)
        return True


class AtomicCheckpoint(BaseCallback):
    """Saves `checkpoints/model_<timesteps>_steps.zip` at the start of every `every`-th
    rollout, atomically: a kill mid-save leaves the previous checkpoints intact and no
    truncated zip. At a rollout's start the weights have learned from every step counted, and
    the count is a whole number of rollouts, so a run resumed from it ends exactly on its
    budget (a save mid-rollout counted steps it had not learned from, and the resumed run
    overshot by up to a rollout)."""

    def __init__(self, every: int, folder: Path):
        super().__init__()
        self.every = every
        self.folder = folder
        self._rollouts = 0

    def _on_rollout_start(self) -> None:
        if self._rollouts > 0 and self._rollouts % self.every == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            save_atomically(self.model, self.folder / f"model_{self.num_timesteps}_steps.zip")
        self._rollouts += 1

    def _on_step(self) -> bool:
        return True


def save_atomically(model, path: Path) -> None:
    """SB3 writes its zip in place; write it beside the target and rename it over."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.zip")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def intact(path: Path) -> bool:
    """An SB3 save that loads: a zip archive with its `data` member."""
    try:
        with zipfile.ZipFile(path) as zf:
            return "data" in zf.namelist() and zf.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


def newest_intact_save(out: Path) -> Path | None:
    """The newest of `model.zip` and the checkpoints that is intact; truncated ones are
    skipped with a warning, and the half-written temporary of a save killed mid-write is
    removed (it is never a save)."""
    for partial in [*out.glob(".*.tmp.zip"), *(out / "checkpoints").glob(".*.tmp.zip")]:
        partial.unlink(missing_ok=True)
        warnings.warn(f"--resume: removed {partial}, a save interrupted while it was written", UserWarning,
                      stacklevel=2)
    saves = [out / "model.zip", *(out / "checkpoints").glob("*.zip")]
    for path in sorted((p for p in saves if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True):
        if intact(path):
            return path
        warnings.warn(f"--resume: skipping {path}, a truncated or damaged save", UserWarning, stacklevel=2)
    return None


OUTPUT_FILES = ("model.zip", "config.json", "training_curve.csv")


def check_output_folder(out: Path) -> None:
    """Every output path of a run, checked before any work starts."""
    problem = output_path_problem(out, "folder")
    if problem is not None:
        raise field_error(XnetError, "--out", str(out), problem)
    for name in OUTPUT_FILES:
        if (out / name).is_dir():
            raise field_error(XnetError, "--out", str(out), f"{out / name} is a folder where the file {name} goes")
    for folder in ("checkpoints", "tb"):
        if (out / folder).exists() and not (out / folder).is_dir():
            raise field_error(XnetError, "--out", str(out), f"{out / folder} is a file where a folder goes")


def check_resume_config(out: Path, env_id: str, algo: str, kwargs: dict) -> None:
    """`--resume` continues the same run: the same env, algorithm and env kwargs."""
    path = out / "config.json"
    if not path.is_file():
        return                                    # a run killed before its first config
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return
    for key, new in (("env", env_id), ("algo", algo), ("env_kwargs", kwargs)):
        if key in old and old[key] != new:
            raise field_error(XnetError, "--resume", str(out),
                              f"that run used {key} = {old[key]!r}, not {new!r}; resume with the same "
                              f"settings or use another --out")


def _versions() -> dict:
    import gymnasium
    import sb3_contrib
    import stable_baselines3
    import torch

    return {"xnet_gym": xnet_gym.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "gymnasium": gymnasium.__version__,
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version()}


def make_train_env(env_id: str, env_kwargs: dict, algo: str, n_envs: int, seed: int, vec: str = "dummy"):
    """The training VecEnv: SB3's DummyVecEnv of single envs, or (`vec="batched"`) the
    batched vector env behind `BatchedVecEnv`, one NumPy call per step for all envs."""
    if vec == "batched":
        import gymnasium as gym
        from gymnasium.envs.registration import load_env_creator
        from stable_baselines3.common.vec_env import VecMonitor

        from .batched_vec_env import BatchedVecEnv
        entry = gym.spec(env_id).vector_entry_point
        vector_env: Any = load_env_creator(entry) if isinstance(entry, str) else entry
        venv = VecMonitor(BatchedVecEnv(vector_env(n_envs, autoreset_mode="same_step", **env_kwargs)))
        venv.seed(seed)
        return venv
    return make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs, vec_env_cls=DummyVecEnv,
                        wrapper_class=CheapestFreeAction if algo == "ppo" else None)


def check_vec(vec: str, env_id: str, algo: str) -> None:
    if vec not in VEC_KINDS:
        raise field_error(XnetError, "--vec", vec, f"allowed: {', '.join(VEC_KINDS)}")
    if vec == "batched" and (not capabilities(env_id).batched or algo != "maskable_ppo"):
        raise field_error(XnetError, "--vec", vec, "batched envs are ExpertPlacement-v0's and ExpertRefine-v0's, "
                          "trained with --algo maskable_ppo (plain PPO needs a per-env action wrapper)")


def train(env_id: str, scenario: str, algo: str = "maskable_ppo", timesteps: int = 100_000, seed: int = 0,
          out="runs/default", env_kwargs: dict | None = None, resume: bool = False,
          progress_bar: bool = True, hyperparameters: dict | None = None, verbose: int = 0,
          imitate: str | None = None, imitation_steps: int = 20_000, torch_threads: int | None = None) -> Path:
    if algo not in ALGOS:
        raise field_error(XnetError, "--algo", algo, f"allowed: {', '.join(ALGOS)}")
    if isinstance(timesteps, bool) or not isinstance(timesteps, int) or timesteps < 0:
        raise field_error(XnetError, "--timesteps", timesteps, "must be an integer >= 0 (0: imitation only)")
    if imitate is not None:
        from .imitation import EXPERTS
        if imitate not in EXPERTS:
            raise field_error(XnetError, "--imitate", imitate, f"allowed: {', '.join(EXPERTS)}")
        if algo != "maskable_ppo":
            raise field_error(XnetError, "--imitate", imitate, "needs --algo maskable_ppo (the masked policy)")
        if resume:
            raise field_error(XnetError, "--imitate", imitate, "warm-starts a new run; not with --resume")
    elif timesteps == 0:
        raise field_error(XnetError, "--timesteps", timesteps, "must be > 0 without --imitate")
    caps = capabilities(env_id)
    refine = caps.refinement
    if refine and algo != "maskable_ppo":
        raise field_error(XnetError, "--algo", algo, f"{env_id} trains with maskable_ppo (its masks rule out "
                          "most of its actions)")
    if imitate is not None and imitate not in caps.imitation_experts:
        why = " (its episodes already start from the closed form)" if refine else ""
        raise field_error(XnetError, "--imitate", imitate,
                          f"on {env_id}, allowed: {', '.join(caps.imitation_experts)}{why}")
    out = Path(out)
    check_output_folder(out)
    created = not out.exists()
    hp = {**DEFAULT_HYPERPARAMETERS, **(hyperparameters or {})}
    check_vec(hp["vec"], env_id, algo)
    import gymnasium as gym

    from xnet_gym.scenario import load_scenario

    kwargs = {"scenario": scenario, **(env_kwargs or {})}
    if kwargs.get("train_time_steps") is None and caps.episode_settings:
        kwargs["train_time_steps"] = min(DEFAULT_TRAIN_TIME_STEPS, load_scenario(scenario).evaluation.time_steps)

    gym.make(env_id, **kwargs).close()   # bad env kwargs fail here, before any worker starts
    from .threads import set_torch_threads
    set_torch_threads(torch_threads)
    if resume:
        check_resume_config(out, env_id, algo, kwargs)
    try:
        return _train(env_id, algo, timesteps, seed, out, kwargs, resume, progress_bar, hp, verbose,
                      imitate, imitation_steps)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()                                  # a failed run leaves no empty folder
        raise


def _train(env_id, algo, timesteps, seed, out: Path, kwargs, resume, progress_bar, hp, verbose,
           imitate=None, imitation_steps=0) -> Path:
    venv = make_train_env(env_id, kwargs, algo, hp["n_envs"], seed, hp["vec"])
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    cls: Any = MaskablePPO if algo == "maskable_ppo" else PPO
    policy: type = CandidateMaskablePolicy if algo == "maskable_ppo" else CandidatePolicy
    policy_kwargs: dict = {"features_extractor_kwargs": {"hidden": hp["hidden"], "encoder": hp["encoder"]}}
    if capabilities(env_id).pair_actions:
        # Moves and swaps of experts, not candidates for one expert: an expert-pair policy.
        from .refine_policy import RefineMaskablePolicy
        policy = RefineMaskablePolicy
        policy_kwargs = {"features_extractor_kwargs": {"hidden": hp["hidden"]}}
    model_path = out / "model.zip"
    checkpoints = out / "checkpoints"
    start = None
    if resume:
        start = newest_intact_save(out)
        if start is None:
            raise field_error(XnetError, "--resume", str(out), "holds no intact model.zip or checkpoint to resume from")
    if start is not None:
        model = cls.load(start, env=venv, device="cpu", tensorboard_log=str(out / "tb"))
    else:
        algo_kwargs = {k: hp[k] for k in ("n_steps", "batch_size", "n_epochs", "learning_rate", "gamma",
                                         "gae_lambda", "clip_range", "ent_coef", "vf_coef", "max_grad_norm")}
        model = cls(policy, venv, seed=seed, device="cpu", verbose=verbose, tensorboard_log=str(out / "tb"),
                    policy_kwargs=policy_kwargs, **algo_kwargs)
    imitation = None
    if imitate is not None:
        from .imitation import behaviour_clone, collect_demonstrations
        t_bc = time.perf_counter()
        imitation = {"expert": imitate, "steps": imitation_steps,
                     **behaviour_clone(model, collect_demonstrations(venv, imitation_steps, imitate), seed=seed)}
        imitation["wall_time_s"] = time.perf_counter() - t_bc
    out.mkdir(parents=True, exist_ok=True)
    if start is None:
        (out / "training_curve.csv").unlink(missing_ok=True)     # a fresh run starts a fresh curve
    curve = TrainingCurve(out / "training_curve.csv")
    every = max(timesteps // (hp["n_steps"] * hp["n_envs"]) // 5, 1)          # about five per run, in rollouts
    callbacks_list: list = [curve, AtomicCheckpoint(every, checkpoints)]
    if progress_bar and not sys.stdout.isatty():
        # No terminal to draw a bar on: lines instead, about every 5 % of the run.
        callbacks_list.append(ProgressLines(timesteps, max(timesteps // 20, 1)))
        progress_bar = False
    callbacks = CallbackList(callbacks_list)
    t0 = time.perf_counter()
    steps_before = int(model.num_timesteps) if start is not None else 0
    interrupted = False
    try:
        if timesteps > 0:
            model.learn(total_timesteps=timesteps, callback=callbacks, progress_bar=progress_bar,
                        reset_num_timesteps=start is None, tb_log_name="run")
    except KeyboardInterrupt:
        interrupted = True                    # keep what was learned: save below, then report
    wall = time.perf_counter() - t0
    curve.flush()
    save_atomically(model, model_path)
    config = {"env": env_id, "env_kwargs": kwargs, "algo": algo, "seed": seed, "timesteps": timesteps,
              "total_timesteps": int(model.num_timesteps), "resumed_from": str(start) if start else None,
              "interrupted": interrupted, "hyperparameters": hp, "policy": policy.__name__, "imitation": imitation,
              "wall_time_s": wall,
              "wall_time_per_100k_steps_s": wall / max(int(model.num_timesteps) - steps_before, 1) * 100_000,
              "versions": _versions()}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    venv.close()
    return out
