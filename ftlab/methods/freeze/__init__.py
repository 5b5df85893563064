"""Partial fine-tuning: choose which blocks (and which modules inside them) train; freeze the rest.

Taught in notebooks/02_freezing.ipynb. Imports torch (and transformers' ``TrainerCallback``, lazily) only.

One package, split by job: ``core`` (freeze, unfreeze_all, param_groups, resolve_layers), ``report``
(FreezeReport, freeze_report, training_memory_mb), ``schedules`` (strategies, adaptive heuristic, gradual
unfreezing). Where the blocks and the head are comes from ``ftlab.methods.blocks``, shared with the
other methods; every name below stays importable as ``ftlab.methods.freeze.<name>``.

The knobs follow LLaMA-Factory's freeze tuning so its users recognise them:

- ``layers`` ~ ``freeze_trainable_layers``: ``+n`` trains the last n blocks, ``-n`` the first n; a list,
  ``range`` or ``slice`` of indices picks any blocks, middle ones included (``[2, 3]``, ``range(2, 4)``);
- ``modules`` ~ ``freeze_trainable_modules``: inside the chosen blocks, only parameters whose name matches
  one of these patterns train (``["attention"]``, ``["mlp"]``; default: the whole block);
- ``extra`` ~ ``freeze_extra_modules``: parameters outside the blocks that train too (``["pooler"]``,
  ``["embeddings"]``, ``["norm"]``);
- the task head (everything the task model adds around ``model.base_model``) trains by default.

A pattern is a regular expression searched in the parameter's dotted name, so a plain word matches as a
substring. Every call returns a ``FreezeReport`` that says what trains and what was frozen.

Strategies taught in the notebook (``strategy_layers``): head only, last n blocks, bottom-up (freeze the
lower half), top-down (freeze the upper half), alternating, adaptive (``adaptive_num_layers``), and
gradual unfreezing (``gradual_unfreezing_callback``; Howard & Ruder 2018, ULMFiT).
"""

from ..blocks import BLOCK_PATHS, find_blocks, head_names, num_blocks
from .core import freeze, param_groups, resolve_layers, unfreeze_all
from .report import FreezeReport, freeze_report, group_of, training_memory_mb
from .schedules import (STRATEGIES, adaptive_num_layers, gradual_unfreezing_callback, strategy_layers,
                        unfreezing_schedule)

__all__ = ["BLOCK_PATHS", "STRATEGIES", "FreezeReport", "adaptive_num_layers", "find_blocks", "freeze", "freeze_report",
           "gradual_unfreezing_callback", "group_of", "head_names", "num_blocks", "param_groups", "resolve_layers",
           "strategy_layers", "training_memory_mb", "unfreeze_all", "unfreezing_schedule"]
