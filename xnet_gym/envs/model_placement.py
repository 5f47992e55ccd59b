"""`xnet_gym/ModelPlacement-v0`: place every layer's experts, scored on token latency."""

from __future__ import annotations

from .assignment import AssignmentEnv
from .capabilities import Capabilities


class ModelPlacementEnv(AssignmentEnv):
    """
    ## Description

    The whole MoE model over the constellation (Space-XNet, arXiv 2605.00515): layer `l` lives
    in ring subnet `l` with a central gateway; the agent places all `L x E` experts, layer by
    layer. The episode is scored on the expected **token latency**
    `t_lm + sum_l [t_attn(l) + max_{e in A_l}(d(g_l, s_e) + m_e t_expert(s_e) + d(s_e, g_next))]`
    (docs/model.md), through the project's one evaluator.

    ## Action Space

    As ExpertPlacement-v0: `Discrete(C)` over the current layer's candidates, with
    `action_masks()` and `obs["action_mask"]`; invalid actions go to the cheapest free
    candidate at an extra cost of 0.1 and set `info["invalid_action"]`.

    ## Observation Space

    The same `Dict` as ExpertPlacement-v0 (see its table); `expert[3]` is the current
    layer / (L-1) and `expert[2]` the progress over all `L x E` steps.

    ## Rewards

    The undiscounted return is `-token_latency(placement) / token_latency(analytic)`: the
    analytic placement scores exactly -1.0. `reward="dense"` (default) pays each expert's share
    of the separable surrogate as it is placed and the remainder (constant compute, and the
    max-versus-mean difference) on the last step; `reward="sparse"` pays it all at the end.
    Each invalid action costs 0.1 more. `info` is as in ExpertPlacement-v0 (the same keys
    on every step, NumPy scalars); the final placement is `env.unwrapped.placement`.

    ## Starting State

    Each `reset` draws a fresh activation profile for every layer (synthetic sources) or a
    token window (trace sources), the gateways (`layer_strategy="random-gateway"`) and one
    subset of `train_time_steps` of the scenario's time steps shared by all layers, from
    `self.np_random` only. `reset(options={"trace": ActivationTrace})` pins the activation.

    ## Episode End

    Terminates after exactly `L x E` steps. Never truncates by itself.

    ## Arguments

    ```python
    gymnasium.make("xnet_gym/ModelPlacement-v0", scenario="paper", episode=None, reward="dense",
                   render_mode=None, generator=None, reward_fn=None, observation=None,
                   viewer=None, obs_layout="dict", **episode_settings)
    ```

    The arguments and episode settings mean what they mean for ExpertPlacement-v0, without
    `layer` (every layer is placed). A custom `generator` returns problems of scope "token"
    (`Problem.from_instance(instance)`).

    ## Version History

    - v0: initial release. Later in v0: `time_steps`/`train_time_steps` (the old names are
      deprecated aliases), the terminal observation keeps the last valid mask, `obs_layout`.
    """

    scope = "token"
    capabilities = Capabilities()
