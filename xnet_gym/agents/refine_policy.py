"""A pointer-style policy for `ExpertRefine-v0`: experts attend to experts, candidates to
candidates, and every action's logit is a score between the two things it relates.

- Expert tokens: activation probability, popularity rank, how often the expert is its
  set's bottleneck, the cost and occupancy of the candidate it is on, and the episode's
  progress; candidate tokens: cost, occupancy,
  a free-seat flag and the progress (padded candidates are masked out anyway). Each set goes
  through one Transformer encoder layer, so an expert's embedding knows which other experts
  are where (co-activation shows up through probability and rank; the layer learns the rest).
- Move (e, c): a scaled dot product of expert e's query and candidate c's key.
- Swap (x, y): the symmetric dot product of the two experts' swap embeddings.
- Stop: a linear score of the pooled experts.
- With the env's `action_gain` observation (`gain_observation=True`), every action's logit
  also gets a learned function of its own exact gain (in % of the closed form, and as a
  share of the step's best gain, within [-1, 1]), and stop one of the best gain: the network then chooses
  among known gains instead of guessing them, and the value head sees the best gain too.

On ExpertReplace-v0 (its observation has `pooled_probability`) the expert tokens also carry
the pooled activation probability and whether the expert already moved this window, every
token carries the window features (how far into the run, the orbit phase, the budget left),
and the history's co-activation P(f | e) biases the expert attention (a learned weight per
head): experts that fire together attend to each other.

The network's size does not depend on E or C beyond the logits it emits, and it is
equivariant to the order of experts and of candidates.
"""

from __future__ import annotations

import math

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from .policy import size, take_logits_head


class RefineExtractor(BaseFeaturesExtractor):
    """Dict observation -> [all action logits (A), pooled experts (H), pooled candidates (H)]."""

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, heads: int = 4):
        E = size(observation_space["expert_probability"])
        C = size(observation_space["candidate_cost"])
        A = size(observation_space["action_mask"])
        self.with_gain = "action_gain" in observation_space.spaces
        self.drift = "pooled_probability" in observation_space.spaces      # ExpertReplace-v0
        self.heads = heads
        extra = 2 if self.with_gain else 0
        context = 3 + (4 if self.drift else 0)
        super().__init__(observation_space, features_dim=A + 2 * hidden + extra)
        self.E, self.C, self.hidden = E, C, hidden
        iu = th.triu_indices(E, E, offset=1)
        self.register_buffer("swap_x", iu[0], persistent=False)
        self.register_buffer("swap_y", iu[1], persistent=False)
        per_expert = 5 + (2 if self.drift else 0)
        self.expert_in = nn.Sequential(nn.Linear(per_expert + context, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.candidate_in = nn.Sequential(nn.Linear(3 + context, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        if self.drift:
            self.coactivation_bias = nn.Parameter(th.zeros(heads))
        self.expert_attn = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
        self.candidate_attn = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.swap = nn.Linear(hidden, hidden)
        self.stop = nn.Linear(hidden, 1)
        if self.with_gain:
            self.gain_score = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))
            self.gain_stop = nn.Linear(2, 1)

    def forward(self, obs: dict) -> th.Tensor:
        B, E, C = obs["candidate_cost"].shape[0], self.E, self.C
        onehot = obs["assignment"].reshape(B, E, C)
        cost, occ = obs["candidate_cost"], obs["candidate_occupancy"]
        progress = obs["progress"]
        if self.drift:
            progress = th.cat([progress, obs["window"]], dim=-1)
        own_cost = (onehot * cost[:, None, :]).sum(-1)
        own_occ = (onehot * occ[:, None, :]).sum(-1)
        features = [obs["expert_probability"], obs["expert_rank"], obs["expert_bottleneck"], own_cost, own_occ]
        if self.drift:
            features += [obs["pooled_probability"], obs["moved"]]
        experts = th.stack(features, dim=-1)
        experts = th.cat([experts, progress[:, None, :].expand(-1, E, -1)], dim=-1)
        free = (occ < 1.0).float()
        cands = th.cat([th.stack([cost, occ, free], dim=-1), progress[:, None, :].expand(-1, C, -1)], dim=-1)
        bias = None
        if self.drift:
            # An additive attention bias per head: weight_h * P(f active | e active).
            co = obs["coactivation"].reshape(B, 1, E, E) * self.coactivation_bias.view(1, -1, 1, 1)
            bias = co.reshape(B * self.heads, E, E)
        h_e = self.expert_attn(self.expert_in(experts), src_mask=bias)       # (B, E, H)
        h_c = self.candidate_attn(self.candidate_in(cands))                  # (B, C, H)
        scale = 1.0 / math.sqrt(self.hidden)
        move = th.einsum("beh,bch->bec", self.query(h_e), self.key(h_c)) * scale
        s = self.swap(h_e)
        pair = th.einsum("bxh,byh->bxy", s, s) * scale
        swap = pair[:, self.get_buffer("swap_x"), self.get_buffer("swap_y")]
        pooled_e, pooled_c = h_e.mean(dim=1), h_c.mean(dim=1)
        logits = th.cat([move.reshape(B, E * C), swap, self.stop(pooled_e)], dim=-1)
        if not self.with_gain:
            return th.cat([logits, pooled_e, pooled_c], dim=-1)
        gain = obs["action_gain"]
        best = gain.max(dim=-1, keepdim=True).values                          # stop's gain is 0, so best >= 0
        # 1 for the best action; bounded, and 0 when nothing improves (dividing by a ~0 best
        # would feed the network inputs of 1e6 and more at every local optimum).
        improving = best > 1e-9
        share = th.where(improving, gain / th.where(improving, best, th.ones_like(best)), th.zeros_like(gain))
        share = share.clamp(-1.0, 1.0)
        bonus = self.gain_score(th.stack([100.0 * gain, share], dim=-1)).squeeze(-1)
        summary = th.cat([100.0 * best, (~improving).float()], dim=-1)       # best gain in %, "nothing improves"
        stop_bonus = self.gain_stop(summary)
        logits = logits + th.cat([bonus[:, :-1], stop_bonus], dim=-1)
        return th.cat([logits, pooled_e, pooled_c, summary], dim=-1)


class RefineMaskablePolicy(MaskableActorCriticPolicy):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("features_extractor_class", RefineExtractor)
        kwargs.setdefault("net_arch", {"pi": [], "vf": [64, 64]})
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        take_logits_head(self, lr_schedule)
