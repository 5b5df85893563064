"""Bottleneck adapters: small trainable modules inside a frozen model. Taught in notebook 03.

PEFT has no bottleneck adapter (its issue #244 is open), so this is one, small and PEFT-shaped:
``AdapterConfig`` (the settings), ``Adapter`` (the layer), ``apply_adapters`` (inject into a model), plus
``set_active`` for several named adapters on one base and ``save_adapter`` / ``load_adapter``
(safetensors + JSON, the adapter and its classification head only).

- Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP": an adapter after the attention
  output and after the feed-forward output of every block.
- Pfeiffer et al. 2021, "AdapterFusion": after the feed-forward output only (half the parameters, about
  the same accuracy).

An adapter is ``h + up(act(down(h)))``. ``up`` starts at zero, so before training the adapted model computes
exactly what the base model computes (Houlsby's near-identity initialisation).
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import FtlabError

PLACEMENTS = ("houlsby", "pfeiffer")
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}
HEADS = ("classifier", "score")  # BERT-style and Llama-style sequence-classification heads (PEFT's choice too)
SUPPORTED = ("BERT-style encoders (BERT, RoBERTa, MiniLM: the .dense of each *SelfOutput and *Output block) "
             "and Llama-style decoders (Llama, Mistral, Qwen2, SmolLM2: self_attn.o_proj and mlp.down_proj)")
CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"


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


# ---------------------------------------------------------------- where adapters go


def _blocks(model) -> tuple[str, list[str], list[str]]:
    """(architecture, attention-output names, feed-forward-output names) of the Linear layers to wrap."""
    attn, ffn = [], []
    for name, module in model.named_modules():
        if isinstance(module, (AdapterLinear, HeadCopies)) or ".base_layer" in name or ".original_module" in name:
            continue
        cls = type(module).__name__
        if cls.endswith("SelfOutput") and isinstance(getattr(module, "dense", None), (nn.Linear, AdapterLinear)):
            attn.append(_join(name, "dense"))
        elif (cls.endswith("Output") and hasattr(module, "LayerNorm")
              and isinstance(getattr(module, "dense", None), (nn.Linear, AdapterLinear))):
            ffn.append(_join(name, "dense"))
        elif isinstance(getattr(module, "o_proj", None), (nn.Linear, AdapterLinear)):
            attn.append(_join(name, "o_proj"))
        elif isinstance(getattr(module, "down_proj", None), (nn.Linear, AdapterLinear)):
            ffn.append(_join(name, "down_proj"))
    arch = "bert" if any(n.endswith(".dense") for n in attn + ffn) else "llama" if attn or ffn else None
    if arch is None:
        raise FtlabError(f"Adapters support {SUPPORTED}; {type(model).__name__} has none of those blocks. "
                         "Name the output projections yourself with AdapterConfig(target_modules=[...]).")
    return arch, attn, ffn


def _join(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def _linear_names(model) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".base_layer" not in n
            and ".adapters." not in n and ".heads." not in n]


def _targets(model, config: AdapterConfig) -> list[str]:
    if config.target_modules is None:
        _, attn, ffn = _blocks(model)
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


def _head_name(model) -> str | None:
    return next((h for h in HEADS if isinstance(getattr(model, h, None), nn.Module)), None)


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
    head = _head_name(model)
    if config.train_head and head is not None:
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


def adapter_parameter_count(hidden_size: int, bottleneck: int, num_layers: int, placement: str = "pfeiffer") -> int:
    """Trainable parameters of the adapters alone: per adapter 2·d·m + m + d (two Linear layers with bias)."""
    if placement not in PLACEMENTS:
        raise FtlabError(f"Unknown placement {placement!r}; choose 'houlsby' or 'pfeiffer'.")
    per_layer = 2 if placement == "houlsby" else 1
    return num_layers * per_layer * (2 * hidden_size * bottleneck + bottleneck + hidden_size)


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


# ---------------------------------------------------------------- save and load (safetensors + JSON)


def save_adapter(model, path, name: str | None = None) -> Path:
    """Write one adapter (and its head) to ``path``: adapter_model.safetensors + adapter_config.json."""
    from safetensors.torch import save_file

    name = name or active_adapter(model)
    state = adapter_state_dict(model, name)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path / WEIGHTS_NAME), metadata={"format": "pt", "ftlab_adapter": name})
    config = asdict(_registry(model)[name])
    info = {"name": name, "base_model_class": type(model).__name__,
            "hidden_size": getattr(model.config, "hidden_size", None) if hasattr(model, "config") else None}
    (path / CONFIG_NAME).write_text(json.dumps({**config, "ftlab": info}, indent=1) + "\n")
    return path


def load_adapter(model, path, name: str | None = None) -> str:
    """Add the adapter saved in ``path`` to ``model`` (its base must be the same) and activate it.

    Returns the adapter's name (the saved one unless ``name`` is given).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CONFIG_NAME).exists() or not (path / WEIGHTS_NAME).exists():
        raise FtlabError(f"{path.name!r} is not a saved adapter: it needs {CONFIG_NAME} and {WEIGHTS_NAME} "
                         "(written by save_adapter).")
    saved = json.loads((path / CONFIG_NAME).read_text())
    info = saved.pop("ftlab", {})
    name = name or info.get("name", "default")
    saved_for = info.get("base_model_class")
    if saved_for and saved_for != type(model).__name__:
        raise FtlabError(f"The adapter in {path.name!r} does not fit this model: it was saved for a {saved_for}, "
                         f"this is a {type(model).__name__}. Load it into the same base model.")
    state = load_file(str(path / WEIGHTS_NAME))
    apply_adapters(model, AdapterConfig(**saved), name=name)
    try:
        _copy_in(model, state, name, info, path)
    except FtlabError:
        delete_adapter(model, name)  # nothing half-loaded stays behind
        raise
    return name


def _copy_in(model, state: dict, name: str, info: dict, path: Path) -> None:
    own = model.state_dict()
    renamed = {}
    for key, value in state.items():
        for part in (".adapters.", ".heads."):
            key = key.replace(part, f"{part}{name}.", 1) if part in key else key
        renamed[key] = value
    missing = sorted(set(adapter_state_dict(model, name)) - set(state))
    unknown = [k for k in renamed if k not in own]
    if missing or unknown:
        raise FtlabError(f"The adapter in {path.name!r} does not fit this model (saved for "
                         f"{info.get('base_model_class')} with hidden size {info.get('hidden_size')}): "
                         f"{len(missing)} tensors missing, {len(unknown)} unknown. Load it into the same base model.")
    for key, value in renamed.items():
        if own[key].shape != value.shape:
            raise FtlabError(f"Tensor {key} has shape {tuple(value.shape)} in the file but {tuple(own[key].shape)} in "
                             "this model: the adapter was saved for a different base model.")
    with torch.no_grad():
        for key, value in renamed.items():
            own[key].copy_(value)


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


def adapter_size_mb(model, name: str | None = None) -> float:
    """Megabytes one saved adapter takes (weights file), measured by saving it to a temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return (save_adapter(model, tmp, name) / WEIGHTS_NAME).stat().st_size / 2**20
