"""Candidate-wise policies for the placement envs.

Every candidate satellite is encoded by one shared MLP from its own features plus the
current expert's features, so the network is the same whatever the candidate count and is
equivariant to the candidates' order. With `encoder="attention"` a Transformer encoder layer
then lets every candidate attend to every other (masked-out candidates are not attended to):
a candidate can be compared with the others, not only with their mean. A pooled context is
added to each candidate's embedding, and a shared scorer turns each into one action logit (a
pointer-style head). The value head reads the pooled context.
"""

from __future__ import annotations

import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from .settings import ENCODERS


def size(space: spaces.Space) -> int:
    """The length of a 1-D Box of the observation (its shape is always set for a Box)."""
    assert space.shape is not None
    return int(space.shape[0])


def candidate_keys(observation_space: spaces.Dict) -> list[str]:
    """The per-candidate entries, by the observation builder's naming rule (`candidate_*`
    and `action_mask`), so a new feature reaches the policy unedited."""
    return [k for k in observation_space.spaces if k.startswith("candidate_") or k == "action_mask"]


class CandidateExtractor(BaseFeaturesExtractor):
    """Dict observation -> [per-candidate logits (C), pooled context (2H)]."""

    def __init__(self, observation_space: spaces.Dict, hidden: int = 64, encoder: str = "mlp", heads: int = 4):
        C = size(observation_space["action_mask"])
        n_expert = size(observation_space["expert"])
        super().__init__(observation_space, features_dim=C + 2 * hidden)
        self.n_candidates = C
        self.candidate_keys = candidate_keys(observation_space)
        self.encoder = nn.Sequential(nn.Linear(len(self.candidate_keys) + n_expert, hidden), nn.ReLU(),
                                     nn.Linear(hidden, hidden), nn.ReLU())
        self.scorer = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        if encoder not in ENCODERS:
            raise ValueError(f"encoder = {encoder!r}: allowed: {', '.join(ENCODERS)}")
        self.attention = (nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
                          if encoder == "attention" else None)

    def forward(self, obs: dict) -> th.Tensor:
        cand = th.stack([obs[k] for k in self.candidate_keys], dim=-1)            # (B, C, F)
        expert = obs["expert"][:, None, :].expand(-1, cand.shape[1], -1)
        h = self.encoder(th.cat([cand, expert], dim=-1))                      # (B, C, H)
        if self.attention is not None:
            # A masked candidate is never attended to (the mask is never all zeros).
            h = self.attention(h, src_key_padding_mask=obs["action_mask"] < 0.5)
        mask = obs["action_mask"][..., None]
        mean = (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        peak = h.max(dim=1).values
        logits = self.scorer(th.cat([h, mean[:, None, :].expand_as(h)], dim=-1))[..., 0]
        return th.cat([logits, mean, peak], dim=-1)


class TakeLogits(nn.Module):
    """Action head: the extractor's first C features are already the candidates' logits."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return latent[:, : self.n]


def _candidate_defaults(kwargs: dict) -> dict:
    kwargs.setdefault("features_extractor_class", CandidateExtractor)
    kwargs.setdefault("net_arch", {"pi": [], "vf": [64, 64]})
    return kwargs


def take_logits_head(policy: ActorCriticPolicy | MaskableActorCriticPolicy, lr_schedule) -> None:
    """After SB3 builds the policy: the action head reads the extractor's logits as they are
    (a pointer head), and the optimiser is rebuilt over the parameters that remain."""
    assert isinstance(policy.action_space, spaces.Discrete)
    policy.action_net = TakeLogits(int(policy.action_space.n))
    policy.optimizer = policy.optimizer_class(policy.parameters(), lr=lr_schedule(1),  # type: ignore[call-arg]
                                              **policy.optimizer_kwargs)


class CandidateMaskablePolicy(MaskableActorCriticPolicy):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **_candidate_defaults(kwargs))

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        take_logits_head(self, lr_schedule)


class CandidatePolicy(ActorCriticPolicy):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **_candidate_defaults(kwargs))

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        take_logits_head(self, lr_schedule)
