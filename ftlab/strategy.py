"""Training-memory arithmetic for choosing a strategy: weights, gradients and optimiser state, in MiB.

Floor 1, no torch: plain arithmetic on parameter counts, so every method (freezing, LoRA, QLoRA) and every
notebook estimates memory the same way and in the same unit, MiB (2**20 bytes). Activations are left out:
they grow with batch × sequence length and depend on checkpointing, not on what trains.
"""

from __future__ import annotations

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
