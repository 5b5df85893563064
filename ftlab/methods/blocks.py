"""Where a transformers model keeps its stack of blocks and its task head: shared by the methods.

Floor 1, torch only. ``freeze`` chooses blocks to train, ``distill`` drops blocks to build a student,
``adapters`` wraps the output projections inside the blocks and copies the head; they all ask here, so
"the blocks" and "the head" mean the same thing in every method.
"""

from __future__ import annotations

from torch import nn

from ..errors import FtlabError

# Where common architectures keep their list of transformer blocks (relative to the task model).
BLOCK_PATHS = ("base_model.encoder.layer",  # BERT, RoBERTa, MiniLM, DeBERTa
               "base_model.layers",  # Llama, Qwen2, Mistral, SmolLM2 (model.model.layers)
               "base_model.h",  # GPT-2, GPT-J (transformer.h)
               "base_model.decoder.layers",  # OPT
               "base_model.transformer.layer",  # DistilBERT
               "base_model.encoder.block")  # T5 encoder


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _unwrap(model):
    """The transformers model inside a PEFT wrapper (its ``base_model.model``), else the model itself."""
    inner = getattr(getattr(model, "base_model", None), "model", None)
    return inner if type(model).__name__.startswith("Peft") and isinstance(inner, nn.Module) else model


def find_blocks(model) -> tuple[str, nn.ModuleList]:
    """``(name, blocks)``: the model's list of transformer blocks and its dotted name inside ``model``.

    Tries the known places (``BLOCK_PATHS``), then falls back to the longest ``nn.ModuleList`` whose
    members all share one class: that is what a stack of transformer blocks looks like in any model.
    A PEFT model is unwrapped first, so the name is relative to the transformers model inside it.
    """
    model = _unwrap(model)
    names = {id(m): n for n, m in model.named_modules()}
    for path in BLOCK_PATHS:
        blocks = _get(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) and id(blocks) in names:
            return names[id(blocks)], blocks
    stacks = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.ModuleList) and len(m) > 1 and len({type(b) for b in m}) == 1]
    if not stacks:
        raise FtlabError(f"Found no list of transformer blocks in {type(model).__name__}: looked for "
                         f"{', '.join(BLOCK_PATHS)} and any nn.ModuleList of identical blocks. Its top-level "
                         f"modules are: {', '.join(n for n, _ in model.named_children())}.")
    return max(stacks, key=lambda s: len(s[1]))


def num_blocks(model) -> int:
    """How many transformer blocks the model stacks (MiniLM-L6: 6, SmolLM2-135M: 30)."""
    return len(find_blocks(model)[1])


def head_names(model, output_embeddings: bool = True) -> list[str]:
    """The task head: names of the top-level modules a task model adds around ``model.base_model``.

    ``classifier`` (BERT, RoBERTa), ``score`` (Llama-style sequence classification), ``lm_head`` (a causal
    LM), ``pre_classifier`` + ``classifier`` (DistilBERT); ``[]`` for a bare base model (``BertModel``).
    Only modules that hold parameters count (a dropout is not head). Names are relative to ``model`` as
    given: pass the transformers model, not a PEFT wrapper (``_unwrap`` it first).

    ``output_embeddings=False`` leaves out the vocabulary projection (``model.get_output_embeddings()``,
    the LM's ``lm_head``): it is the language model's own output layer rather than a task head, and when
    tied it is the input embedding matrix itself.
    """
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return []
    vocab = getattr(model, "get_output_embeddings", lambda: None)() if not output_embeddings else None
    names = []
    for name, child in model.named_children():
        if any(m is base for m in child.modules()) or (vocab is not None and child is vocab):
            continue
        if next(child.parameters(), None) is not None:
            names.append(name)
    return names
