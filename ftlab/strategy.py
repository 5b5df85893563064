"""Choosing a strategy: training-memory arithmetic (weights, gradients, optimiser state, in MiB) and
``recommend``, the rules notebook 10 teaches, each unit-tested.

Floor 1, no torch: plain arithmetic on parameter counts, so every method (freezing, LoRA, QLoRA) and every
notebook estimates memory the same way and in the same unit, MiB (2**20 bytes). Activations are left out:
they grow with batch × sequence length and depend on checkpointing, not on what trains.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FtlabError

UNIT = "MiB"
MIB = 2**20

# Optimiser state per trainable parameter, in bytes: AdamW keeps two fp32 moments (m, v).
OPTIMIZER_BYTES = {"adamw": 8.0, "adam": 8.0, "adamw-8bit": 2.0, "sgd-momentum": 4.0, "sgd": 0.0}


def training_memory(total_params: float, trainable_params: float, weight_bytes: float = 4, optimizer: str = "adamw",
                    trainable_bytes: float | None = None, grad_bytes: float | None = None,
                    master_weights: bool = False) -> dict[str, float]:
    """Memory to train a model of ``total_params`` parameters of which ``trainable_params`` train, in MiB.

    Returns ``{"weights", "gradients", "optimizer", "total"}``, every value in MiB (2**20 bytes):

    - weights: the frozen ``total - trainable`` parameters at ``weight_bytes`` each (4 fp32, 2 bf16,
      ≈0.52 NF4 with double quantisation) plus the trainable ones at ``trainable_bytes`` (default
      ``weight_bytes``; LoRA/QLoRA adapters are usually fp32: 4);
    - gradients: one per trainable parameter at ``grad_bytes`` (default: the trainable weights' bytes);
    - optimizer: the optimiser's state per trainable parameter (``OPTIMIZER_BYTES``: AdamW 8 = two fp32
      moments), plus a 4-byte fp32 master copy of each trainable weight when ``master_weights``
      (mixed-precision training of 16-bit weights: full bf16 fine-tuning is then 2 + 2 + 8 + 4 = 16 bytes).

    Activations come on top. Examples: ``training_memory(n, n)`` is full fp32 fine-tuning with AdamW
    (16 bytes/param); ``training_memory(n, n, weight_bytes=2, master_weights=True)`` full bf16 mixed
    precision (16 bytes/param); ``training_memory(n + a, a, weight_bytes=0.52, trainable_bytes=4)`` QLoRA
    with ``a`` adapter parameters in fp32.
    """
    if optimizer not in OPTIMIZER_BYTES:
        raise FtlabError(f"Unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZER_BYTES)}.")
    if not 0 <= trainable_params <= total_params:
        raise FtlabError(f"trainable_params ({trainable_params:,}) must lie between 0 and total_params "
                         f"({total_params:,}).")
    trainable_bytes = weight_bytes if trainable_bytes is None else trainable_bytes
    grad_bytes = trainable_bytes if grad_bytes is None else grad_bytes
    frozen = total_params - trainable_params
    optimizer_bytes = OPTIMIZER_BYTES[optimizer] + (4 if master_weights else 0)
    parts = {"weights": (frozen * weight_bytes + trainable_params * trainable_bytes) / MIB,
             "gradients": trainable_params * grad_bytes / MIB,
             "optimizer": trainable_params * optimizer_bytes / MIB}
    parts["total"] = sum(parts.values())
    return parts


# ---------------------------------------------------------------- which method to reach for

# Share of blocks to freeze by how close the new task is to what the model already represents
# (the seeds' adaptive rule): similarity > 0.8 -> ~70 %, > 0.5 -> ~40 %, else ~20 %.
FREEZE_SHARE = ((0.8, 0.7), (0.5, 0.4), (0.0, 0.2))
SMALL_GPU_GB = 8.0  # below this, full fine-tuning of anything but a small model does not fit


def freeze_share(similarity: float) -> float:
    """Share of the blocks to keep frozen for a task of this similarity (0..1) to the pretraining data."""
    if not 0.0 <= similarity <= 1.0:
        raise FtlabError(f"domain_similarity must lie in [0, 1]; got {similarity}.")
    return next(share for threshold, share in FREEZE_SHARE if similarity > threshold or threshold == 0.0)


@dataclass
class Recommendation:
    method: str
    reasons: list[str]
    memory_mib: dict[str, float]  # weights / gradients / optimizer / total of the recommended method


def recommend(gpu_memory_gb: float, model_params: float, domain_similarity: float = 0.5, n_tasks: int = 1,
              goal: str = "adapt", data_size: int = 10_000) -> Recommendation:
    """A method and the reasons for it, from the rules the curriculum teaches (notebook 10).

    ``goal``: "adapt" (make the model do the task) or "analysis" (find out what it already knows).
    Rules, first match wins: analysis -> probing; several tasks on one base -> adapters; a GPU under
    8 GB or one too small for full fine-tuning -> QLoRA if even LoRA's bf16 weights do not fit, else LoRA;
    a close domain -> freezing (share of blocks by similarity); plenty of memory, a distant task and
    enough data -> full fine-tuning; otherwise LoRA.
    """
    if goal not in ("adapt", "analysis"):
        raise FtlabError(f"goal must be 'adapt' or 'analysis'; got {goal!r}.")
    if gpu_memory_gb <= 0 or model_params <= 0 or n_tasks < 1 or data_size < 0:
        raise FtlabError("gpu_memory_gb and model_params must be positive, n_tasks at least 1, data_size >= 0.")
    budget = gpu_memory_gb * 1e9 / MIB
    adapters = 0.004 * model_params  # LoRA r 8 on attention: ~0.4 % of the weights
    full = training_memory(model_params, model_params, weight_bytes=2, master_weights=True)
    lora = training_memory(model_params + adapters, adapters, weight_bytes=2, trainable_bytes=4)
    qlora = training_memory(model_params + adapters, adapters, weight_bytes=0.52, trainable_bytes=4)
    fits = f"{gpu_memory_gb:g} GB"
    if goal == "analysis":
        return Recommendation("probing", ["you want to know what the model represents, not change it: linear "
                                          "probes on frozen layers, with a control task (notebook 09)"],
                              training_memory(model_params, 0, weight_bytes=2))
    if n_tasks > 1:
        return Recommendation("adapters", [f"{n_tasks} tasks share one frozen base; each task is a small file you "
                                           "switch at run time (notebook 03)"], lora)
    if gpu_memory_gb < SMALL_GPU_GB or full["total"] > budget:
        why = f"full fine-tuning needs ~{full['total'] / 1024:.0f} GiB before activations; you have {fits}"
        if lora["total"] > budget:
            return Recommendation("QLoRA", [why, f"even LoRA's 16-bit weights need ~{lora['total'] / 1024:.1f} GiB: "
                                            "quantise the frozen base to 4 bits (notebook 07)"], qlora)
        return Recommendation("LoRA", [why, "LoRA (or prefix tuning) trains < 1 % of the weights; its "
                                       "optimiser state is tiny (notebooks 05, 06)"], lora)
    if domain_similarity > 0.5:
        share = freeze_share(domain_similarity)
        return Recommendation("freezing", [f"the task is close to the pretraining (similarity {domain_similarity:g}):"
                                           f" freeze ~{share:.0%} of the blocks from the bottom, train the rest "
                                           "(notebook 02)"],
                              training_memory(model_params, (1 - share) * model_params, weight_bytes=2,
                                              master_weights=True))
    if data_size >= 10_000:
        return Recommendation("full fine-tuning", [f"{fits} fits full fine-tuning (~{full['total'] / 1024:.0f} GiB "
                                                   "before activations)", f"a distant task (similarity "
                                                   f"{domain_similarity:g}) with {data_size:,} examples can use every "
                                                   "weight (notebook 01)"], full)
    return Recommendation("LoRA", [f"only {data_size:,} examples: fewer trainable weights overfit less, and "
                                   "LoRA is the strongest cheap default (notebook 06)"], lora)
