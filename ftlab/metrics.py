"""Accuracy, F1, ROUGE and perplexity that work offline.

``evaluate.load("accuracy")`` needs the hub. These functions are small and exact (tested against
scikit-learn); ``load_metric(name)`` gives the same numbers through ``evaluate`` for those who want that
convention, from modules shipped inside ftlab. Taught in notebook 01, section 5.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import FtlabError

MODULES = Path(__file__).resolve().parent / "evaluate_modules"


def accuracy(predictions, references) -> float:
    p, r = np.asarray(predictions), np.asarray(references)
    if p.shape != r.shape or p.size == 0:
        raise FtlabError(f"accuracy needs two equal, non-empty lists; got {p.shape} and {r.shape}.")
    return float((p == r).mean())


def f1(predictions, references, average: str = "macro") -> float:
    """F1 per class, then averaged ("macro"), or F1 of class 1 ("binary")."""
    p, r = np.asarray(predictions), np.asarray(references)
    classes = [1] if average == "binary" else sorted(set(r.tolist()) | set(p.tolist()))
    scores = []
    for c in classes:
        tp = np.sum((p == c) & (r == c))
        denom = np.sum(p == c) + np.sum(r == c)
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def majority_baseline(train_labels, test_labels) -> float:
    """Accuracy of always answering the most frequent training class: the bar any model must clear."""
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    return accuracy(np.full(len(test_labels), values[counts.argmax()]), test_labels)


def rouge(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (rouge_score, with stemming), as ``evaluate``'s rouge reports them."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
    return {k: float(np.mean([s[k].fmeasure for s in scores])) for k in ("rouge1", "rouge2", "rougeL")}


def perplexity(mean_loss: float) -> float:
    """exp(mean next-token cross-entropy): the number of equally likely choices the model hesitates between."""
    return float(math.exp(mean_loss))


def classification_metrics(eval_pred) -> dict[str, float]:
    """For the Trainer: accuracy and macro-F1 from (logits, labels)."""
    logits, labels = eval_pred
    logits = logits[0] if isinstance(logits, tuple) else logits
    preds = np.asarray(logits).argmax(-1)
    return {"accuracy": accuracy(preds, labels), "f1": f1(preds, labels)}


def load_metric(name: str):
    """The same metric as an ``evaluate`` module, loaded from ftlab's folder (no hub)."""
    import evaluate

    if not (MODULES / name / f"{name}.py").exists():
        known = sorted(p.name for p in MODULES.iterdir() if p.is_dir())
        raise FtlabError(f"No offline metric {name!r}; ftlab ships {known}.")
    return evaluate.load(str(MODULES / name))
