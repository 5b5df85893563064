"""Continual learning on one encoder: per-task heads, EWC (Fisher + penalty), a replay buffer, metrics.

Taught in notebook 11. Floor 1: torch (and the shared pooling helper) only; the notebook holds the task
sequence and attaches the pieces. EWC after Kirkpatrick et al. 2017, "Overcoming catastrophic forgetting in
neural networks" (PNAS), eq. 3; the Fisher is the diagonal of the empirical Fisher information, i.e. the
*mean of squared per-example gradients* of the log-likelihood (not the square of a mean gradient).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import torch
from torch import nn

from .pooling import mean_pool


class MultiHeadClassifier(nn.Module):
    """``backbone`` → mean over real tokens → dropout → the row's own task head (task-incremental setting:
    the task id is known at test time, each task has its own linear head on the shared encoder).

    ``num_labels`` is one class count for every task or one per task (e.g. ``[2, 5, 2]``). A batch may mix
    tasks (replay, joint training): the logits are padded to the largest class count with ``PAD_LOGIT``,
    so a row's softmax, loss and argmax only ever see its own task's classes.
    """

    PAD_LOGIT = -1e4  # exp(-1e4) is 0 in float32: a padded class gets no probability and no gradient

    def __init__(self, backbone, n_tasks: int, num_labels: int | list[int] = 2):
        super().__init__()
        self.backbone = backbone
        hidden = backbone.config.hidden_size
        self.num_labels = [num_labels] * n_tasks if isinstance(num_labels, int) else list(num_labels)
        if len(self.num_labels) != n_tasks:
            raise ValueError(f"num_labels has {len(self.num_labels)} entries for {n_tasks} tasks")
        self.dropout = nn.Dropout(getattr(backbone.config, "hidden_dropout_prob", 0.1))
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.num_labels)

    def forward(self, input_ids, attention_mask, task_ids):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        pooled = self.dropout(mean_pool(hidden, attention_mask))  # (B, H)
        logits = pooled.new_full((len(task_ids), max(self.num_labels)), self.PAD_LOGIT)  # (B, max labels)
        for t in task_ids.unique().tolist():  # each row read by its own task's head
            rows = task_ids == t
            logits[rows, :self.num_labels[t]] = self.heads[t](pooled[rows])
        return logits


def pad_batch(rows: list[tuple[int, list[int], int]], pad_id: int) -> dict:
    """(task, token ids, label) rows → padded ``input_ids``, ``attention_mask``, ``task_ids``, ``labels``."""
    width = max(len(ids) for _, ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (_, ids, _) in enumerate(rows):
        input_ids[i, :len(ids)], mask[i, :len(ids)] = torch.tensor(ids), 1
    return {"input_ids": input_ids, "attention_mask": mask, "task_ids": torch.tensor([t for t, _, _ in rows]),
            "labels": torch.tensor([y for _, _, y in rows])}


def nll(model: MultiHeadClassifier, batch: dict) -> torch.Tensor:
    """Mean negative log-likelihood of the batch's labels (cross-entropy)."""
    logits = model(batch["input_ids"], batch["attention_mask"], batch["task_ids"])
    return nn.functional.cross_entropy(logits, batch["labels"])


@torch.no_grad()
def predict(model: MultiHeadClassifier, rows: list, pad_id: int, batch_size: int = 64) -> list[int]:
    """Predicted class of every row (task, ids, label), in the rows' order, in eval mode. Rows are batched by
    length (less padding, same predictions up to float rounding)."""
    was_training = model.training
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][1]))
    out = [0] * len(rows)
    for i in range(0, len(order), batch_size):
        chunk = order[i:i + batch_size]
        batch = pad_batch([rows[k] for k in chunk], pad_id)
        for k, y in zip(chunk, model(batch["input_ids"], batch["attention_mask"], batch["task_ids"]).argmax(-1).tolist()):
            out[k] = y
    model.train(was_training)
    return out


def accuracy(model: MultiHeadClassifier, rows: list, pad_id: int, batch_size: int = 64) -> float:
    """Share of ``rows`` (task, ids, label) whose label the model predicts, in eval mode."""
    predicted = predict(model, rows, pad_id, batch_size)
    return sum(p == y for p, (_, _, y) in zip(predicted, rows)) / len(rows)


def _params(model: nn.Module, names=None) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad and (names is None or n in names)}


def _mean_over_examples(model: nn.Module, examples: Iterable[dict], loss_fn: Callable, names, of: Callable) -> dict:
    """Mean over examples of ``of(gradient)``, one backward pass per example, dropout off."""
    params, was_training = _params(model, names), model.training
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    count = 0
    for example in examples:
        model.zero_grad(set_to_none=True)
        loss_fn(model, example).backward()
        for n, p in params.items():
            if p.grad is not None:
                total[n] += of(p.grad.detach())
        count += 1
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    return {n: t / max(count, 1) for n, t in total.items()}


def fisher_diagonal(model: nn.Module, examples: Iterable[dict], loss_fn: Callable, names=None) -> dict:
    """Diagonal Fisher information: F_i = mean over examples n of (∂ log p(y_n | x_n) / ∂θ_i)².

    One backward pass per example (each of ``examples`` is a batch of one); ``loss_fn(model, example)``
    returns that example's negative log-likelihood, whose gradient squares to the same value. Only
    parameters that require gradients (and are in ``names``, when given) get an entry. Dropout is off.
    """
    return _mean_over_examples(model, examples, loss_fn, names, of=lambda g: g ** 2)  # square first, then the mean


def squared_mean_gradient(model: nn.Module, examples: Iterable[dict], loss_fn: Callable, names=None) -> dict:
    """The bug found in several public EWC implementations: the mean gradient first, squared afterwards.
    Kept for the notebook and tests to show how far it is from ``fisher_diagonal``; do not use it."""
    mean = _mean_over_examples(model, examples, loss_fn, names, of=lambda g: g)
    return {n: m ** 2 for n, m in mean.items()}


def ewc_penalty(model: nn.Module, fisher: dict, anchor: dict, lam: float) -> torch.Tensor:
    """λ/2 · Σ_i F_i (θ_i − θ*_i)², θ* the weights after the old task (Kirkpatrick et al. 2017, eq. 3)."""
    params = dict(model.named_parameters())
    terms = [(fisher[n] * (params[n] - anchor[n]) ** 2).sum() for n in fisher]
    return lam / 2 * torch.stack(terms).sum() if terms else torch.zeros(())


class EWC:
    """One (Fisher, anchor) pair per finished task; ``penalty`` sums their EWC terms (the original paper's
    one-penalty-per-old-task form)."""

    def __init__(self, lam: float):
        self.lam, self.tasks = lam, []

    def consolidate(self, model: nn.Module, fisher: dict) -> None:
        anchor = {n: p.detach().clone() for n, p in model.named_parameters() if n in fisher}
        self.tasks.append((fisher, anchor))

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return sum((ewc_penalty(model, f, a, self.lam) for f, a in self.tasks), torch.zeros(()))


class ReplayBuffer:
    """``per_task`` training rows kept from each finished task, drawn at random; ``sample(k)`` returns k of
    the kept rows. Every draw uses the buffer's own generator, so the same ``seed`` gives the same rows."""

    def __init__(self, per_task: int, seed: int):
        self.per_task, self.rows = per_task, []
        self.rng = random.Random(seed)

    def add(self, rows: list) -> None:
        self.rows += self.rng.sample(rows, min(self.per_task, len(rows)))

    def sample(self, k: int) -> list:
        if not self.rows or k <= 0:
            return []
        return [self.rows[self.rng.randrange(len(self.rows))] for _ in range(k)]


def average_accuracy(matrix) -> float:
    """Mean of the last row of R (R[i][j]: accuracy on task j after training task i)."""
    return float(sum(matrix[-1]) / len(matrix[-1]))


def forgetting(matrix) -> list[float]:
    """Per old task j: the best accuracy it had after an earlier stage minus its accuracy at the end,
    max_{i<T} R[i][j] − R[T][j] (Chaudhry et al. 2018, "Riemannian Walk for Incremental Learning"), for j < T."""
    last = len(matrix) - 1
    return [max(matrix[i][j] for i in range(j, last)) - matrix[last][j] for j in range(last)]


def average_forgetting(matrix) -> float:
    f = forgetting(matrix)
    return float(sum(f) / len(f)) if f else 0.0
