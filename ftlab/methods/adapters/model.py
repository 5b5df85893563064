"""Putting adapters into a model: where they go, ``apply_adapters``, ``set_active``, ``delete_adapter``, and the
state of one adapter. Part of ``ftlab.methods.adapters``; torch only."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ...errors import FtlabError
from ..blocks import find_blocks, head_names
from .config import SUPPORTED, AdapterConfig
from .layer import Adapter, AdapterLinear, HeadCopies

# ---------------------------------------------------------------- where adapters go


def _output_projections(model) -> tuple[str, list[str], list[str]]:
    """(architecture, attention-output names, feed-forward-output names) of the Linear layers to wrap,
    searched inside the model's transformer blocks (``blocks.find_blocks``)."""
    try:
        blocks_name, blocks = find_blocks(model)
    except FtlabError:
        blocks_name, blocks = None, None
    attn, ffn = [], []
    for i, block in enumerate(blocks or []):
        for name, module in block.named_modules(prefix=f"{blocks_name}.{i}"):
            if isinstance(module, (AdapterLinear, HeadCopies)) or ".base_layer" in name:
                continue
            cls = type(module).__name__
            if cls.endswith("SelfOutput") and isinstance(getattr(module, "dense", None), (nn.Linear, AdapterLinear)):
                attn.append(f"{name}.dense")
            elif (cls.endswith("Output") and hasattr(module, "LayerNorm")
                  and isinstance(getattr(module, "dense", None), (nn.Linear, AdapterLinear))):
                ffn.append(f"{name}.dense")
            elif isinstance(getattr(module, "o_proj", None), (nn.Linear, AdapterLinear)):
                attn.append(f"{name}.o_proj")
            elif isinstance(getattr(module, "down_proj", None), (nn.Linear, AdapterLinear)):
                ffn.append(f"{name}.down_proj")
    arch = "bert" if any(n.endswith(".dense") for n in attn + ffn) else "llama" if attn or ffn else None
    if arch is None:
        raise FtlabError(f"Adapters support {SUPPORTED}; {type(model).__name__} has none of those blocks. "
                         "Name the output projections yourself with AdapterConfig(target_modules=[...]).")
    return arch, attn, ffn


def _linear_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".base_layer" not in n
            and ".adapters." not in n and ".heads." not in n]


def _targets(model, config: AdapterConfig) -> list[str]:
    if config.target_modules is None:
        _, attn, ffn = _output_projections(model)
        return sorted(ffn + (attn if config.placement == "houlsby" else []), key=_layer_order)
    modules = dict(model.named_modules())
    names = []
    for target in config.target_modules:
        hits = [n for n in modules if n == target or n.endswith("." + target)]
        hits = [n for n in hits if ".base_layer" not in n and ".adapters." not in n and ".heads." not in n]
        if not hits:
            linear = _linear_names(model)
            raise FtlabError(f"target_modules entry {target!r} matches no module of {type(model).__name__}. "
                             f"Its Linear layers include: {', '.join(linear[:8])}{' …' if len(linear) > 8 else ''}.")
        for n in hits:
            if not isinstance(modules[n], (nn.Linear, AdapterLinear)):
                raise FtlabError(f"Cannot put an adapter on {n!r}: it is a {type(modules[n]).__name__}, and adapters "
                                 f"wrap nn.Linear output projections. Supported: {SUPPORTED}.")
        names += hits
    return names


def _layer_order(name: str):
    return [int(p) if p.isdigit() else p for p in name.split(".")]


def _set(model, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _registry(model) -> dict:
    if not hasattr(model, "ftlab_adapters"):
        model.ftlab_adapters = {}  # name -> AdapterConfig; a plain attribute, not a parameter
    return model.ftlab_adapters


# ---------------------------------------------------------------- apply, switch, count


def apply_adapters(model, config: AdapterConfig | None = None, name: str = "default"):
    """Freeze ``model`` and add an adapter called ``name`` (plus its own classification head); return ``model``.

    Call again with another ``name`` to add a second adapter to the same frozen base: the new one becomes
    active and the only trainable part (``set_active`` switches). Works in place, like PEFT's
    ``inject_adapter_in_model``; the model stays a normal transformers model for ``fl.train``.
    """
    config = config or AdapterConfig()
    registry = _registry(model)
    if name in registry:
        raise FtlabError(f"An adapter called {name!r} exists already (adapters: {', '.join(registry)}); "
                         "choose another name.")
    targets = _targets(model, config)
    for p in model.parameters():
        p.requires_grad_(False)
    for target in targets:
        module = model.get_submodule(target)
        if not isinstance(module, AdapterLinear):
            module = AdapterLinear(module)
            _set(model, target, module)
        w = module.base_layer.weight
        module.adapters[name] = Adapter(module.base_layer.out_features, config).to(device=w.device, dtype=w.dtype)
    # the task head (classifier, score …), not the LM's vocabulary projection: one trainable copy per adapter
    for head in head_names(model, output_embeddings=False) if config.train_head else []:
        wrapper = getattr(model, head)
        if not isinstance(wrapper, HeadCopies):
            wrapper = HeadCopies(wrapper)
            setattr(model, head, wrapper)
        wrapper.heads[name] = copy.deepcopy(wrapper.original_module)
    registry[name] = config
    set_active(model, name)
    return model


def _wrappers(model):
    return [m for m in model.modules() if isinstance(m, (AdapterLinear, HeadCopies))]


def set_active(model, name: str | None):
    """Route the forward pass through adapter ``name`` (and its head); ``None`` = the base model alone.

    The active adapter and its head become the only trainable parameters (as PEFT's ``set_adapter``).
    """
    registry = _registry(model)
    if name is not None and name not in registry:
        raise FtlabError(f"No adapter called {name!r}; this model has: {', '.join(registry) or 'none'} "
                         "(add one with apply_adapters(model, config, name=...)).")
    for wrapper in _wrappers(model):
        wrapper.active_adapter = name
        parts = wrapper.adapters if isinstance(wrapper, AdapterLinear) else wrapper.heads
        for key, part in parts.items():
            part.requires_grad_(key == name)
    model.ftlab_active_adapter = name
    return model


def active_adapter(model) -> str | None:
    return getattr(model, "ftlab_active_adapter", None)


def adapter_names(model) -> list[str]:
    return list(_registry(model))


def adapter_state_dict(model, name: str | None = None) -> dict[str, torch.Tensor]:
    """The tensors of one adapter and its head, with the adapter's name taken out of the keys."""
    name = name or active_adapter(model)
    if name not in _registry(model):
        raise FtlabError(f"No adapter called {name!r}; this model has: {', '.join(_registry(model)) or 'none'}.")
    state = {}
    for key, value in model.state_dict().items():
        for part in (".adapters.", ".heads."):
            marker = f"{part}{name}."
            if marker in key:
                state[key.replace(marker, part)] = value.detach().clone().contiguous()
    return state


def base_checksum(model) -> str:
    """A fingerprint of the base weights alone (adapters and head copies left out), stable under wrapping.

    Equal before and after training adapters = the shared base was not touched.
    """
    import hashlib

    digest, state = hashlib.sha256(), model.state_dict()
    names = {k.replace(".base_layer.", ".").replace(".original_module.", "."): k for k in state
             if ".adapters." not in k and ".heads." not in k}
    for plain in sorted(names):
        digest.update(plain.encode())
        digest.update(state[names[plain]].detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def delete_adapter(model, name: str) -> None:
    """Remove adapter ``name`` (and its head); the base model and the other adapters stay as they are."""
    registry = _registry(model)
    if name not in registry:
        raise FtlabError(f"No adapter called {name!r}; this model has: {', '.join(registry) or 'none'}.")
    for wrapper in _wrappers(model):
        parts = wrapper.adapters if isinstance(wrapper, AdapterLinear) else wrapper.heads
        if name in parts:
            del parts[name]
    del registry[name]
    if active_adapter(model) == name:
        set_active(model, None)
