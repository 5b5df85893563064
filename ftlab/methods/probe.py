"""Probing: what a frozen layer's representation makes *linearly* readable, measured with a small classifier.

Taught in notebooks/09_probing.ipynb. Imports torch (and scikit-learn lazily) only.

Recipe (Alain & Bengio 2016; Hewitt & Liang 2019 for control tasks and selectivity):
1. run the model once with ``output_hidden_states=True`` and mean-pool every layer's states -> (L+1, N, H);
2. fit a logistic-regression probe per layer on train rows, score it on held-out rows;
3. fit the same probe on a *control task* whose labels carry no linguistic meaning but can be memorised
   from word identity; **selectivity** = task accuracy - control accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ftlab.batching import batches
from ftlab.errors import FtlabError

from .pooling import mean_pool  # noqa: F401  (re-exported: notebooks call probe.mean_pool)


@dataclass
class ProbeConfig:
    C: float = 0.01  # inverse L2 strength (scikit-learn's convention); smaller = simpler probe, less memorising
    max_iter: int = 2000  # L-BFGS iterations; probes on standardised features converge well before
    standardize: bool = True  # z-score each feature on the train rows: layers differ wildly in scale


@torch.no_grad()
def layer_features(model, dataset, collator, batch_size: int = 32) -> torch.Tensor:
    """Mean-pooled hidden states of every layer for every row: (L+1, N, H); index 0 is the embedding layer.

    ``dataset``: tokenised rows (``input_ids``, ``attention_mask``; ``labels`` are ignored). Works for
    encoders and decoders alike (any model that accepts ``output_hidden_states=True``).
    """
    if len(dataset) == 0:
        raise FtlabError("layer_features got an empty dataset: nothing to probe.")
    model.eval()
    device = next(model.parameters()).device
    pooled = []
    for batch in batches(dataset, collator, batch_size):
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        states = model(**batch, output_hidden_states=True).hidden_states  # L+1 tensors (B, T, H)
        pooled.append(torch.stack([mean_pool(h.float(), batch["attention_mask"]) for h in states]).cpu())
    return torch.cat(pooled, dim=1)  # (L+1, N, H)


def control_labels(input_ids: list[list[int]], vocab_size: int, seed: int = 0,
                   ignore_ids: tuple[int, ...] = ()) -> np.ndarray:
    """A Hewitt & Liang-style control task lifted to sentences: meaningless, but a function of word identity.

    Every token type gets a random value (fixed by ``seed``); a sentence scores the mean value of its
    distinct token types and is labelled 1 when it scores above the median of the rows given (pass all
    splits in one call, so they share that threshold; half the rows get each label). Sentiment plays no
    part, so a probe can only beat chance by memorising which words push the score up.
    """
    values = np.random.default_rng(seed).standard_normal(vocab_size)
    ignore = set(ignore_ids)
    scores = []
    for ids in input_ids:
        types = [t for t in set(ids) if t not in ignore]
        if not types:
            raise FtlabError("control_labels got a row with no tokens left after ignore_ids.")
        scores.append(values[types].mean())
    scores = np.array(scores)
    return (scores > np.median(scores)).astype(int)


def _scaled(train_x: np.ndarray, test_x: np.ndarray, standardize: bool):
    if not standardize:
        return train_x, test_x
    mean, std = train_x.mean(0), train_x.std(0) + 1e-8
    return (train_x - mean) / std, (test_x - mean) / std


def fit_probe(train_x, train_y, test_x, test_y, config: ProbeConfig | None = None) -> dict:
    """One logistic-regression probe (scikit-learn, L-BFGS). Returns accuracies and the fitted probe."""
    from sklearn.linear_model import LogisticRegression

    config = config or ProbeConfig()
    train_x, test_x = (np.asarray(x, dtype=np.float64) for x in (train_x, test_x))
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise FtlabError(f"features and labels differ in length: train {len(train_x)} vs {len(train_y)}, "
                         f"test {len(test_x)} vs {len(test_y)}.")
    if len(np.unique(train_y)) < 2:
        raise FtlabError("the probe's training labels hold a single class: nothing to separate.")
    train_x, test_x = _scaled(train_x, test_x, config.standardize)
    clf = LogisticRegression(C=config.C, max_iter=config.max_iter).fit(train_x, train_y)
    return {"train_accuracy": float(clf.score(train_x, train_y)),
            "test_accuracy": float(clf.score(test_x, test_y)), "probe": clf}


def probe_layers(train_feats, train_y, test_feats, test_y, config: ProbeConfig | None = None) -> list[float]:
    """Held-out accuracy of one probe per layer: features (L+1, N, H) -> L+1 accuracies."""
    if len(train_feats) != len(test_feats):
        raise FtlabError(f"train features have {len(train_feats)} layers, test features {len(test_feats)}.")
    return [fit_probe(tr, train_y, te, test_y, config)["test_accuracy"] for tr, te in zip(train_feats, test_feats)]


def selectivity(task_accuracy, control_accuracy) -> list[float]:
    """Hewitt & Liang's selectivity per layer: task accuracy - control-task accuracy."""
    return [float(t - c) for t, c in zip(task_accuracy, control_accuracy)]


def logistic_regression_torch(x: torch.Tensor, y: torch.Tensor, C: float = 0.1, max_iter: int = 500):
    """The same probe from scratch: minimise 0.5·|w|² + C·Σ log-loss (scikit-learn's objective) with L-BFGS.

    Binary labels only. Returns ``(w, b)`` in float64; ``torch.sigmoid(x @ w + b)`` is P(label = 1).
    """
    x, y = x.double(), y.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = 0.5 * w @ w + C * torch.nn.functional.binary_cross_entropy_with_logits(
            x @ w + b, y, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def layers_to_freeze(gain_per_layer, fraction: float = 0.5) -> int:
    """How many leading blocks to freeze: those before the first whose probe gain from fine-tuning reaches
    ``fraction`` of the largest gain. ``gain_per_layer`` excludes the embedding layer; at least one block
    is left to train."""
    gains = np.asarray(gain_per_layer, dtype=float)
    if gains.size == 0:
        raise FtlabError("layers_to_freeze needs one gain per transformer block, got none.")
    if gains.max() <= 0:
        return len(gains) - 1
    first = int(np.argmax(gains >= fraction * gains.max()))
    return min(first, len(gains) - 1)
