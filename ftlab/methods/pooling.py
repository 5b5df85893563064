"""Sentence vectors from token vectors, shared by the methods that put a head on an encoder.

all-MiniLM-L6-v2 was trained with mean pooling; its BERT pooler (the CLS head) never was. Pooling the way
the encoder was trained gives every method the same, sensible head (taught in notebooks 05 and 09).
"""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding: (B, T, H), (B, T) -> (B, H)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
