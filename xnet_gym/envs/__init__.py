"""Gymnasium environments: sequential expert placement on a LEO constellation."""

from .expert_placement import ExpertPlacementEnv
from .generator import PlacementGenerator
from .model_placement import ModelPlacementEnv
from .reward import DenseReward, SparseReward
from .types import Episode
from .viewer import Viewer

# Episodes terminate by themselves after E (or L x E) steps; these bounds only guard
# against a runaway loop and are large enough for every preset.
EXPERT_MAX_STEPS = 4096
MODEL_MAX_STEPS = 1 << 16


def register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    for name, entry, steps in (("ExpertPlacement-v0", "xnet_gym.envs:ExpertPlacementEnv", EXPERT_MAX_STEPS),
                               ("ModelPlacement-v0", "xnet_gym.envs:ModelPlacementEnv", MODEL_MAX_STEPS)):
        env_id = f"xnet_gym/{name}"
        if env_id not in registry:
            register(id=env_id, entry_point=entry, max_episode_steps=steps)


__all__ = ["DenseReward", "Episode", "ExpertPlacementEnv", "ModelPlacementEnv", "PlacementGenerator",
           "SparseReward", "Viewer", "register_envs"]
