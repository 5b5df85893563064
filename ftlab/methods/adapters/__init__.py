"""Bottleneck adapters: small trainable modules inside a frozen model. Taught in notebook 03.

PEFT has no bottleneck adapter (its issue #244 is open), so this is one, small and PEFT-shaped:
``AdapterConfig`` (the settings), ``Adapter`` (the layer), ``apply_adapters`` (inject into a model), plus
``set_active`` for several named adapters on one base and ``save_adapter`` / ``load_adapter``
(safetensors + JSON, the adapter and its classification head only).

Laid out as PEFT lays out a tuner: ``config`` (AdapterConfig), ``layer`` (Adapter, AdapterLinear,
HeadCopies), ``model`` (apply_adapters, set_active, delete_adapter …), ``save_load`` (save_adapter,
load_adapter). Every name stays importable as ``ftlab.methods.adapters.<name>``. Where the blocks and
the head are comes from ``ftlab.methods.blocks``.

- Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP": an adapter after the attention
  output and after the feed-forward output of every block.
- Pfeiffer et al. 2021, "AdapterFusion": after the feed-forward output only (half the parameters, about
  the same accuracy).

An adapter is ``h + up(act(down(h)))``. ``up`` starts at zero, so before training the adapted model computes
exactly what the base model computes (Houlsby's near-identity initialisation).
"""

from .config import ACTIVATIONS, PLACEMENTS, SUPPORTED, AdapterConfig, adapter_parameter_count
from .layer import Adapter, AdapterLinear, HeadCopies
from .model import (active_adapter, adapter_names, adapter_state_dict, apply_adapters, base_checksum, delete_adapter,
                    set_active)
from .save_load import CONFIG_NAME, WEIGHTS_NAME, adapter_size_mb, load_adapter, save_adapter

__all__ = ["ACTIVATIONS", "CONFIG_NAME", "PLACEMENTS", "SUPPORTED", "WEIGHTS_NAME", "Adapter", "AdapterConfig",
           "AdapterLinear", "HeadCopies", "active_adapter", "adapter_names", "adapter_parameter_count",
           "adapter_size_mb", "adapter_state_dict", "apply_adapters", "base_checksum", "delete_adapter", "load_adapter",
           "save_adapter", "set_active"]
