"""Saving and loading one adapter (and its head copy): safetensors + JSON, PEFT's file names.
Part of ``ftlab.methods.adapters``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch

from ...errors import FtlabError
from .config import AdapterConfig
from .model import _registry, active_adapter, adapter_state_dict, apply_adapters, delete_adapter

CONFIG_NAME, WEIGHTS_NAME = "adapter_config.json", "adapter_model.safetensors"


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


def adapter_size_mb(model, name: str | None = None) -> float:
    """Megabytes one saved adapter takes (weights file), measured by saving it to a temporary folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return (save_adapter(model, tmp, name) / WEIGHTS_NAME).stat().st_size / 2**20
