"""LoRA and AdaLoRA: a trainable low-rank update ``(alpha / r) * B @ A`` beside frozen Linear weights.

Taught in notebook 06. Names follow PEFT (``r``, ``lora_alpha``, ``lora_A``, ``lora_B``, ``scaling``) so
the from-scratch ``LoraLinear`` lines up one to one with ``peft.LoraConfig`` (checked in tests/test_lora.py).

- LoRA: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models" (A random, B zero, so
  training starts from the unchanged model).
- AdaLoRA: Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning" (an SVD-like
  ``P diag(E) Q`` per layer; unimportant singular values are pruned so the rank budget moves to the layers
  that need it). PEFT does the pruning in ``update_and_allocate``, which must run after every optimiser
  step: ``method_callbacks`` returns the Trainer callback that calls it (``finetune_classifier`` attaches it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import FtlabError
from .blocks import head_names


# ---------------------------------------------------------------- LoRA from scratch


class LoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus ``(lora_alpha / r) * B @ A``: ``h = W x + b + scaling * B (A x)``.

    ``lora_alpha`` defaults to ``2 * r`` (scaling 2), the same default as ``lora_config``, so the two agree
    at every rank.
    """

    def __init__(self, base: nn.Linear, r: int = 8, lora_alpha: float | None = None):
        super().__init__()
        lora_alpha = 2 * r if lora_alpha is None else lora_alpha
        self.base_layer = base.requires_grad_(False)
        self.r, self.lora_alpha, self.scaling = r, lora_alpha, lora_alpha / r
        self.lora_A = nn.Linear(base.in_features, r, bias=False)  # (r, in): random, as PEFT (kaiming uniform)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)  # (out, r): zero, so B @ A = 0 at the start
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):  # x: (..., in)
        return self.base_layer(x) + self.lora_B(self.lora_A(x)) * self.scaling  # (..., out)

    def delta_weight(self) -> torch.Tensor:
        """The update LoRA adds to W, (out, in); merging is ``W += delta_weight()``."""
        return self.scaling * self.lora_B.weight @ self.lora_A.weight


def apply_lora(model: nn.Module, target_modules, r: int = 8, lora_alpha: float | None = None) -> nn.Module:
    """Freeze ``model`` and replace each targeted Linear by a ``LoraLinear`` (in place; returns the model).

    ``lora_alpha`` defaults to ``2 * r``, as in ``lora_config``.

    Checked first like ``lora_config``: a rank larger than a layer or targets that match nothing raise.
    """
    names = check_lora(model, r, target_modules)
    model.requires_grad_(False)
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, LoraLinear(getattr(owner, child), r, lora_alpha))
    return model


# ---------------------------------------------------------------- checks shared with PEFT configs


def linear_module_names(model: nn.Module) -> list[str]:
    """Full names of every ``nn.Linear`` in ``model`` (what LoRA can wrap)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def short_linear_names(model: nn.Module) -> list[str]:
    """The distinct last parts of the Linear names (``query``, ``value``, ``q_proj`` …): what ``target_modules`` lists."""
    return sorted({n.rpartition(".")[2] for n in linear_module_names(model)})


def _matches(name: str, target_modules) -> bool:
    """PEFT's rule: a string is a regex matched in full; a list matches a name equal to or ending in ``.item``."""
    if isinstance(target_modules, str):
        import re

        return re.fullmatch(target_modules, name) is not None
    return any(name == t or name.endswith("." + t) for t in target_modules)


def target_names(model: nn.Module, target_modules) -> list[str]:
    """The Linear modules ``target_modules`` selects (``"all-linear"``: all but the output/classifier head)."""
    linear = linear_module_names(model)
    if isinstance(target_modules, str) and target_modules.lower() == "all-linear":
        return [n for n in linear if n.split(".", 1)[0] not in head_names(model)]  # heads train whole, as in PEFT
    if not target_modules:
        raise FtlabError(f"target_modules is empty; name some of this model's Linear layers: "
                         f"{', '.join(short_linear_names(model))} (or 'all-linear').")
    return [n for n in linear if _matches(n, target_modules)]


def _shape(linear: nn.Module) -> tuple[int, int]:
    """(out, in) of a Linear layer; a 4-bit layer stores its weight packed (e.g. 2048x1), so ask the layer."""
    if hasattr(linear, "out_features") and hasattr(linear, "in_features"):
        return linear.out_features, linear.in_features
    return tuple(linear.weight.shape)


def check_lora(model: nn.Module, r: int, target_modules) -> list[str]:
    """The targeted Linear names; ``FtlabError`` when nothing matches or ``r`` exceeds a layer's size.

    A rank above ``min(in, out)`` adds parameters but no expressiveness: ``B @ A`` can never exceed the
    rank of the layer itself.
    """
    if not isinstance(r, int) or r < 1:
        raise FtlabError(f"The LoRA rank r must be a positive integer; got {r!r}.")
    names = target_names(model, target_modules)
    if not names:
        raise FtlabError(f"target_modules={target_modules!r} matches no Linear layer of {type(model).__name__}. "
                         f"Its Linear layers are named: {', '.join(short_linear_names(model))} "
                         f"(e.g. {linear_module_names(model)[0]!r}); or use 'all-linear'.")
    shapes = {n: _shape(model.get_submodule(n)) for n in names}
    too_small = {n: shape for n, shape in shapes.items() if r > min(shape)}
    if too_small:
        name, shape = next(iter(too_small.items()))
        limit = min(min(s) for s in too_small.values())
        raise FtlabError(f"Rank r={r} is larger than {len(too_small)} targeted layer(s), e.g. {name!r} with weight "
                         f"{shape[0]}x{shape[1]}: a rank-{r} update of that matrix cannot exist. "
                         f"Use r <= {limit}, or target larger layers.")
    return names


def lora_config(model: nn.Module, r: int = 8, lora_alpha: float | None = None, target_modules=("query", "value"),
                task_type: str = "SEQ_CLS", lora_dropout: float = 0.0, **kwargs):
    """A checked ``peft.LoraConfig`` for ``model``; ``lora_alpha`` defaults to ``2 * r`` (scaling 2)."""
    from peft import LoraConfig

    check_lora(model, r, target_modules)
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    return LoraConfig(task_type=task_type, r=r, lora_alpha=2 * r if lora_alpha is None else lora_alpha,
                      target_modules=targets, lora_dropout=lora_dropout, **kwargs)


def adalora_config(model: nn.Module, total_step: int, init_r: int = 12, target_r: int = 4,
                   target_modules=("query", "value"), tinit: int | None = None, tfinal: int | None = None,
                   deltaT: int | None = None, task_type: str = "SEQ_CLS", lora_alpha: float = 32, **kwargs):
    """A checked ``peft.AdaLoraConfig``: start every layer at ``init_r``, end at ``target_r`` on average.

    ``total_step`` must be the number of optimiser steps you will train. Default schedule: warm up for
    the first 10 %, prune ranks until the last 20 %, re-allocate every ~5 % of the steps.
    """
    from peft import AdaLoraConfig

    check_lora(model, init_r, target_modules)
    if not isinstance(total_step, int) or total_step < 3:
        raise FtlabError(f"AdaLoRA needs total_step = the number of training steps (at least 3); got {total_step!r}.")
    if target_r > init_r:
        raise FtlabError(f"target_r ({target_r}) must not exceed init_r ({init_r}): AdaLoRA only removes rank.")
    tinit = max(1, total_step // 10) if tinit is None else tinit
    tfinal = max(1, total_step // 5) if tfinal is None else tfinal
    deltaT = max(1, total_step // 20) if deltaT is None else deltaT
    if tinit >= total_step - tfinal:
        raise FtlabError(f"AdaLoRA's schedule has no room: tinit ({tinit}) must be < total_step - tfinal "
                         f"({total_step} - {tfinal} = {total_step - tfinal}). Train longer or shorten tinit/tfinal.")
    # a string ("all-linear", a regex) goes to PEFT as it is; list("all-linear") would be single letters
    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    return AdaLoraConfig(task_type=task_type, init_r=init_r, target_r=target_r, tinit=tinit, tfinal=tfinal,
                         deltaT=deltaT, total_step=total_step, lora_alpha=lora_alpha,
                         target_modules=targets, **kwargs)


def method_callbacks(model) -> list:
    """The Trainer callbacks ``model``'s PEFT method needs in the loop: for AdaLoRA, ``update_and_allocate``.

    Pass them to ``ftlab.train(..., callbacks=...)``; ``finetune_classifier`` adds them itself. AdaLoRA
    re-allocates its rank budget in ``update_and_allocate``, which must run after every optimiser step while
    the gradients still exist; without the call it silently trains as plain LoRA at ``init_r``. Other
    models: ``[]``.
    """
    from transformers import TrainerCallback

    configs = getattr(model, "peft_config", None) or {}
    if not any(str(getattr(c, "peft_type", "")).endswith("ADALORA") for c in configs.values()):
        return []

    class AdaLoraUpdateAndAllocate(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kw):  # after step(), before zero_grad()
            model.base_model.update_and_allocate(state.global_step)

    return [AdaLoraUpdateAndAllocate()]


# ---------------------------------------------------------------- counting and inspecting


def lora_parameter_count(model: nn.Module, r: int, target_modules) -> int:
    """Parameters LoRA adds: ``r * (in + out)`` per targeted Linear (classifier head not included)."""
    return sum(r * sum(model.get_submodule(n).weight.shape) for n in check_lora(model, r, target_modules))


def _short(name: str) -> str:
    """``base_model.model.bert.encoder.layer.3.attention.self.query.lora_E.default`` -> ``layer.3.query``."""
    parts = name.split(".")
    for marker in ("lora_E", "lora_A"):
        if marker in parts:
            parts = parts[:parts.index(marker)]
    layer = next((f"{parts[i]}.{parts[i + 1]}" for i in range(len(parts) - 1)
                  if parts[i] in ("layer", "layers", "h", "block") and parts[i + 1].isdigit()), "")
    return f"{layer}.{parts[-1]}" if layer else parts[-1]


def adalora_rank_pattern(model, adapter: str = "default") -> dict[str, int]:
    """Current rank of each AdaLoRA layer, by short name (e.g. ``layer.3.query``).

    Before the first budget step every layer has ``init_r``; afterwards PEFT keeps a boolean mask per layer
    in ``peft_config[adapter].rank_pattern`` and the rank is the count of kept singular values.
    """
    config = getattr(model, "peft_config", {}).get(adapter)
    if config is None or not str(config.peft_type).endswith("ADALORA"):
        raise FtlabError("adalora_rank_pattern needs a PEFT model built with AdaLoraConfig.")
    pattern = config.rank_pattern
    if pattern:
        return {_short(k): int(sum(v)) for k, v in pattern.items()}
    return {_short(n): p.shape[0] for n, p in model.named_parameters() if ".lora_E." in n and n.endswith(adapter)}


def low_rank_error(weight: torch.Tensor, r: int) -> float:
    """Relative Frobenius error of the best rank-``r`` approximation of ``weight`` (Eckart-Young: drop all
    but the ``r`` largest singular values). 0 = exact; 1 = nothing captured."""
    s = torch.linalg.svdvals(weight.detach().float())
    return (s[r:].square().sum() / s.square().sum()).sqrt().item()
