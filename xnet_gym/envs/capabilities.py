"""What each placement env can do, declared once by the env class and read everywhere else.

The CLI, training, evaluation, the players and the benchmark ask `capabilities(env_id)` (or
`capabilities_of(env)`) instead of matching env-id strings or probing attributes, so a new
env is one class with its own `capabilities` and no hunt through the callers.

| env | refinement | stop action | greedy | gain observation | batched twin | imitation experts |
|---|---|---|---|---|---|---|
| `ExpertPlacement-v0` | no | no | no | no | yes | analytic |
| `ModelPlacement-v0` | no | no | no | no | no | analytic |
| `ExpertRefine-v0` | yes | yes | yes | yes | yes | greedy |
| `ExpertReplace-v0` | no | no | yes | yes | no | greedy, lookahead |
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ScenarioError, field_error


@dataclass(frozen=True)
class Capabilities:
    refinement: bool = False          # episodes start from a complete placement and improve it
    stop_action: bool = False         # an action that ends the episode (`env.stop_action`)
    greedy: bool = False              # `greedy_action()`: steepest descent, a policy and an imitation expert
    gain_observation: bool = False    # takes `gain_observation=True` (every action's exact gain)
    batched: bool = False             # a `vector_entry_point` twin (`gymnasium.make_vec`)
    imitation_experts: tuple[str, ...] = ("analytic",)   # what `xnet-gym train --imitate` may copy here
    keeps_gateways: bool = True       # the episode's gateways are fixed: gateway-moving solvers cannot act
    pair_actions: bool = False        # ExpertRefine-v0's actions (moves and swaps of experts): the expert-pair policy
    episode_settings: bool = True     # takes EpisodeConfig's settings (tokens, train_time_steps, ...)

    def table_row(self, env_id: str) -> str:
        def yes(flag: bool) -> str:
            return "yes" if flag else "no"
        return (f"| `{env_id.split('/')[-1]}` | {yes(self.refinement)} | {yes(self.stop_action)} | {yes(self.greedy)} "
                f"| {yes(self.gain_observation)} | {yes(self.batched)} | {', '.join(self.imitation_experts)} |")


def capabilities(env_id: str) -> Capabilities:
    """The capabilities of a registered env id (its entry point's class declares them)."""
    import gymnasium as gym

    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise field_error(ScenarioError, "env", env_id, f"is not a registered env ({exc})") from None
    entry = spec.entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        import importlib

        entry = getattr(importlib.import_module(module), name)
    caps = getattr(entry, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise field_error(ScenarioError, "env", env_id, "declares no xnet_gym capabilities (not a placement env)")
    return caps


def capabilities_of(env) -> Capabilities:
    """The capabilities of an env instance (through any wrappers)."""
    caps = getattr(env.unwrapped, "capabilities", None)
    if not isinstance(caps, Capabilities):
        raise field_error(ScenarioError, "env", type(env.unwrapped).__name__,
                          "declares no xnet_gym capabilities (not a placement env)")
    return caps
