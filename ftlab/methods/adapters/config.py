"""Adapter settings: ``AdapterConfig`` and the parameter count it implies. Part of ``ftlab.methods.adapters``."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ...errors import FtlabError

PLACEMENTS = ("houlsby", "pfeiffer")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
SUPPORTED = ("BERT-style encoders (BERT, RoBERTa, MiniLM: the .dense of each *SelfOutput and *Output block) "
             "and Llama-style decoders (Llama, Mistral, Qwen2, SmolLM2: self_attn.o_proj and mlp.down_proj)")


@dataclass
class AdapterConfig:
    bottleneck: int = 64  # width of the down-projection (Houlsby's m); trainable ≈ 2·d·m per adapter
    non_linearity: str = "relu"  # between down and up: relu | gelu | silu | tanh
    placement: str = "pfeiffer"  # "houlsby": after attention and feed-forward; "pfeiffer": feed-forward only
    init_scale: float = 1e-2  # std of the down-projection; up is zero, so the start is exactly the identity
    scaling: float = 1.0  # multiplies the adapter's branch (like LoRA's alpha / r)
    target_modules: list[str] | None = None  # None: chosen by placement; else Linear names (suffix match)
    train_head: bool = True  # a trainable copy of the classification head per adapter
    extra: dict = field(default_factory=dict)  # free-form notes saved with the adapter

    def __post_init__(self):
        if self.placement not in PLACEMENTS:
            raise FtlabError(f"Unknown placement {self.placement!r}; choose 'houlsby' (after attention and "
                             "feed-forward) or 'pfeiffer' (after feed-forward only).")
        if self.non_linearity not in ACTIVATIONS:
            raise FtlabError(f"Unknown non_linearity {self.non_linearity!r}; choose one of {', '.join(ACTIVATIONS)}.")
        if not isinstance(self.bottleneck, int) or self.bottleneck < 1:
            raise FtlabError(f"bottleneck must be a positive integer; got {self.bottleneck!r}.")


def adapter_parameter_count(hidden_size: int, bottleneck: int, num_layers: int, placement: str = "pfeiffer") -> int:
    """Trainable parameters of the adapters alone: per adapter 2·d·m + m + d (two Linear layers with bias)."""
    if placement not in PLACEMENTS:
        raise FtlabError(f"Unknown placement {placement!r}; choose 'houlsby' or 'pfeiffer'.")
    per_layer = 2 if placement == "houlsby" else 1
    return num_layers * per_layer * (2 * hidden_size * bottleneck + bottleneck + hidden_size)
