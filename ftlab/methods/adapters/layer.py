"""The adapter layers: ``Adapter`` (the bottleneck), ``AdapterLinear`` (wraps an output projection) and
``HeadCopies`` (one head per adapter). Part of ``ftlab.methods.adapters``; torch only."""

from __future__ import annotations

import torch
from torch import nn

from .config import ACTIVATIONS, AdapterConfig


class Adapter(nn.Module):
    """``h + scaling · up(act(down(h)))``: a residual bottleneck, identity at initialisation.

    ``(B, T, d) → down → (B, T, m) → act → up → (B, T, d)``, plus the input (the residual).
    """

    def __init__(self, hidden_size: int, config: AdapterConfig):
        super().__init__()
        self.adapter_down = nn.Linear(hidden_size, config.bottleneck)
        self.act = ACTIVATIONS[config.non_linearity]()
        self.adapter_up = nn.Linear(config.bottleneck, hidden_size)
        self.scaling = config.scaling
        # down: small random (its gradient needs a non-zero up, and up's gradient needs a non-zero down)
        nn.init.normal_(self.adapter_down.weight, std=config.init_scale)
        nn.init.zeros_(self.adapter_down.bias)
        nn.init.zeros_(self.adapter_up.weight)  # up = 0: the branch adds exactly nothing at the start
        nn.init.zeros_(self.adapter_up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.scaling * self.adapter_up(self.act(self.adapter_down(h)))


class AdapterLinear(nn.Module):
    """Wraps an output projection: ``adapter(linear(x))`` with the active adapter, ``linear(x)`` with none."""

    def __init__(self, base_layer: nn.Linear):
        super().__init__()
        self.base_layer = base_layer
        self.adapters = nn.ModuleDict()
        self.active_adapter: str | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base_layer(x)
        if self.active_adapter in self.adapters:
            h = self.adapters[self.active_adapter](h)
        return h


class HeadCopies(nn.Module):
    """One classification head per adapter (PEFT's ``modules_to_save``); the original stays frozen."""

    def __init__(self, original: nn.Module):
        super().__init__()
        self.original_module = original
        self.heads = nn.ModuleDict()
        self.active_adapter: str | None = None

    def forward(self, *args, **kwargs):
        head = self.heads[self.active_adapter] if self.active_adapter in self.heads else self.original_module
        return head(*args, **kwargs)
