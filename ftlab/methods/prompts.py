"""Prompts as parameters: hard prompts (templates), soft prompts, P-tuning and prefix tuning.

Taught in notebook 04 (hard prompts, soft prompt tuning, P-tuning); prefix tuning and P-tuning v2
(notebook 05) live in ``prefix.py``.
Names follow PEFT (``num_virtual_tokens``, ``prompt_encoder``, ``embedding``, ``token_dim``) so the
from-scratch soft prompt lines up one to one with ``peft.PromptTuningConfig``.

- Soft prompt tuning: Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning".
- P-tuning: Liu et al. 2021, "GPT Understands, Too" (an MLP/LSTM re-parameterises the prompt).
- Prefix tuning: Li & Liang 2021 (trainable key/value prefixes in every layer); P-tuning v2: Liu et al.
  2022 applies the same deep prompts to classification with an encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import FtlabError

# ---------------------------------------------------------------- hard prompts (zero-shot by template)


def chat_template(tokenizer, instruction: str) -> str:
    """A zero-shot template in the model's own chat format: the user turn holds ``instruction`` and
    ``{text}``; the template ends where the assistant's answer starts."""
    if not getattr(tokenizer, "chat_template", None):
        raise FtlabError("This tokenizer has no chat template; write the template by hand, e.g. "
                         "'Review: {text}\\nSentiment:'.")
    marker = "\x00TEXT\x00"  # survives the template untouched, then becomes the placeholder
    text = tokenizer.apply_chat_template([{"role": "user", "content": f"{instruction}\n\n{marker}"}],
                                         tokenize=False, add_generation_prompt=True)
    return text.replace("{", "{{").replace("}", "}}").replace(marker, "{text}")


def label_token_ids(tokenizer, label_words: list[str]) -> list[int]:
    """The first token of each label word: the token whose next-token score stands for that class."""
    ids = [tokenizer.encode(w, add_special_tokens=False)[:1] for w in label_words]
    if any(not i for i in ids):
        raise FtlabError(f"A label word in {label_words} encodes to no tokens; use non-empty words.")
    ids = [i[0] for i in ids]
    if len(set(ids)) < len(ids):
        raise FtlabError(f"Label words {label_words} start with the same token, so they cannot be told apart; "
                         "choose words that differ in their first token (e.g. ' positive' / ' negative').")
    return ids


@torch.no_grad()
def zero_shot_scores(model, tokenizer, texts: list[str], template: str, label_words: list[str],
                     batch_size: int = 16) -> torch.Tensor:
    """Log-probabilities (N, len(label_words)) of each label word's first token right after the template.

    ``template`` holds ``{text}``, e.g. ``"Review: {text}\\nSentiment:"``; the class is the argmax.
    No training: the prompt is the only thing that tells the model what task it is doing.
    """
    if "{text}" not in template:
        raise FtlabError(f"The template needs a '{{text}}' placeholder where the review goes; got {template!r}.")
    ids = torch.tensor(label_token_ids(tokenizer, label_words))
    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # the last position is the next token
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths together: less padding
    scores = torch.empty(len(texts), len(ids))
    try:
        for i in range(0, len(texts), batch_size):
            rows = order[i:i + batch_size]
            prompts = [template.format(text=texts[j]) for j in rows]
            enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            logits = model(**enc, logits_to_keep=1).logits[:, -1]  # (B, V): the token after the prompt
            scores[rows] = torch.log_softmax(logits.float(), -1)[:, ids.to(device)].cpu()
    finally:
        tokenizer.padding_side = side
    return scores


def zero_shot_accuracy(model, tokenizer, texts, labels, template: str, label_words: list[str]) -> float:
    """Share of texts whose highest-scoring label word is the true class (label i <-> label_words[i])."""
    pred = zero_shot_scores(model, tokenizer, list(texts), template, label_words).argmax(-1)
    return (pred == torch.as_tensor(list(labels))).float().mean().item()


# ---------------------------------------------------------------- soft prompt tuning, from scratch


@dataclass
class SoftPromptConfig:
    num_virtual_tokens: int = 20  # trainable vectors prepended to every input
    init_text: str | None = None  # None: random init (PEFT's RANDOM); a text: its token embeddings (TEXT)


class PromptEmbedding(nn.Module):
    """The only trainable part: ``num_virtual_tokens`` vectors of the model's embedding width."""

    def __init__(self, num_virtual_tokens: int, token_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(num_virtual_tokens, token_dim)  # PEFT's name for it

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.embedding.weight.unsqueeze(0).expand(batch_size, -1, -1)  # (B, n, d)


class SoftPromptModel(nn.Module):
    """A frozen model whose input embeddings get trainable virtual tokens prepended (Lester et al.)."""

    def __init__(self, model, config: SoftPromptConfig, tokenizer=None):
        super().__init__()
        self.model, self.config = model, config
        for p in model.parameters():
            p.requires_grad_(False)
        embed = model.get_input_embeddings()
        self.prompt_encoder = PromptEmbedding(config.num_virtual_tokens, embed.embedding_dim)
        if config.init_text is not None:
            if tokenizer is None:
                raise FtlabError("init_text needs the tokenizer, to turn the text into token embeddings.")
            ids = tokenizer(config.init_text)["input_ids"]  # as PEFT does: repeated or cut to n tokens
            ids = (ids * (config.num_virtual_tokens // max(len(ids), 1) + 1))[:config.num_virtual_tokens]
            self.prompt_encoder.embedding.weight.data.copy_(embed.weight[torch.tensor(ids)].detach())

    def forward(self, input_ids, attention_mask=None, labels=None, **kwargs):
        embeds = self.model.get_input_embeddings()(input_ids)  # (B, T, d)
        prompt = self.prompt_encoder(input_ids.shape[0]).to(embeds.dtype)  # (B, n, d)
        embeds = torch.cat([prompt, embeds], dim=1)  # (B, n + T, d)
        n = prompt.shape[1]
        if attention_mask is not None:  # the model always attends to the virtual tokens
            attention_mask = torch.cat([attention_mask.new_ones(attention_mask.shape[0], n), attention_mask], 1)
        if "token_type_ids" in kwargs and kwargs["token_type_ids"] is not None:
            tt = kwargs["token_type_ids"]
            kwargs["token_type_ids"] = torch.cat([tt.new_zeros(tt.shape[0], n), tt], 1)
        if labels is not None and labels.dim() == 2 and labels.shape == input_ids.shape:  # token labels
            labels = torch.cat([labels.new_full((labels.shape[0], n), -100), labels], 1)  # no loss on prompts
        return self.model(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, **kwargs)


def apply_soft_prompt(model, config: SoftPromptConfig | None = None, tokenizer=None) -> SoftPromptModel:
    """Freeze ``model`` and wrap it with a trainable soft prompt (PEFT: ``get_peft_model`` + PromptTuningConfig)."""
    return SoftPromptModel(model, config or SoftPromptConfig(), tokenizer)


# ---------------------------------------------------------------- checks and helpers for both notebooks


def max_positions(model_or_config) -> int | None:
    config = getattr(model_or_config, "config", model_or_config)
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(config, "max_position_embeddings", None)


def check_prompt_length(model_or_config, num_virtual_tokens: int, max_length: int) -> int:
    """Virtual tokens take positions too: ``num_virtual_tokens + max_length`` must fit the model's context.

    Returns the total length; raises ``FtlabError`` when it does not fit (or a count is not positive).
    """
    if num_virtual_tokens < 1 or max_length < 1:
        raise FtlabError(f"num_virtual_tokens ({num_virtual_tokens}) and max_length ({max_length}) must be positive.")
    limit, total = max_positions(model_or_config), num_virtual_tokens + max_length
    if limit is not None and total > limit:
        raise FtlabError(f"{num_virtual_tokens} virtual tokens + {max_length} input tokens = {total} positions, but "
                         f"this model has {limit} (max_position_embeddings). Use at most "
                         f"{max(limit - max_length, 0)} virtual tokens, or truncate inputs to "
                         f"{max(limit - num_virtual_tokens, 0)} tokens.")
    return total


def prompt_parameter_count(method: str, num_virtual_tokens: int, token_dim: int, num_layers: int,
                           encoder_hidden_size: int | None = None) -> int:
    """Trainable parameters PEFT creates for each prompt method (the classifier head not included).

    method: "prompt" (n·d), "p-tuning-mlp", "p-tuning-lstm", "prefix" (n·2·L·d: a key and a value
    vector per layer), "prefix-projection" (an embedding of width d re-parameterised by an MLP).
    """
    n, d, L, h = num_virtual_tokens, token_dim, num_layers, encoder_hidden_size or token_dim
    counts = {
        "prompt": n * d,
        "p-tuning-mlp": n * d + (d * h + h) + (h * h + h) + (h * d + d),  # PEFT: Linear, ReLU, Linear, ReLU, Linear
        "p-tuning-lstm": n * d + 2 * (4 * h * d + 4 * h * h + 8 * h) + 2 * (4 * h * 2 * h + 4 * h * h + 8 * h)
        + (2 * h * 2 * h + 2 * h) + (2 * h * d + d),  # 2-layer bidirectional LSTM, then Linear, ReLU, Linear
        "prefix": n * 2 * L * d,
        "prefix-projection": n * d + (d * h + h) + (h * 2 * L * d + 2 * L * d),
    }
    if method not in counts:
        raise FtlabError(f"Unknown prompt method {method!r}; choose one of {', '.join(counts)}.")
    return counts[method]
