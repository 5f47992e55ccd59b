"""`xnet_gym/ExpertPlacement-v0`: place one MoE layer's experts on its ring subnet."""

from __future__ import annotations

import textwrap

from .assignment import AssignmentEnv
from .capabilities import Capabilities
from .episode import episode_table
from .observation import ObservationBuilder


class ExpertPlacementEnv(AssignmentEnv):
    __doc__ = """
    ## Description

    One MoE layer of a model split over a LEO constellation (Space-XNet, arXiv 2605.00515).
    The layer lives in a ring subnet (all planes x a contiguous arc of along-track slots) with
    its gateway at the subnet's centre. The agent places the layer's `E` experts one per step
    on candidate satellites of the subnet (the subnet minus the gateway). The episode is scored
    on the layer's expected **expert-stage latency**: the mean over time steps and tokens of
    `max_{e in A}( d(g, s_e) + m_e t_expert(s_e) + d(s_e, g_next) )` (or its activation-weighted
    surrogate with `objective="weighted"`), computed by the project's one evaluator.

    ## Action Space

    `Discrete(C)`, `C` = the largest candidate count over the scenario's layers. Action `i`
    puts the current expert on the layer's `i`-th candidate (increasing satellite index).
    `action_masks()` and `obs["action_mask"]` mark candidates with a free seat (capacity
    `experts_per_satellite`). A masked-out action (a full or padded candidate) does not
    raise: the expert goes to the cheapest free candidate, the step costs an extra 0.1, and
    `info["invalid_action"]` is True. An action that is not an integer in [0, C-1] (a float
    with a fraction, a bool, inf) raises `xnet_gym.ActionError`.

    ## Observation Space

    A `Dict` of float32 `Box`es (shapes fixed per scenario; `C` is the action count):

{observation_table}

    ## Rewards

    The undiscounted return is `-latency(placement) / latency(analytic placement)` of the
    episode's instance: the paper's sort-match scores exactly -1.0, a better placement more.
    With `reward="dense"` (default) each step pays the placed expert's share of the separable
    surrogate, `-(p_e / k) * cost(s) / reference`, and the last step adds the remainder, so the
    sum is unchanged (dense step rewards sit on a 2^-40 grid, so the sum is exact: the closed
    form's return is -1.0 with no rounding); `reward="sparse"` pays everything on the last
    step. Each invalid action
    costs 0.1 more. `info` has the same keys on every step and reset, each a NumPy scalar:
    `layer`, `step_in_layer`, `invalid_action`, `invalid_actions` (so far),
    `analytic_latency_s`, and `latency_s` and `ratio_to_analytic` (0.0 until the last step).
    The final placement (an `xnet_gym.Placement`) is `env.unwrapped.placement`. While an
    episode runs, `env.unwrapped.current_layer`, `current_expert` and `assignment`
    (candidate index per expert, -1 = not yet placed) are public and read-only.

    ## Starting State

    Each `reset` draws, from `self.np_random` only: the layer (unless `layer=` is fixed), a
    fresh activation profile (synthetic sources, `randomize_activation=True`) or a token window
    (trace sources), the gateways (`layer_strategy="random-gateway"`) and `train_time_steps` of
    the scenario's time steps. `reset(options={"layer": l, "trace": ActivationTrace})` pins them.
    With the paper's gateways and a synthetic source, episodes are drawn 64 at a time (one
    vectorised draw each) and handed out one per reset; a seeded `reset` starts a new block,
    so the same seed gives the same episode sequence.

    ## Episode End

    Terminates after exactly `E` steps (one per expert). Never truncates by itself; the
    registered `max_episode_steps` is only a safety bound.

    ## Arguments

    ```python
    gymnasium.make("xnet_gym/ExpertPlacement-v0", scenario="paper", episode=None, reward="dense",
                   render_mode=None, generator=None, reward_fn=None, observation=None,
                   viewer=None, obs_layout="dict", **episode_settings)
    ```

    The episode settings are the same for every placement env: keywords, or one
    `episode=xnet_gym.envs.EpisodeConfig(...)` (keywords given beside it replace its values).
    The v0 names `train_slots` and `slots` still work, with a DeprecationWarning.

{episode_table}

    - `reward`: `"dense"` or `"sparse"` (both return `-latency / closed form`).
    - `generator`: anything following `xnet_gym.envs.Generator` (a `spec` and a call
      `(rng, options) -> Problem`); `reward_fn` (`step`/`final`, see `xnet_gym.envs.reward`);
      `observation`: an `ObservationBuilder` with your own feature list; `viewer`.
    - `render_mode`: `"human"` (the `"ansi"` view printed at every reset and step), `"ansi"` or
      `"rgb_array"` (matplotlib).
    - `obs_layout`: `"dict"` (the table above), `"flat"` (`{"observations": every feature but
      the mask concatenated in table order, "action_mask": float32}`, RLlib's masking
      convention) or `"tianshou"` (`{"obs": the same vector, "mask": bool}`).

    ## Version History

    - v0: initial release. Later in v0: `time_steps`/`train_time_steps` (the old names are
      deprecated aliases), the terminal observation keeps the last valid mask, `obs_layout`,
      a batched vector env as the `vector_entry_point` (`gymnasium.make_vec` uses it by default).
    """

    __doc__ = __doc__.replace("{observation_table}", textwrap.indent(ObservationBuilder().table_markdown(), "    ")
                              ).replace("{episode_table}", episode_table())
    scope = "stage"
    capabilities = Capabilities(batched=True)
