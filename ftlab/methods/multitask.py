"""Multi-task learning (多任务学习): one shared encoder, one linear head per task, trained jointly.

Taught in notebooks/12_multitask_learning.ipynb. Floor 1: torch only (the collator and the encoder come
from the caller), so it knows neither the trainer nor the plots.

- ``MultiTaskModel``: hard parameter sharing (Caruana 1997, "Multitask Learning"): every task reads the same
  encoder, mean-pooled over real tokens, through its own linear head: the head policy of the fair
  comparison (``ftlab.compare_methods.PooledClassifier``), one head per task.
- ``sampling_probabilities`` / ``TaskSampler``: which task the next batch comes from. Temperature sampling
  p_i ∝ n_i^(1/T) (Arivazhagan et al. 2019, "Massively Multilingual Neural Machine Translation in the Wild",
  section 4.2): T = 1 samples in proportion to size, T → ∞ uniformly.
- ``UncertaintyWeighting``: learned task weights (Kendall, Gal & Cipolla 2018, "Multi-Task Learning Using
  Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR, section 3).
- ``train_multitask``: a compact loop (AdamW, linear warm-up and decay, as ``ftlab.train``) where each step is
  one batch of one task.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from ftlab.batching import batches
from ftlab.errors import FtlabError

from .pooling import mean_pool


class MultiTaskModel(nn.Module):
    """``encoder`` → mean over real tokens → dropout → ``heads[task]``. ``tasks`` maps a task's name to its
    number of classes. With one task it is ``PooledClassifier`` under another name."""

    def __init__(self, encoder: nn.Module, tasks: dict[str, int]):
        super().__init__()
        if not tasks:
            raise FtlabError("MultiTaskModel needs at least one task: {name: number of classes}.")
        config = encoder.config
        self.encoder = encoder
        self.dropout = nn.Dropout(getattr(config, "hidden_dropout_prob", 0.1))
        self.heads = nn.ModuleDict({name: nn.Linear(config.hidden_size, n) for name, n in tasks.items()})

    def forward(self, task: str, input_ids, attention_mask=None, labels=None):
        """``(logits, loss)`` for a batch of one task; ``loss`` is None without labels."""
        if task not in self.heads:
            raise FtlabError(f"Unknown task {task!r}; this model has heads for {list(self.heads)}.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # (B, T, H)
        logits = self.heads[task](self.dropout(mean_pool(hidden, attention_mask)))  # (B, classes)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return logits, loss


def sampling_probabilities(sizes: dict[str, int], temperature: float) -> dict[str, float]:
    """p_i = n_i^(1/T) / Σ_j n_j^(1/T). T = 1: in proportion to size; T = ``math.inf``: uniform."""
    if temperature <= 0:
        raise FtlabError(f"temperature must be > 0 (1 = by size, inf = uniform), got {temperature}.")
    if not sizes or any(n <= 0 for n in sizes.values()):
        raise FtlabError(f"every task needs at least one training row, got sizes {sizes}.")
    power = 0.0 if math.isinf(temperature) else 1.0 / temperature
    mass = {t: float(n) ** power for t, n in sizes.items()}
    total = sum(mass.values())
    return {t: m / total for t, m in mass.items()}


class TaskSampler:
    """The task of each step, drawn i.i.d. from ``sampling_probabilities``; the same seed, the same tasks."""

    def __init__(self, sizes: dict[str, int], temperature: float, seed: int = 0):
        self.tasks = list(sizes)
        self.probabilities = sampling_probabilities(sizes, temperature)
        self.generator = torch.Generator().manual_seed(seed)
        self._p = torch.tensor([self.probabilities[t] for t in self.tasks], dtype=torch.float64)

    def sample(self, steps: int) -> list[str]:
        picks = torch.multinomial(self._p, steps, replacement=True, generator=self.generator)
        return [self.tasks[i] for i in picks.tolist()]

    def expected_counts(self, steps: int) -> dict[str, float]:
        return {t: p * steps for t, p in self.probabilities.items()}


class UncertaintyWeighting(nn.Module):
    """Kendall et al. 2018: one learned log-variance s_i = log σ_i² per task; the loss is
    Σ_i exp(-s_i) · L_i + s_i (summed over the tasks present in the step).

    For a classification loss the paper's derivation (eq. 10) gives exp(-s) · L + s / 2; implementations
    commonly use the regression form exp(-s) · L + s for every task, as here. Setting the derivative in s to
    zero shows what is learned: s* = log L, i.e. the weight exp(-s*) = 1 / L: a task's weight follows the
    inverse of its current loss (its noise scale), not its importance.
    """

    def __init__(self, tasks):
        super().__init__()
        self.tasks = list(tasks)
        self.log_vars = nn.Parameter(torch.zeros(len(self.tasks)))  # s_i = 0: every weight starts at 1

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for task, loss in losses.items():
            s = self.log_vars[self.tasks.index(task)]
            total = total + torch.exp(-s) * loss + s
        return total

    def weights(self) -> dict[str, float]:
        """exp(-s_i): the factor each task's loss is multiplied by now."""
        return {t: float(torch.exp(-s)) for t, s in zip(self.tasks, self.log_vars.detach())}


class FixedWeighting(nn.Module):
    """Σ_i w_i · L_i with constant weights (1 for every task unless given)."""

    def __init__(self, tasks, weights: dict[str, float] | None = None):
        super().__init__()
        self.fixed = {t: float((weights or {}).get(t, 1.0)) for t in tasks}

    def forward(self, losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(self.fixed[t] * loss for t, loss in losses.items())

    def weights(self) -> dict[str, float]:
        return dict(self.fixed)


def _shuffled_batches(dataset, collator, batch_size: int, generator: torch.Generator):
    """Endless batches of one task: each epoch in a new order drawn from ``generator``."""
    while True:
        order = torch.randperm(len(dataset), generator=generator).tolist()
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield collator([dataset[j] for j in order[i:i + batch_size]])


def _linear_schedule(steps: int, warmup_ratio: float):
    warmup = int(warmup_ratio * steps)

    def factor(step: int) -> float:  # the Trainer's "linear" schedule
        if step < warmup:
            return (step + 1) / max(warmup, 1) if warmup else 1.0
        return max(0.0, (steps - step) / max(steps - warmup, 1))

    return factor


def train_multitask(model: MultiTaskModel, data: dict, collator, steps: int, lr: float, sampler: TaskSampler,
                    weighting: nn.Module | None = None, batch_size: int = 16, seed: int = 0,
                    weight_decay: float = 0.01, warmup_ratio: float = 0.06, head_lr: float | None = None,
                    weighting_lr: float = 1e-2, on_step=None, log_every: int = 10) -> dict:
    """Train ``model`` in place for ``steps`` optimiser steps; each step is one batch of the task the sampler
    draws, from ``data[task]`` (tokenised rows with ``labels``). ``weighting`` (default: fixed weights 1)
    turns the task's loss into the loss minimised; its own parameters (uncertainty weighting's log-variances)
    train at ``weighting_lr`` without weight decay. The heads train at ``head_lr`` (default ``lr``): they start
    from random weights, the encoder does not. ``on_step(step)`` is called after every step.

    Returns a history: the task and loss of every step, the steps each task got, the weights every
    ``log_every`` steps, and the wall time (seconds).
    """
    unknown = [t for t in sampler.tasks if t not in model.heads or t not in data]
    if unknown:
        raise FtlabError(f"the sampler draws {unknown}, which the model or the data lack.")
    weighting = weighting if weighting is not None else FixedWeighting(sampler.tasks)
    torch.manual_seed(seed)  # dropout masks
    streams = {t: _shuffled_batches(data[t], collator, batch_size, torch.Generator().manual_seed(seed * 1000 + k))
               for k, t in enumerate(sampler.tasks)}
    groups = []
    for part, rate in ((model.encoder, lr), (model.heads, head_lr or lr)):
        trainable = [p for p in part.parameters() if p.requires_grad]  # biases and norms without weight decay
        groups += [{"params": [p for p in trainable if p.ndim > 1], "weight_decay": weight_decay, "lr": rate},
                   {"params": [p for p in trainable if p.ndim <= 1], "weight_decay": 0.0, "lr": rate}]
    own = [p for p in weighting.parameters() if p.requires_grad]
    if own:
        groups.append({"params": own, "weight_decay": 0.0, "lr": weighting_lr})
    optimizer = torch.optim.AdamW(groups, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _linear_schedule(steps, warmup_ratio))
    history = {"task": [], "loss": [], "weights": [], "counts": {t: 0 for t in sampler.tasks}}
    model.train()
    start = time.perf_counter()
    for step, task in enumerate(sampler.sample(steps), 1):
        batch = next(streams[task])
        _, loss = model(task, batch["input_ids"], batch["attention_mask"], batch["labels"])
        weighting({task: loss}).backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)  # heads not in this step keep grad None: AdamW skips them
        history["task"].append(task)
        history["loss"].append(float(loss.detach()))
        history["counts"][task] += 1
        if step % log_every == 0 or step == steps:
            history["weights"].append((step, weighting.weights()))
        if on_step is not None:
            on_step(step)
    history["seconds"] = time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
def predict(model: MultiTaskModel, task: str, dataset, collator, batch_size: int = 64) -> torch.Tensor:
    """Predicted classes of ``task``'s head for every row of ``dataset``, in order."""
    was_training = model.training
    model.eval()
    out = [model(task, b["input_ids"], b["attention_mask"])[0].argmax(-1) for b in batches(dataset, collator, batch_size)]
    model.train(was_training)
    return torch.cat(out)


def parameter_counts(model: MultiTaskModel) -> dict[str, int]:
    """Parameters of the shared encoder and of each head."""
    return {"encoder": sum(p.numel() for p in model.encoder.parameters()),
            **{f"head {t}": sum(p.numel() for p in h.parameters()) for t, h in model.heads.items()}}
