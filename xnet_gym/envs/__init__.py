"""Gymnasium environments: sequential expert placement on a LEO constellation.

Per env, the parts are separate and swappable through the constructor: `generator.py` (the
only source of episode randomness, behind the `Generator` protocol), `problem.py` (the
episode model), `observation.py` (the feature list), `scoring.py` (the one route to the
evaluator), `reward.py` and `viewer.py`. `core.py` holds the placement envs' dynamics and
`refine_core.py` refinement's, each written once for N episodes: every env is its core at
N = 1 and every batched vector env the same core at N.
"""

from .capabilities import Capabilities, capabilities, capabilities_of
from .episode import EpisodeConfig
from .expert_placement import ExpertPlacementEnv
from .expert_placement_vector import ExpertPlacementVectorEnv
from .expert_refine import ExpertRefineEnv
from .expert_refine_vector import ExpertRefineVectorEnv
from .expert_replace import ExpertReplaceEnv
from .generator import Generator, PlacementGenerator, ReplayProblem
from .model_placement import ModelPlacementEnv
from .observation import DEFAULT_FEATURES, Feature, ObservationBuilder
from .problem import LayerRows, Problem, ProblemSpec
from .reward import DenseReward, SparseReward
from .viewer import Viewer

# Episodes terminate by themselves after E (or L x E) steps; these bounds only guard
# against a runaway loop and are large enough for every preset.
EXPERT_MAX_STEPS = 4096
MODEL_MAX_STEPS = 1 << 16


def register_envs() -> None:
    from gymnasium.envs.registration import register, registry

    for name, entry, vector, steps in (
            ("ExpertPlacement-v0", "xnet_gym.envs:ExpertPlacementEnv", "xnet_gym.envs:ExpertPlacementVectorEnv",
             EXPERT_MAX_STEPS),
            ("ModelPlacement-v0", "xnet_gym.envs:ModelPlacementEnv", None, MODEL_MAX_STEPS)):
        env_id = f"xnet_gym/{name}"
        if env_id not in registry:
            # With a vector_entry_point, gymnasium.make_vec uses it unless told otherwise.
            register(id=env_id, entry_point=entry, vector_entry_point=vector, max_episode_steps=steps)
    if "xnet_gym/ExpertRefine-v0" not in registry:
        # Ends by itself within `max_moves` steps (a kwarg), so no TimeLimit is stacked on it.
        register(id="xnet_gym/ExpertRefine-v0", entry_point="xnet_gym.envs:ExpertRefineEnv",
                 vector_entry_point="xnet_gym.envs:ExpertRefineVectorEnv")
    if "xnet_gym/ExpertReplace-v0" not in registry:
        # Ends by itself after its windows (at most W * (max_moves + 1) steps).
        register(id="xnet_gym/ExpertReplace-v0", entry_point="xnet_gym.envs:ExpertReplaceEnv")


__all__ = [
    "DEFAULT_FEATURES",
    "Capabilities",
    "DenseReward",
    "EpisodeConfig",
    "ExpertPlacementEnv",
    "ExpertPlacementVectorEnv",
    "ExpertRefineEnv",
    "ExpertRefineVectorEnv",
    "ExpertReplaceEnv",
    "Feature",
    "Generator",
    "LayerRows",
    "ModelPlacementEnv",
    "ObservationBuilder",
    "PlacementGenerator",
    "Problem",
    "ProblemSpec",
    "ReplayProblem",
    "SparseReward",
    "Viewer",
    "capabilities",
    "capabilities_of",
    "register_envs",
]
