"""Policies that can be evaluated side by side: analytic, random, any baseline solver, and a
trained SB3 model. Each `start(env)`s after reset and `act(env, obs)`s once per step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from xnet_gym.envs.capabilities import capabilities_of
from xnet_gym.errors import XnetError, field_error

from .settings import ALGOS


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
        if not capabilities_of(env).greedy:
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
    """Load a model the user named (and set torch's threads, `agents.threads`). SB3 zips hold
    pickles: only load files you trust."""
    from .threads import set_torch_threads

    set_torch_threads()
    path = Path(path)
    if not path.is_file():
        raise field_error(XnetError, "--policy", str(path), "no such model file (a .zip saved by xnet-gym train)")
    config = _run_config(path)
    algo = algo or config.get("algo", "maskable_ppo")
    if algo not in ALGOS:
        raise field_error(XnetError, "algo", algo, f"allowed: {', '.join(ALGOS)}")
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    cls: Any = MaskablePPO if algo == "maskable_ppo" else PPO
    # The zip names its policy class by module path; models saved before the agents moved into
    # xnet_gym (`agents.policy...`) load through the class their config names.
    classes = _policy_classes()
    custom = {"policy_class": classes[config["policy"]]} if config.get("policy") in classes else {}
    try:
        model = cls.load(path, device="cpu", custom_objects=custom)
    except Exception as exc:   # a zip of another algorithm or a corrupt file
        raise field_error(XnetError, "--policy", str(path), f"could not be loaded as {algo} ({exc})") from None
    return model, algo, config


# Parameters that only the critic reads: sized by the action count in the pointer policies
# (the value MLP reads the extractor's logits), never used to act.
CRITIC_ONLY = ("mlp_extractor.value_net.", "value_net.")


def fit_to_spaces(model, observation_space, action_space, label: str) -> None:
    """Rebuild `model`'s policy for other observation and action shapes with the same weights,
    where its network allows: every parameter the actor reads must keep its shape (the
    pointer policies' do not depend on E or C). The critic's first layer, sized by the action
    count, is left fresh: acting never reads it. Otherwise the error names the first
    parameter that does not fit."""
    old = model.policy
    try:
        new = type(old)(observation_space, action_space, lambda _: 0.0, **model.policy_kwargs)
    except Exception as exc:          # a network that cannot be built for these spaces at all
        raise field_error(XnetError, "--policy", label, f"its network ({type(old).__name__}) cannot be built for "
                          f"this env's shapes ({exc})") from None
    state, target = old.state_dict(), new.state_dict()
    for key, value in target.items():
        if key.startswith(CRITIC_ONLY):
            continue
        if key not in state or state[key].shape != value.shape:
            have = tuple(state[key].shape) if key in state else "absent"
            raise field_error(XnetError, "--policy", label,
                              f"its network ({type(old).__name__}) cannot take this env's shapes: parameter {key} "
                              f"is {have} in the model and would need {tuple(value.shape)} (only networks whose "
                              "weights do not depend on the expert and candidate counts, such as the attention "
                              "and pointer policies of xnet-gym train, move between shapes)")
    new.load_state_dict({k: v for k, v in state.items() if k in target and v.shape == target[k].shape}, strict=False)
    new.set_training_mode(False)
    model.policy, model.observation_space, model.action_space = new, observation_space, action_space


def _policy_classes() -> dict:
    from .policy import CandidateMaskablePolicy, CandidatePolicy
    from .refine_policy import RefineMaskablePolicy

    return {c.__name__: c for c in (CandidateMaskablePolicy, CandidatePolicy, RefineMaskablePolicy)}


class LearnedPlayer:
    def __init__(self, path, algo: str | None = None, name: str = "learned"):
        self.model, self.algo, self.config = load_model(path, algo)
        self.name = name

    def check(self, env) -> None:
        """The env must give the observations the model was trained on; where only their
        sizes differ (another E, C, k or capacity), the policy is rebuilt for them."""
        want, have = self.model.observation_space, env.observation_space
        same_keys = isinstance(have, type(want)) and set(getattr(want, "spaces", {})) == set(
            getattr(have, "spaces", {}))
        same = same_keys and all(want[k].shape == have[k].shape for k in want.spaces)
        both_discrete = all(isinstance(s, spaces.Discrete) for s in (env.action_space, self.model.action_space))
        if same_keys and not same and both_discrete:
            fit_to_spaces(self.model, have, env.action_space, self.config.get("env", "model"))
            return
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
