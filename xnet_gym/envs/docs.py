"""`docs/envs.md`, generated from the env class docstrings so the two cannot drift.

    python -m xnet_gym.envs.docs > docs/envs.md
"""

from __future__ import annotations

import inspect

from .expert_placement import ExpertPlacementEnv
from .expert_placement_vector import ExpertPlacementVectorEnv
from .expert_refine import ExpertRefineEnv
from .expert_replace import ExpertReplaceEnv
from .model_placement import ModelPlacementEnv

ENVS = (("xnet_gym/ExpertPlacement-v0", ExpertPlacementEnv),
        ("xnet_gym/ExpertPlacement-v0, batched (vector_entry_point)", ExpertPlacementVectorEnv),
        ("xnet_gym/ModelPlacement-v0", ModelPlacementEnv), ("xnet_gym/ExpertRefine-v0", ExpertRefineEnv),
        ("xnet_gym/ExpertReplace-v0", ExpertReplaceEnv))


def envs_markdown() -> str:
    parts = ["# Environments",
             "",
             "Generated from the class docstrings by `python -m xnet_gym.envs.docs > docs/envs.md`; a test "
             "keeps this page and the docstrings equal. `help(xnet_gym.envs.ExpertPlacementEnv)` shows the "
             "same text. The latency model is in [model.md](model.md)."]
    for env_id, cls in ENVS:
        body = inspect.cleandoc(cls.__doc__ or "")
        # One level down: each env is a section of this page.
        body = "\n".join("#" + line if line.startswith("## ") else line for line in body.splitlines())
        parts += ["", f"## `{env_id}`", "", f"`{cls.__module__}.{cls.__name__}`", "", body]
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(envs_markdown(), end="")
