"""Freezing by block: which blocks (and which modules inside them) train, the rest ``requires_grad=False``.

Part of ``ftlab.methods.freeze`` (see its docstring for the knobs); torch only.
"""

from __future__ import annotations

import re

from torch import nn

from ...errors import FtlabError
from ..blocks import _unwrap, find_blocks
from .report import FreezeReport, _head_params, _unique_params, freeze_report


def resolve_layers(spec, n: int) -> list[int]:
    """Block indices (sorted, unique) from a ``layers`` spec, for a model with ``n`` blocks.

    ``None`` or ``0``: none. ``"all"``: all. ``+k``: the last k. ``-k``: the first k (LLaMA-Factory's
    ``freeze_trainable_layers``). A list / tuple / ``range`` of indices, or a ``slice``: exactly those
    (negative indices count from the end, as in Python).
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec == "all":
            return list(range(n))
        raise FtlabError(f"layers={spec!r}: use an int (+k last k, -k first k), 'all', a list/range of "
                         f"indices or a slice; this model has {n} blocks (0–{n - 1}).")
    if isinstance(spec, bool):
        raise FtlabError("layers=True/False is ambiguous: use 'all', None, +k, -k or a list of indices.")
    if isinstance(spec, int):
        if abs(spec) > n:
            raise FtlabError(f"layers={spec:+d} asks for {abs(spec)} blocks, but this model has {n} blocks "
                             f"(0–{n - 1}); use a value between -{n} and +{n}.")
        return list(range(n - spec, n)) if spec > 0 else list(range(-spec))
    if isinstance(spec, slice):
        return list(range(n))[spec]
    try:
        indices = [int(i) for i in spec]
    except TypeError:
        raise FtlabError(f"layers={spec!r} is not an int, a list of indices, a range or a slice.") from None
    bad = [i for i in indices if not -n <= i < n]
    if bad:
        raise FtlabError(f"Layer index {bad[0]} is out of range: this model has {n} blocks, indices 0–{n - 1} "
                         f"(or -{n}…-1 from the end).")
    return sorted({i % n for i in indices})


def _module_names(prefix: str, module: nn.Module, limit: int = 12) -> str:
    names = [n for n, m in module.named_modules() if n and list(m.parameters(recurse=False))]
    shown = ", ".join(names[:limit]) + (" …" if len(names) > limit else "")
    return f"{prefix}{shown}"


def freeze(model, layers=None, modules=None, extra=None, train_head: bool = True,
           verbose: bool = True) -> FreezeReport:
    """Freeze ``model`` in place so that only the chosen blocks / modules / head train; return the report.

    ``layers``: which blocks train (see ``resolve_layers``: ``+n`` last n, ``-n`` first n, a list, range
    or slice, ``"all"``; ``None`` = no block). ``modules``: patterns; inside the chosen blocks only
    matching parameters train (``None`` = the whole block). ``extra``: patterns for parameters outside the
    blocks that train too (e.g. ``["pooler"]``). ``train_head``: keep the task head trainable (default).

    Everything else gets ``requires_grad=False``: no gradient, no optimizer state, and no backward pass
    below the lowest trainable parameter. A pattern that matches nothing raises ``FtlabError``.
    """
    inner = _unwrap(model)
    blocks_name, blocks = find_blocks(inner)
    chosen = resolve_layers(layers, len(blocks))
    modules = [modules] if isinstance(modules, str) else list(modules or [])
    extra = [extra] if isinstance(extra, str) else list(extra or [])
    head = _head_params(inner) if train_head else set()

    prefix = blocks_name + "."
    block_of = {}
    for name, _ in inner.named_parameters():
        if name.startswith(prefix):
            block_of[name] = int(name[len(prefix):].split(".")[0])
    used = {pat: False for pat in modules + extra}
    for name, p in inner.named_parameters():
        if name in block_of:
            train = block_of[name] in chosen
            if train and modules:
                inside = name[len(prefix):].split(".", 1)[1]  # name within the block
                hits = [pat for pat in modules if re.search(pat, inside)]
                for pat in hits:
                    used[pat] = True
                train = bool(hits)
            elif modules:  # count a pattern as valid if it exists in any block
                inside = name[len(prefix):].split(".", 1)[1]
                for pat in modules:
                    used[pat] = used[pat] or bool(re.search(pat, inside))
        else:
            hits = [pat for pat in extra if re.search(pat, name)]
            for pat in hits:
                used[pat] = True
            train = name in head or bool(hits)
        p.requires_grad_(train)
    for pat in modules:
        if not used[pat]:
            raise FtlabError(f"modules pattern {pat!r} matches no parameter inside a block. "
                             + _module_names("A block holds: ", blocks[0]))
    for pat in extra:
        if not used[pat]:
            outside = sorted({n.rsplit(".", 1)[0] for n, _ in inner.named_parameters() if n not in block_of})
            raise FtlabError(f"extra pattern {pat!r} matches no parameter outside the blocks. Outside the blocks "
                             f"there are: {', '.join(outside[:12])}{' …' if len(outside) > 12 else ''}.")
    report = freeze_report(inner)
    if verbose:
        print(report)
    return report


def unfreeze_all(model) -> None:
    """Make every parameter trainable again (full fine-tuning)."""
    for p in model.parameters():
        p.requires_grad_(True)


def param_groups(model, head_lr: float, block_lr: float, extra=None, weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups for discriminative learning rates (ULMFiT): the new head at ``head_lr``,
    every other trainable parameter (blocks, embeddings, norms) at ``block_lr``.

    Why: a freshly initialised head starts far from any solution and wants a large step, while pretrained
    blocks need only a nudge; one rate for both either wrecks the blocks or leaves the head barely moved.
    The head is the task head plus the parameters outside the blocks that match ``extra`` (e.g.
    ``["pooler"]``). Only parameters with ``requires_grad=True`` now are included, so call it after
    ``freeze`` (or after ``gradual_unfreezing_callback``, which marks every scheduled block trainable).
    Biases and norm weights (1-D tensors) get no weight decay, as in the Trainer's default optimizer.
    Use: ``torch.optim.AdamW(param_groups(m, 2e-3, 1e-4, extra=["pooler"]))`` and pass it to
    ``ftlab.train(..., optimizers=(opt, None))``; the Trainer's warm-up/decay schedule then scales each
    group's rate by the same factor.
    """
    inner = _unwrap(model)
    blocks_name, _ = find_blocks(inner)
    head = _head_params(inner)
    extra = [extra] if isinstance(extra, str) else list(extra or [])
    groups: dict[tuple[str, bool], list] = {}
    for name, p in _unique_params(inner):
        if not p.requires_grad:
            continue
        outside = not name.startswith(blocks_name + ".")
        is_head = name in head or (outside and any(re.search(pat, name) for pat in extra))
        groups.setdefault(("head" if is_head else "blocks", p.ndim >= 2), []).append(p)
    if not groups:
        raise FtlabError("No parameter of the model requires a gradient: freeze(...) left nothing to train.")
    lrs = {"head": head_lr, "blocks": block_lr}
    return [{"name": f"{part}{'' if decay else ' (no decay)'}", "params": params, "lr": lrs[part],
             "weight_decay": weight_decay if decay else 0.0}
            for (part, decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0] != "head", not kv[0][1]))]
