"""Knowledge distillation (Hinton et al. 2015, https://arxiv.org/abs/1503.02531): a small student learns
from a big teacher's softened output distribution as well as from the hard labels.

Taught in notebooks/08_distillation.ipynb. Imports torch (and transformers lazily) only.

How it plugs into the Hugging Face Trainer without a callback: the Trainer calls
``compute_loss_func(outputs, labels, num_items_in_batch)`` and never shows the loss the *inputs*, so the
teacher cannot run inside the loss. ``Distiller`` wraps the student; in training mode its forward also runs
the frozen teacher on the same batch (or takes cached ``teacher_logits`` from the batch) and puts the
teacher's logits on the outputs, where ``distillation_loss`` finds them.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ftlab.batching import batches
from ftlab.errors import FtlabError

from .blocks import find_blocks


@dataclass
class DistillConfig:
    temperature: float = 2.0  # T > 1 softens both distributions so the "dark knowledge" (wrong-class odds) shows
    alpha: float = 0.5  # weight of the soft (teacher) term; 1 - alpha weighs cross-entropy on the hard labels


def soft_targets(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """softmax(logits / T): T = 1 is the model's own distribution, large T tends to uniform."""
    if temperature <= 0:
        raise FtlabError(f"temperature must be > 0, got {temperature}.")
    return torch.softmax(logits.float() / temperature, dim=-1)


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None,
            temperature: float = 2.0, alpha: float = 0.5, reduction: str = "mean") -> torch.Tensor:
    """alpha * T² * KL(p_teacher^T || p_student^T) + (1 - alpha) * CE(student, labels), per example or averaged.

    The T² keeps the soft term's gradients the same size whatever T (they shrink as 1/T² otherwise).
    ``labels=None`` (or ``alpha=1``) gives the pure soft loss. ``reduction``: "mean", "sum" or "none".
    """
    if not 0.0 <= alpha <= 1.0:
        raise FtlabError(f"alpha weighs the teacher term and must be in [0, 1], got {alpha}.")
    if reduction not in ("mean", "sum", "none"):
        raise FtlabError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
    if student_logits.shape != teacher_logits.shape:
        raise FtlabError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ: both models need the same labels.")
    if temperature <= 0:
        raise FtlabError(f"temperature must be > 0, got {temperature}.")
    log_p_s = F.log_softmax(student_logits.float() / temperature, dim=-1)  # (B, C)
    log_p_t = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)  # (B, C), no gradient
    soft = (log_p_t.exp() * (log_p_t - log_p_s)).sum(-1) * temperature**2  # (B,) KL per example
    if labels is None or alpha == 1.0:
        per_example = alpha * soft if labels is not None else soft
    else:
        hard = F.cross_entropy(student_logits.float(), labels, reduction="none")  # (B,)
        per_example = alpha * soft + (1.0 - alpha) * hard
    if reduction == "none":
        return per_example
    return per_example.sum() if reduction == "sum" else per_example.mean()


def distillation_loss(config: DistillConfig | None = None):
    """A ``loss_fn`` for ``ftlab.train`` / the Trainer's ``compute_loss_func(outputs, labels, num_items_in_batch)``.

    With ``outputs.teacher_logits`` (a ``Distiller`` in training mode) it is ``kd_loss``; without them
    (evaluation) plain cross-entropy, so validation losses of all runs compare.
    """
    config = config or DistillConfig()

    def loss_fn(outputs, labels, num_items_in_batch=None):
        student = outputs["logits"]
        teacher = outputs.get("teacher_logits") if hasattr(outputs, "get") else None
        if teacher is None:
            per_example = F.cross_entropy(student.float(), labels, reduction="none")
        else:
            per_example = kd_loss(student, teacher, labels, config.temperature, config.alpha, reduction="none")
        # With gradient accumulation the Trainer passes the number of labels in the whole accumulated batch.
        return per_example.sum() / num_items_in_batch if num_items_in_batch else per_example.mean()

    return loss_fn


class Distiller(torch.nn.Module):
    """The student, plus a frozen teacher that runs on each training batch.

    The teacher is kept in a plain dict, not as a submodule: the Trainer then neither optimises, counts,
    checkpoints nor switches it to train mode (it stays in eval mode: no dropout, so its logits for a row
    never change). A batch may carry ``teacher_logits`` computed once beforehand (offline distillation);
    otherwise the teacher runs under ``no_grad`` (online). In eval mode only the student runs.
    """

    accepts_loss_kwargs = False  # the Trainer must not pass num_items_in_batch into forward

    def __init__(self, student: torch.nn.Module, teacher: torch.nn.Module):
        super().__init__()
        self.student = student
        self._frozen = {"teacher": teacher.eval().requires_grad_(False)}

    @property
    def teacher(self) -> torch.nn.Module:
        return self._frozen["teacher"]

    def forward(self, teacher_logits: torch.Tensor | None = None, **inputs):
        outputs = self.student(**inputs)  # logits (B, C)
        if self.training:
            if teacher_logits is None:
                device = outputs["logits"].device
                teacher = self.teacher
                if next(teacher.parameters()).device != device:  # the Trainer moved only the student
                    teacher.to(device)
                with torch.no_grad():
                    teacher_logits = teacher(**inputs)["logits"]  # (B, C)
            outputs["teacher_logits"] = teacher_logits
        return outputs


@torch.no_grad()
def add_teacher_logits(teacher, dataset, collator, batch_size: int = 64):
    """Offline distillation: run the teacher once over ``dataset`` and store its logits in a
    ``teacher_logits`` column, which ``Distiller`` then uses instead of running the teacher every step."""
    teacher.eval()
    device = next(teacher.parameters()).device
    logits = []
    for batch in batches(dataset, collator, batch_size):
        batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        logits.append(teacher(**batch)["logits"].float().cpu())  # (B, C)
    return dataset.add_column("teacher_logits", torch.cat(logits).tolist())


def layer_student(teacher, layers) -> torch.nn.Module:
    """A copy of ``teacher`` keeping only the blocks ``layers`` (DistilBERT keeps every other one).

    Embeddings, pooler and head are copied too, so the student starts close to the teacher.
    """
    n = teacher.config.num_hidden_layers
    layers = list(layers)
    if not layers or any(not 0 <= i < n for i in layers) or len(set(layers)) != len(layers):
        raise FtlabError(f"layers must be distinct indices in 0..{n - 1} (the teacher has {n}), got {layers}.")
    student = copy.deepcopy(teacher).requires_grad_(True)
    _, blocks = find_blocks(student)
    kept = torch.nn.ModuleList([blocks[i] for i in layers])
    for parent in student.modules():  # swap the list in place, wherever the architecture keeps it
        for name, child in parent.named_children():
            if child is blocks:
                setattr(parent, name, kept)
    for new_index, block in enumerate(kept):  # attention layers that know their own index (caches)
        for m in block.modules():
            if hasattr(m, "layer_idx"):
                m.layer_idx = new_index
    student.config.num_hidden_layers = len(layers)
    if getattr(student.config, "layer_types", None):
        student.config.layer_types = [student.config.layer_types[i] for i in layers]
    return student


def random_student(teacher, num_layers: int = 2, hidden_size: int = 128, heads: int = 2, seed: int = 0):
    """A small, randomly initialised model of the teacher's class and vocabulary (no teacher weights)."""
    if hidden_size % heads:
        raise FtlabError(f"hidden_size ({hidden_size}) must be divisible by heads ({heads}).")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers, config.hidden_size, config.num_attention_heads = num_layers, hidden_size, heads
    config.intermediate_size = 4 * hidden_size
    if getattr(config, "layer_types", None):
        config.layer_types = config.layer_types[:num_layers]
    torch.manual_seed(seed)
    return type(teacher)(config)


@torch.no_grad()
def latency_ms(model, batch: dict, repeats: int = 10, warmup: int = 2) -> float:
    """Median milliseconds for one forward pass of ``batch`` (inference, no gradients)."""
    model.eval()
    device = next(model.parameters()).device
    batch = {k: v.to(device) for k, v in batch.items() if k != "labels"}
    times = []
    for i in range(warmup + repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(**batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]
