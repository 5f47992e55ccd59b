"""Policies that can be evaluated side by side: analytic, random, any baseline solver, and a
trained SB3 model. Each `start(env)`s after reset and `act(env, obs)`s once per step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xnet_gym.errors import XnetError, field_error

ALGOS = ("maskable_ppo", "ppo")


class AnalyticPlayer:
    name = "analytic"

    def start(self, env):
        return None

    def act(self, env, obs) -> int:
        return env.unwrapped.analytic_action()


class GreedyPlayer:
    """Steepest descent through ExpertRefine-v0 (`greedy_action()`): the move or swap that
    lowers the latency most, until none does; the expert of `--imitate greedy`."""

    name = "greedy"

    def start(self, env):
        if not hasattr(env.unwrapped, "greedy_action"):
            raise field_error(XnetError, "--policy", "greedy", "plays xnet_gym/ExpertRefine-v0 (steepest descent "
                              f"over its moves and swaps), not {env.spec.id if env.spec else type(env.unwrapped)}")

    def act(self, env, obs) -> int:
        return env.unwrapped.greedy_action()


class RandomPlayer:
    """Uniform over the valid actions, from its own seeded generator."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def start(self, env):
        return None

    def act(self, env, obs) -> int:
        return int(self.rng.choice(np.flatnonzero(env.unwrapped.action_masks())))


def _run_config(model_path: Path) -> dict:
    for folder in (model_path.parent, model_path.parent.parent):
        cfg = folder / "config.json"
        if cfg.is_file():
            return json.loads(cfg.read_text())
    return {}


def load_model(path, algo: str | None = None):
    """Load a model the user named. SB3 zips hold pickles: only load files you trust."""
    path = Path(path)
    if not path.is_file():
        raise field_error(XnetError, "--policy", str(path), "no such model file (a .zip saved by xnet-gym train)")
    config = _run_config(path)
    algo = algo or config.get("algo", "maskable_ppo")
    if algo not in ALGOS:
        raise field_error(XnetError, "algo", algo, f"allowed: {', '.join(ALGOS)}")
    if algo == "maskable_ppo":
        from sb3_contrib import MaskablePPO as cls
    else:
        from stable_baselines3 import PPO as cls
    try:
        model = cls.load(path, device="cpu")
    except Exception as exc:   # a zip of another algorithm or a corrupt file
        raise field_error(XnetError, "--policy", str(path), f"could not be loaded as {algo} ({exc})") from None
    return model, algo, config


class LearnedPlayer:
    def __init__(self, path, algo: str | None = None, name: str = "learned"):
        self.model, self.algo, self.config = load_model(path, algo)
        self.name = name

    def check(self, env) -> None:
        want, have = self.model.observation_space, env.observation_space
        same = isinstance(have, type(want)) and set(getattr(want, "spaces", {})) == set(
            getattr(have, "spaces", {})) and all(want[k].shape == have[k].shape for k in want.spaces)
        if not same or self.model.action_space != env.action_space:
            shapes = {k: v.shape for k, v in getattr(want, "spaces", {}).items()}
            env_shapes = {k: v.shape for k, v in getattr(have, "spaces", {}).items()}
            hint = ""
            if ("action_gain" in shapes) != ("action_gain" in env_shapes):
                hint = ("; it was trained " + ("with" if "action_gain" in shapes else "without")
                        + " --gain-observation: evaluate it the same way")
            raise field_error(XnetError, "--policy", self.config.get("env", "model"),
                              f"was trained on another env or observation shape: model expects {shapes} and "
                              f"{self.model.action_space}, this env gives {env_shapes} and {env.action_space}{hint}")

    def start(self, env):
        return None

    def act(self, env, obs) -> int:
        kwargs = {"action_masks": env.get_wrapper_attr("action_masks")()} if self.algo == "maskable_ppo" else {}
        action, _ = self.model.predict(obs, deterministic=True, **kwargs)
        return int(action)


def play_on_instance(path, instance, layer: int):
    """The placement a trained ExpertPlacement model gives `layer` of `instance` (the other
    layers keep the closed form's experts)."""
    from xnet_gym.envs import ExpertPlacementEnv, Problem, ReplayProblem

    player = LearnedPlayer(path)
    problem = Problem.from_instance(instance, layers=[layer])
    env = ExpertPlacementEnv(instance.scenario, generator=ReplayProblem(problem))
    player.check(env)
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, _, done, _, _ = env.step(player.act(env, obs))
    return env.placement


def needs_cheapest_free_wrapper(player) -> bool:
    return isinstance(player, LearnedPlayer) and player.algo == "ppo"


__all__ = ["ALGOS", "AnalyticPlayer", "LearnedPlayer", "RandomPlayer", "XnetError", "load_model", "play_on_instance"]
