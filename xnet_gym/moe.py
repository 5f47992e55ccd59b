"""Mixture-of-experts model specifications, their presets, and their FLOP counts per token.

FLOP counts follow docs/model.md: 2 FLOP per multiply-accumulate; attention counts the
Q, K, V, O projections (8 d^2), an expert is a SwiGLU FFN (3 matrices of d x d_ff: 6 d d_ff),
the LM head is 2 d vocab.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import ScenarioError, check_int, field_error

MAX_MODEL_SIZE = 1 << 24        # any one dimension; keeps FLOP counts and message sizes finite


@dataclass(frozen=True)
class MoESpec:
    name: str
    layers: int
    experts: int
    top_k: int
    hidden_size: int
    expert_ff_size: int
    vocab_size: int
    bytes_per_value: int = 2

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise field_error(ScenarioError, "model.name", self.name, "must be a string")
        for key in ("layers", "experts", "top_k", "hidden_size", "expert_ff_size", "vocab_size",
                    "bytes_per_value"):
            check_int(ScenarioError, f"model.{key}", getattr(self, key), 1, MAX_MODEL_SIZE)
        if self.top_k > self.experts:
            raise field_error(ScenarioError, "model.top_k", self.top_k,
                              f"must be <= model.experts ({self.experts})")

    @property
    def attn_flops(self) -> float:
        return 8.0 * self.hidden_size**2

    @property
    def expert_flops(self) -> float:
        return 6.0 * self.hidden_size * self.expert_ff_size

    @property
    def lm_head_flops(self) -> float:
        return 2.0 * self.hidden_size * self.vocab_size

    @property
    def message_bits(self) -> float:
        """Size of one hidden-state vector on an ISL."""
        return float(self.hidden_size * self.bytes_per_value * 8)

    def to_dict(self) -> dict:
        return asdict(self)


# LLaMA-MoE-3.5B splits LLaMA-2-7B's FFN (11008) into 8 x 1376 or 16 x 688 experts.
PRESETS: dict[str, MoESpec] = {
    spec.name: spec
    for spec in (
        MoESpec("llama-moe-3.5b-2of8", 32, 8, 2, 4096, 1376, 32000),
        MoESpec("llama-moe-3.5b-4of16", 32, 16, 4, 4096, 688, 32000),
        MoESpec("llama-moe-3.0b-2of16", 32, 16, 2, 4096, 688, 32000),
        MoESpec("mixtral-8x7b", 32, 8, 2, 4096, 14336, 32000),
        MoESpec("deepseek-v2-lite", 26, 64, 6, 2048, 1408, 102400),
        MoESpec("tiny", 3, 4, 2, 64, 128, 1000),
    )
}


def model_preset(name: str) -> MoESpec:
    try:
        return PRESETS[name]
    except KeyError:
        raise field_error(ScenarioError, "model.preset", name,
                          f"unknown model preset; allowed: {', '.join(sorted(PRESETS))}") from None
