"""Choosing a strategy: training-memory arithmetic (weights, gradients, optimiser state, in MiB) and
``recommend``, the rules notebook 10 teaches, each unit-tested.

Floor 1, no torch: plain arithmetic on parameter counts, so every method (freezing, LoRA, QLoRA) and every
notebook estimates memory the same way and in the same unit, MiB (2**20 bytes). ``training_memory`` leaves
activations out: they grow with batch × sequence length and depend on checkpointing, not on what trains;
``activation_memory`` estimates them separately (ftlab.memory adds the two for whole models).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import FtlabError

UNIT = "MiB"
MIB = 2**20

# Optimiser state per trainable parameter, in bytes: AdamW keeps two fp32 moments (m, v).
# "adamw-bf16": the two moments kept in bf16, as in pure-bf16 training (2 + 2 bytes).
OPTIMIZER_BYTES = {"adamw": 8.0, "adam": 8.0, "adamw-bf16": 4.0, "adamw-8bit": 2.0, "sgd-momentum": 4.0, "sgd": 0.0}


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


def activation_memory(hidden: int, layers: int, heads: int, seq: int, batch: int, intermediate: int | None = None,
                      bytes_per_value: float = 2, checkpointing: bool = False, *, gated: bool = False,
                      attention_scores: bool = True) -> float:
    """Activations a transformer stack keeps for the backward pass, in MiB (2**20 bytes).

    Source: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models"
    (arXiv:2205.05198), §4, eq. 1: one layer of hidden size h, a heads, sequence s and batch b stores
    ``s*b*h*(34 + 5*a*s/h)`` bytes with 16-bit values and 1-byte dropout masks, no tensor parallelism, no
    recomputation. The 34 splits into attention 11 (QKV input 2, Q and K 4, V 2, output-projection input 2,
    dropout mask 1), MLP 19 (input 2, activation-function input 8 and output 8 at width 4h, dropout mask 1)
    and two LayerNorm inputs 4; ``5*a*s/h`` is the s×s score matrices (softmax output 2, dropout mask 1,
    dropout output 2, per head).

    Adaptations, each an assumption:

    - ``intermediate`` (default 4h): the MLP's two width-i tensors count ``4*s*b*i`` instead of 16 sbh;
      ``gated=True`` (SwiGLU: gate, up, act(gate), their product) counts ``8*s*b*i``.
    - ``attention_scores=False`` drops the ``5*a*s/h`` term: fused attention kernels (flash / memory-efficient
      SDPA) recompute the scores instead of storing them, the effect of the paper's selective recomputation (§5).
    - ``bytes_per_value`` 4 (fp32 training) scales everything by 4/2, dropout masks included (torch keeps
      them as 1-byte bools, so this overestimates fp32 by one mask byte per value).
    - ``checkpointing=True`` (full recomputation, §5): each layer keeps only its input, ``2*s*b*h`` bytes,
      plus one layer's full activations while it is recomputed in the backward pass.

    Not counted: embeddings, the final norm and the output layer / loss (the caller adds the logits),
    grouped-query attention's smaller K and V (slight overestimate), and temporary buffers of the backward
    pass. Taught in notebook 10.
    """
    if min(hidden, layers, heads, seq, batch) < 0 or heads == 0 or bytes_per_value <= 0:
        raise FtlabError("hidden, layers, seq and batch must be >= 0, heads and bytes_per_value positive.")
    i = 4 * hidden if intermediate is None else intermediate
    sbh = seq * batch * hidden
    attention = 11 * sbh + (5 * heads * seq * seq * batch if attention_scores else 0)
    mlp = 3 * sbh + (8 if gated else 4) * seq * batch * i
    per_layer = attention + mlp + 4 * sbh  # bytes at 16 bit; 34*sbh + 5*a*s^2*b for a plain 4h GPT layer
    if checkpointing:  # layer inputs only, plus the one layer being recomputed
        total = layers * 2 * sbh + (per_layer if layers else 0)
    else:
        total = layers * per_layer
    return total * bytes_per_value / 2 / MIB


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
