"""Prefix tuning and P-tuning v2 for any model that accepts a key/value cache. Taught in notebook 05.

A prefix is a pre-filled key/value cache: ``n`` trainable keys and values in every attention layer that
every real token can attend to (Li & Liang 2021). P-tuning v2 (Liu et al. 2022) puts these deep prompts
on an encoder for classification. Names follow PEFT (``num_virtual_tokens``, ``prefix_projection``,
``encoder_hidden_size``, ``embedding``, ``transform``) and the prefix tensor has PEFT's layout, so the
two line up one to one (tests/test_prefix.py checks them equal where PEFT runs).

Why ftlab carries its own: transformers 5.24 renamed the cache argument of every model's ``forward``
from ``past_key_values`` to ``cache`` (the old name stays as a deprecated alias). PEFT 0.21.2 decides
whether an encoder can take a prefix by looking for ``past_key_values`` in that signature, so from
transformers 5.24 on, PEFT's prefix tuning on BERT-style classifiers raises "Model does not support
past key values". This module passes the cache under whichever name the installed transformers uses.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
from torch import nn

from ..errors import FtlabError
from .pooling import mean_pool


def cache_keyword(model) -> str:
    """The name under which ``model.forward`` takes a key/value cache: ``cache`` (transformers ≥ 5.24)
    or ``past_key_values`` (earlier)."""
    names = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in names:
            return name
    raise FtlabError(f"{type(model).__name__}.forward takes no key/value cache (neither 'cache' nor "
                     "'past_key_values'), so it cannot take a prefix. Use the backbone model "
                     "(fl.load_model(..., task='base')) or a method that needs no cache, e.g. LoRA.")


def kv_layout(config) -> tuple[int, int, int]:
    """(layers, key/value heads, head dim) of a model config; grouped-query models have fewer kv heads."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return config.num_hidden_layers, kv_heads, head_dim


class PrefixEncoder(nn.Module):
    """The trainable prefix, shaped like PEFT's: ``(n, 2·L·d_kv)``, a key and a value per layer.

    With ``prefix_projection`` (Li & Liang's re-parameterisation) the prefix is produced by an MLP from a
    small embedding of the key/value width: ``Linear(d_kv, h) → tanh → Linear(h, 2·L·d_kv)``; after
    training only its output is needed.
    """

    def __init__(self, num_virtual_tokens: int, num_layers: int, kv_dim: int, prefix_projection: bool = False,
                 encoder_hidden_size: int | None = None):
        super().__init__()
        out = 2 * num_layers * kv_dim
        self.num_virtual_tokens, self.prefix_projection = num_virtual_tokens, prefix_projection
        if prefix_projection:
            h = encoder_hidden_size or kv_dim
            self.embedding = nn.Embedding(num_virtual_tokens, kv_dim)
            self.transform = nn.Sequential(nn.Linear(kv_dim, h), nn.Tanh(), nn.Linear(h, out))
        else:
            self.embedding = nn.Embedding(num_virtual_tokens, out)

    def forward(self) -> torch.Tensor:
        raw = self.embedding.weight  # (n, d) or (n, 2·L·d_kv)
        return self.transform(raw) if self.prefix_projection else raw  # (n, 2·L·d_kv)


def prefix_cache(raw: torch.Tensor, batch_size: int, config):
    """Cut a raw prefix ``(n, 2·L·d_kv)`` into a key and a value per layer and fill a ``DynamicCache``."""
    from transformers import DynamicCache

    layers, kv_heads, head_dim = kv_layout(config)
    n = raw.shape[0]
    kv = raw.view(n, 2 * layers, kv_heads, head_dim).permute(1, 2, 0, 3)  # (2L, kv heads, n, head dim)
    cache = DynamicCache(config=config)
    for layer in range(layers):  # PEFT's order: key 2i, value 2i+1
        cache.update(kv[2 * layer].expand(batch_size, -1, -1, -1), kv[2 * layer + 1].expand(batch_size, -1, -1, -1),
                     layer)
    return cache


def prefix_forward(model, raw_prefix: torch.Tensor, input_ids, attention_mask=None, **kwargs):
    """Run ``model`` with the prefix as its cache: the real tokens attend to ``n`` extra keys and values.

    The attention mask grows by ``n`` ones (the prefix is always visible); positions start at ``n``, as
    with PEFT. A fresh cache per call: a cache is filled in place by the forward pass.
    """
    batch, n = input_ids.shape[0], raw_prefix.shape[0]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    mask = torch.cat([attention_mask.new_ones(batch, n), attention_mask], dim=1)  # (B, n + T)
    cache = prefix_cache(raw_prefix, batch, model.config)
    return model(input_ids=input_ids, attention_mask=mask, **{cache_keyword(model): cache}, **kwargs)


class PrefixClassifier(nn.Module):
    """P-tuning v2 for classification: a frozen encoder, a trainable prefix in every layer, mean pooling
    over the real tokens (the way sentence encoders such as MiniLM were trained) and a trainable linear head.
    """

    def __init__(self, backbone, num_labels: int = 2, num_virtual_tokens: int = 20, prefix_projection: bool = False,
                 encoder_hidden_size: int | None = None):
        super().__init__()
        cache_keyword(backbone)  # fail now, with the reason, not at the first batch
        self.backbone, self.config = backbone, backbone.config
        for p in backbone.parameters():
            p.requires_grad_(False)
        layers, kv_heads, head_dim = kv_layout(backbone.config)
        hidden = backbone.config.hidden_size
        self.prefix = PrefixEncoder(num_virtual_tokens, layers, kv_heads * head_dim, prefix_projection,
                                    encoder_hidden_size)
        self.dropout = nn.Dropout(getattr(backbone.config, "hidden_dropout_prob", 0.1))
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        from transformers.modeling_outputs import SequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = prefix_forward(self.backbone, self.prefix(), input_ids, attention_mask, **kwargs).last_hidden_state
        logits = self.head(self.dropout(mean_pool(hidden, attention_mask)))  # (B, labels)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """What a task needs on top of the shared frozen encoder: the prefix (the MLP's output, not the
        MLP, as PEFT saves it) and the head."""
        with torch.no_grad():
            tensors = {"prefix": self.prefix(), "head.weight": self.head.weight, "head.bias": self.head.bias}
        return {k: v.detach().cpu().contiguous() for k, v in tensors.items()}

    def save_pretrained(self, path, safe_serialization: bool = True) -> None:
        """Save the prefix and head only (safetensors), like a PEFT adapter folder."""
        from safetensors.torch import save_file

        Path(path).mkdir(parents=True, exist_ok=True)
        save_file(self.trainable_state_dict(), str(Path(path) / "prefix_model.safetensors"))


# ---------------------------------------------------------------- PEFT prefix models: shapes and generation


def _is_prefix_model(model) -> bool:
    config = getattr(model, "active_peft_config", None)
    return str(getattr(config, "peft_type", "")).endswith("PREFIX_TUNING")


def prefix_kv_shapes(peft_model, batch_size: int = 1) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Per layer, the shapes of the key and value prefixes PEFT adds: (B, kv heads, n, head dim)."""
    if not _is_prefix_model(peft_model):
        raise FtlabError("prefix_kv_shapes needs a PEFT model built with PrefixTuningConfig.")
    with torch.no_grad():
        cache = peft_model.get_prompt(batch_size)
    if hasattr(cache, "layers"):  # transformers 5: a DynamicCache with one entry per layer
        return [(tuple(l.keys.shape), tuple(l.values.shape)) for l in cache.layers]
    return [(tuple(kv[0].shape), tuple(kv[1].shape)) for kv in cache]  # older: tuples of (key, value)


@torch.no_grad()
def generate_with_prefix(model, tokenizer, prompt: str, max_new_tokens: int = 20) -> str:
    """Greedy continuation of ``prompt``, one full forward pass per new token.

    Slower than ``generate()`` (no cache of the real tokens), but the prefix enters every step through
    the model's own forward, whatever ``generate()`` does with caches in the installed versions: with
    PEFT 0.21.2 it fails on transformers 5.23 when ``use_cache=False``, and on 5.24 it silently leaves
    the prefix out when the cache is on (both measured in notebook 05).
    """
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt")["input_ids"].to(device)  # (1, T)
    start = ids.shape[1]
    model.eval()
    for _ in range(max_new_tokens):
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits  # (1, T, V)
        nxt = logits[:, -1].argmax(-1, keepdim=True)  # (1, 1)
        ids = torch.cat([ids, nxt], dim=1)
        if nxt.item() == tokenizer.eos_token_id:
            break
    return tokenizer.decode(ids[0, start:], skip_special_tokens=True)
