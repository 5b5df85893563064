"""Retrieval-augmented generation (RAG, 检索增强生成) with a sentence encoder, and the QA scores that judge it.

Retrieval: embed passages and questions the way all-MiniLM-L6-v2 was trained (mean of the token vectors,
L2-normalised), then take the ``k`` passages with the highest cosine similarity (a dot product of unit vectors).
Scores: exact match and token F1 after SQuAD's answer normalisation (Rajpurkar et al. 2016; the official
``evaluate-v1.1.py``), whether an answer abstains ("unknown"), and bootstrap intervals over questions.
Taught in notebook 15.
"""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
import torch

from .pooling import mean_pool

# The instruction every prompt of notebook 15 carries: closed-book (question only) or with passages.
CLOSED_BOOK = 'Answer the question in a few words. If you do not know, answer "unknown".'
OPEN_BOOK = ('Answer the question in a few words, using only the passages. If the passages do not say, '
             'answer "unknown".')

# Phrases that count as declining to answer (besides the word "unknown"), after normalize_answer.
ABSTAIN = ("unknown", "do not know", "dont know", "not known", "not mentioned", "do not say", "does not say",
           "no information", "not provided", "not specified", "cannot answer", "not stated")


# ---------------------------------------------------------------- scores


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, drop punctuation and the articles a/an/the, squeeze whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, reference: str) -> float:
    """1.0 when the normalised strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """Harmonic mean of token precision and recall on normalised answers, counting repeated tokens (SQuAD).

    Two empty answers score 1; one empty answer scores 0.
    """
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def contains_answer(prediction: str, reference: str) -> bool:
    """The normalised reference appears, as whole words, inside the normalised prediction (a lenient score)."""
    ref = normalize_answer(reference)
    return bool(ref) and f" {ref} " in f" {normalize_answer(prediction)} "


def abstains(prediction: str) -> bool:
    """The answer declines ("unknown", "I do not know", "the passages do not say" …) or is empty."""
    text = normalize_answer(prediction.replace("'", ""))
    return not text or any(f" {p} " in f" {text} " for p in ABSTAIN)


def score_answers(predictions: list[str], references: list[str]) -> dict[str, np.ndarray]:
    """Per-question scores (arrays, so intervals can be drawn over questions): em, f1, contains, abstains."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    return {"em": np.array([exact_match(p, r) for p, r in zip(predictions, references)]),
            "f1": np.array([token_f1(p, r) for p, r in zip(predictions, references)]),
            "contains": np.array([contains_answer(p, r) for p, r in zip(predictions, references)], dtype=float),
            "abstains": np.array([abstains(p) for p in predictions], dtype=float)}


def bootstrap_interval(values, resamples: int = 2000, seed: int = 0, confidence: float = 0.95):
    """Mean and percentile-bootstrap interval ``(mean, low, high)``, resampling questions with replacement."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (resamples, len(values)))].mean(1)
    tail = (1 - confidence) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_difference(a, b, resamples: int = 2000, seed: int = 0, confidence: float = 0.95):
    """Mean of ``a - b`` over the same questions and its bootstrap interval: the two systems are scored on
    the same resampled questions, so the shared difficulty of a question cancels."""
    return bootstrap_interval(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), resamples, seed, confidence)


# ---------------------------------------------------------------- retrieval


@torch.no_grad()
def embed(model, tokenizer, texts: list[str], batch_size: int = 64, max_length: int = 128) -> torch.Tensor:
    """Unit-length sentence vectors (N, H): the encoder's token vectors, mean-pooled over real tokens."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[i:i + batch_size]), padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt").to(device)
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state  # (B, T, H)
        out.append(torch.nn.functional.normalize(mean_pool(hidden, enc["attention_mask"]), dim=-1).cpu())
    return torch.cat(out) if out else torch.empty(0, model.config.hidden_size)


def top_k(queries: torch.Tensor, passages: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosine scores and indices of the ``k`` best passages per query, best first: (Q, k), (Q, k).

    Both inputs must be unit vectors (``embed`` returns them), so the dot product is the cosine.
    """
    k = min(k, passages.shape[0])
    scores = queries @ passages.T  # (Q, H) x (H, N) -> (Q, N)
    return torch.topk(scores, k, dim=-1)  # sorted, largest first


def recall_at_k(indices: torch.Tensor, gold) -> float:
    """Share of queries whose gold passage index is among their retrieved ``indices`` (Q, k)."""
    gold = torch.as_tensor(gold).reshape(-1, 1)
    return float((indices == gold).any(-1).float().mean())


def build_prompt(question: str, passages: list[str] | None = None) -> str:
    """The user message: the instruction, the numbered passages (when retrieval is on) and the question.

    The chat template is applied later (``ftlab.format_prompt``, inside ``ftlab.generate``).
    """
    if passages is None:
        return f"{CLOSED_BOOK}\nQuestion: {question}"
    context = "\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1))
    return f"{OPEN_BOOK}\n{context}\nQuestion: {question}"
