"""xnet-gym: learned placement of mixture-of-experts LLMs over LEO satellite networks.

Importing the package registers the Gymnasium ids `xnet_gym/ExpertPlacement-v0` and
`xnet_gym/ModelPlacement-v0`.
"""

from .errors import ActionError, PlacementError, ScenarioError, TraceError, XnetError
from .instance import Instance, build_instance
from .placement import Placement
from .scenario import Scenario, load_scenario, preset_names

__version__ = "0.1.0"

__all__ = ["ActionError", "Instance", "Placement", "PlacementError", "Scenario", "ScenarioError", "TraceError",
           "XnetError", "build_instance", "load_scenario", "preset_names"]

from .envs import register_envs as _register_envs

_register_envs()
