"""Training memory of 0.5 B / 7 B / 70 B models per method, computed offline; taught in notebook 10.

Nothing is downloaded and no weight is allocated: a model's config (known hyperparameters) is built on the
meta device with accelerate's ``init_empty_weights``, so a 70 B model costs a second and no memory. Its
parameter and layer shapes feed the arithmetic of ``ftlab.strategy`` (``training_memory`` for weights,
gradients and optimiser state, ``activation_memory`` for activations), every figure in MiB (2**20 bytes).

An estimate, not a measurement: it leaves out the CUDA context and kernels' workspace (typically several
hundred MB on a GPU), the allocator's fragmentation and cached blocks, and temporary buffers of the backward
pass and the optimiser step. ``validate_on_measured`` predicts a run notebook 10 measured, so the gap can be
seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from .errors import FtlabError
from .strategy import MIB, activation_memory, training_memory

# ---------------------------------------------------------------- reference models (hyperparameters only)


def _reference_configs() -> dict:
    from transformers import LlamaConfig, Qwen2Config

    qwen = Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
                       max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)
    llama7 = LlamaConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                         intermediate_size=11008, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
    llama70 = LlamaConfig(hidden_size=8192, num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                          intermediate_size=28672, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5)
    for config, name in ((qwen, "Qwen/Qwen2.5-0.5B"), (llama7, "meta-llama/Llama-2-7b-hf"),
                         (llama70, "meta-llama/Llama-2-70b-hf")):
        config._name_or_path = name  # the model each config reproduces (never downloaded)
    return {"0.5B": qwen, "7B": llama7, "70B": llama70}


REFERENCE_CONFIGS = _reference_configs()
REFERENCE_MODELS = {"0.5B": "Qwen2.5-0.5B", "7B": "Llama-2-7B", "70B": "Llama-2-70B"}  # table column names

# ---------------------------------------------------------------- methods: bytes per parameter

# NF4 with double quantisation (Dettmers et al. 2023, QLoRA, §3): 4 bits per weight, one absmax per block of
# 64 weights quantised to 8 bits, and one fp32 constant per 256 of those blocks: 4 + 8/64 + 32/(64*256) bits.
NF4_DQ_BYTES = (4 + 8 / 64 + 32 / (64 * 256)) / 8  # 0.5159 bytes
# LLM.int8 (bitsandbytes 8-bit): 1 byte per weight; its one fp32 scale per output row is left out (< 0.01 bit).
INT8_BYTES = 1.0


@dataclass(frozen=True)
class Method:
    trains: str             # "all", "blocks" (the last ``trainable_blocks``) or "adapters" (LoRA)
    weight_bytes: float     # per frozen weight (per weight when all train)
    trainable_bytes: float  # per trainable weight, counting autocast's bf16 copy of an fp32 weight (4 + 2)
    grad_bytes: float       # per trainable weight
    optimizer: str          # key of strategy.OPTIMIZER_BYTES
    act_bytes: int          # bytes per activation value: 4 fp32, 2 bf16
    why: str
    quant_bytes: float | None = None  # QLoRA: per weight of the quantised linear layers


# Frozen weights are bf16; trainable ones fp32 under bf16 autocast, as LLaMA-Factory does (it upcasts
# trainable parameters to fp32 unless pure_bf16) and as the Transformers docs' "model training anatomy" counts.
METHODS = {
    "full (fp32 AdamW)": Method("all", 4, 4, 4, "adamw", 4,
                                "fp32 weights 4 + gradients 4 + AdamW's two fp32 moments 8 = 16 bytes/param"),
    "full (bf16 mixed precision, AdamW)": Method(
        "all", 6, 6, 4, "adamw", 2, "fp32 weights 4 + autocast's bf16 copy 2 + fp32 gradients 4 + AdamW 8 = 18 "
        "bytes/param (Transformers docs' count; 16 if gradients and weights are bf16 beside an fp32 master copy)"),
    "full (pure bf16)": Method("all", 2, 2, 2, "adamw-bf16", 2,
                               "bf16 weights 2 + bf16 gradients 2 + two bf16 moments 4 = 8 bytes/param"),
    "freeze (last 2 blocks)": Method("blocks", 2, 6, 4, "adamw", 2,
                                     "frozen bf16 weights 2; the last 2 blocks train in fp32 (4 + 2 + 4 + 8 = 18)"),
    "LoRA (bf16 base)": Method("adapters", 2, 6, 4, "adamw", 2,
                               "bf16 base 2 bytes/param; fp32 adapters r 8 on every linear layer, 18 bytes each"),
    "QLoRA 8-bit": Method("adapters", 2, 6, 4, "adamw", 2, "LLM.int8 linear layers 1 byte/param; embeddings, "
                          "norms and the output layer stay bf16; fp32 adapters as LoRA", quant_bytes=INT8_BYTES),
    "QLoRA 4-bit": Method("adapters", 2, 6, 4, "adamw", 2, f"NF4 + double quantisation {NF4_DQ_BYTES:.4f} bytes/"
                          "param on linear layers; the rest bf16; fp32 adapters as LoRA", quant_bytes=NF4_DQ_BYTES),
}

# ---------------------------------------------------------------- shapes from the meta device


def meta_model(config, head: str = "causal-lm") -> nn.Module:
    """The model of ``config`` on the meta device: every shape, no memory, no download.

    ``head``: "causal-lm" (AutoModelForCausalLM) or "base" (AutoModel, e.g. a BERT encoder).
    """
    from accelerate import init_empty_weights
    from transformers import AutoModel, AutoModelForCausalLM

    if head not in ("causal-lm", "base"):
        raise FtlabError(f"head must be 'causal-lm' or 'base'; got {head!r}.")
    auto = AutoModelForCausalLM if head == "causal-lm" else AutoModel
    with init_empty_weights():
        model = auto.from_config(config, trust_remote_code=False)
    # Under init_empty_weights, from_config leaves a tied lm_head untied (transformers 5.23, accelerate 1.15:
    # Qwen2.5-0.5B then counts 630 M instead of 494 M); tie_weights restores the sharing the real model has.
    model.tie_weights()
    return model


def count_params(model: nn.Module) -> int:
    """Parameters of ``model``, a shared (tied) tensor counted once."""
    return sum(p.numel() for p in model.parameters())


def _linears(model: nn.Module) -> list[tuple[str, int, int]]:
    """(name, in, out) of every nn.Linear but the output layer (PEFT's "all-linear" and bitsandbytes skip it)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return [(name, m.in_features, m.out_features) for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and m is not output]


def _lora_count(linears, r: int, targets) -> int:
    if targets != "all-linear":
        targets = tuple(targets)
    hit = [(i, o) for name, i, o in linears if targets == "all-linear" or name.rsplit(".", 1)[-1] in targets]
    if not hit:
        raise FtlabError(f"No linear layer matches LoRA targets {targets!r}; give module names such as "
                         "('q_proj', 'v_proj') or 'all-linear'.")
    return sum(r * (i + o) for i, o in hit)  # A: r x in, B: out x r


def lora_params(model: nn.Module, r: int = 8, targets=("q_proj", "v_proj")) -> int:
    """LoRA's trainable parameters on ``model``: ``r*(in+out)`` per targeted nn.Linear (``targets``: the
    modules' last names, or "all-linear" for every linear layer but the output layer)."""
    return _lora_count(_linears(model), r, targets)


@dataclass(frozen=True)
class Census:
    params: int                     # unique parameters
    linear_weights: int             # weights of the linear layers a QLoRA base quantises (not the output layer)
    block_params: tuple[int, ...]   # parameters of each transformer block, bottom to top
    linears: tuple                  # (name, in, out) per linear layer, for LoRA counts
    gated: bool                     # SwiGLU MLP (gate_proj) rather than one activation
    vocab_out: int                  # width of the output layer (0: no LM head)


def census(model: nn.Module) -> Census:
    """The counts ``plan`` needs, read once from a (meta) model."""
    linears = _linears(model)
    n_layers = model.config.num_hidden_layers
    blocks = next((m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers), None)
    if blocks is None:
        raise FtlabError(f"Found no list of {n_layers} blocks in {type(model).__name__}.")
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    modules = dict(model.named_modules())
    return Census(params=count_params(model),
                  linear_weights=sum(modules[name].weight.numel() for name, _, _ in linears),
                  block_params=tuple(count_params(b) for b in blocks), linears=tuple(linears),
                  gated=any(name.endswith("gate_proj") for name, _, _ in linears),
                  vocab_out=output.out_features if isinstance(output, nn.Linear) else 0)


@lru_cache(maxsize=None)
def _reference_census(name: str) -> Census:
    return census(meta_model(REFERENCE_CONFIGS[name]))


def _resolve(config_or_name):
    if isinstance(config_or_name, str):
        if config_or_name not in REFERENCE_CONFIGS:
            raise FtlabError(f"Unknown model {config_or_name!r}; choose one of {', '.join(REFERENCE_CONFIGS)} "
                             "or pass a transformers config.")
        return REFERENCE_CONFIGS[config_or_name], _reference_census(config_or_name)
    return config_or_name, census(meta_model(config_or_name))


# ---------------------------------------------------------------- the plan


def plan(config_or_name, method: str, batch: int = 1, seq: int = 512, *, checkpointing: bool = True,
         attention_scores: bool = False, lora_r: int = 8, lora_targets="all-linear",
         trainable_blocks: int = 2) -> dict[str, float]:
    """Memory to fine-tune a decoder with ``method`` (see ``METHODS``), in MiB:
    ``{"weights", "gradients", "optimizer", "activations", "total"}``.

    ``config_or_name``: "0.5B", "7B", "70B" (``REFERENCE_CONFIGS``) or a transformers config.
    Assumptions, LLaMA-Factory's defaults so the figures line up with its table:

    - gradient checkpointing on for every method (``disable_gradient_checkpointing: false``); LLaMA-Factory
      checkpoints only blocks that train and runs frozen blocks without autograd, so "freeze" keeps the
      activations of its trainable blocks only;
    - attention through fused SDPA / flash kernels, which store no s×s scores (``attention_scores=False``);
    - LoRA r 8 on every linear layer but the output layer (``lora_target: all``, ``lora_rank: 8``);
      QLoRA quantises those linear layers and keeps embeddings, norms, biases and the output layer in bf16;
    - activations (``strategy.activation_memory``) plus the logits the loss keeps: transformers upcasts them
      to fp32 before cross-entropy, whose log-softmax output (4 bytes × seq × batch × vocab) is saved.

    Left out: LoRA's r-wide intermediates, QLoRA's one dequantised layer at a time, transient gradients of
    the logits, the CUDA context and allocator overhead.
    """
    if method not in METHODS:
        raise FtlabError(f"Unknown method {method!r}; choose one of: {', '.join(METHODS)}.")
    if batch < 1 or seq < 1:
        raise FtlabError(f"batch and seq must be at least 1; got batch={batch}, seq={seq}.")
    config, c = _resolve(config_or_name)
    m = METHODS[method]
    total, layers_with_grad = c.params, config.num_hidden_layers
    if m.trains == "all":
        trainable = total
    elif m.trains == "blocks":
        trainable = sum(c.block_params[-trainable_blocks:])
        layers_with_grad = trainable_blocks
    else:
        trainable = _lora_count(c.linears, lora_r, lora_targets)
        total += trainable
    weight_bytes = m.weight_bytes
    if m.quant_bytes is not None:  # mean bytes of the frozen base: quantised linear layers, the rest bf16
        weight_bytes = (c.linear_weights * m.quant_bytes + (c.params - c.linear_weights) * 2) / c.params
    parts = training_memory(total, trainable, weight_bytes=weight_bytes, trainable_bytes=m.trainable_bytes,
                            grad_bytes=m.grad_bytes, optimizer=m.optimizer)
    parts.pop("total")
    stack = activation_memory(config.hidden_size, layers_with_grad, config.num_attention_heads, seq, batch,
                              config.intermediate_size, m.act_bytes, checkpointing, gated=c.gated,
                              attention_scores=attention_scores)
    logits = 4 * seq * batch * c.vocab_out / MIB  # fp32 log-softmax output the loss saves: (batch, seq, vocab)
    parts["activations"] = stack + logits
    parts["total"] = sum(parts.values())
    return parts


def memory_table(names=("0.5B", "7B", "70B"), batch: int = 1, seq: int = 512, **options):
    """GiB per method (rows) and reference model (columns) from ``plan``; ``options`` go to ``plan``."""
    import pandas as pd

    return pd.DataFrame({REFERENCE_MODELS.get(n, n): {method: plan(n, method, batch, seq, **options)["total"] / 1024
                                                       for method in METHODS} for n in names})


# ---------------------------------------------------------------- LLaMA-Factory's published estimates

# LLaMA-Factory README, "Hardware Requirement" (https://github.com/hiyouga/LLaMA-Factory#hardware-requirement),
# marked "* estimated", as stored at commit ff6d4d1 (2026-08-18, version 0.9.6.dev0). Rows are quoted with
# their "Bits" column; values in GB, for 7B and 70B models (the README's last column: 18x, 8x, 2x, x, x/2, x/4
# GB for x billion parameters). Which of our methods each row corresponds to: LLAMA_FACTORY_METHODS.
LLAMA_FACTORY_SOURCE = ("LLaMA-Factory README, Hardware Requirement table (estimated), "
                        "https://github.com/hiyouga/LLaMA-Factory#hardware-requirement, commit ff6d4d1, v0.9.6.dev0")
LLAMA_FACTORY_7B = {"Full (bf16 or fp16), 32 bits": 120, "Full (pure_bf16), 16 bits": 60,
                    "Freeze/LoRA/GaLore/APOLLO/BAdam/OFT, 16 bits": 16, "QLoRA / QOFT, 8 bits": 10,
                    "QLoRA / QOFT, 4 bits": 6, "QLoRA / QOFT, 2 bits": 4}
LLAMA_FACTORY_70B = {"Full (bf16 or fp16), 32 bits": 1200, "Full (pure_bf16), 16 bits": 600,
                     "Freeze/LoRA/GaLore/APOLLO/BAdam/OFT, 16 bits": 160, "QLoRA / QOFT, 8 bits": 80,
                     "QLoRA / QOFT, 4 bits": 48, "QLoRA / QOFT, 2 bits": 24}
LLAMA_FACTORY_METHODS = {"Full (bf16 or fp16), 32 bits": ("full (bf16 mixed precision, AdamW)",),
                         "Full (pure_bf16), 16 bits": ("full (pure bf16)",),
                         "Freeze/LoRA/GaLore/APOLLO/BAdam/OFT, 16 bits": ("freeze (last 2 blocks)", "LoRA (bf16 base)"),
                         "QLoRA / QOFT, 8 bits": ("QLoRA 8-bit",), "QLoRA / QOFT, 4 bits": ("QLoRA 4-bit",),
                         "QLoRA / QOFT, 2 bits": ()}  # 2-bit (HQQ/AQLM) is not modelled here
# Until commit a4167fd (2024-04-16) the table named its columns "Full AMP" / "Full 16" and listed Freeze (16 bits)
# on its own row: 20 GB for 7B, 200 GB for 70B; it has since shared LoRA's 16 GB / 160 GB row. Training the
# last 2 blocks in fp32 with AdamW costs 18 bytes for each of their parameters, which is why "freeze" lands
# nearer the old row.
LLAMA_FACTORY_FREEZE_UNTIL_2024_04 = {"7B": 20, "70B": 200}


def llama_factory_comparison(name: str = "7B", batch: int = 1, seq: int = 2048, **options):
    """Our estimate beside LLaMA-Factory's published one, in GB (10**9 bytes, the unit the README uses).

    Defaults batch 1 and seq 2048 are those of LLaMA-Factory's example training configs
    (``per_device_train_batch_size: 1``, ``cutoff_len: 2048``); the README does not state its own.
    """
    import pandas as pd

    published = {"7B": LLAMA_FACTORY_7B, "70B": LLAMA_FACTORY_70B}
    if name not in published:
        raise FtlabError(f"LLaMA-Factory publishes figures for {', '.join(published)}; got {name!r}.")
    rows = []
    for row, ours in LLAMA_FACTORY_METHODS.items():
        for method in ours:
            gb = plan(name, method, batch, seq, **options)["total"] * MIB / 1e9
            rows.append({"LLaMA-Factory row": row, "published GB": published[name][row], "method here": method,
                         "estimate GB": round(gb, 1), "estimate / published": round(gb / published[name][row], 2)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- a check against a run we measured


def validate_on_measured(model="minilm", batch: int = 16, seq: int = 64, num_labels: int = 2,
                         attention_scores: bool = True) -> dict[str, float]:
    """Predicted memory of full fp32 fine-tuning with AdamW of an encoder (BERT-like), in MiB: weights,
    gradients, optimizer (16 bytes/param together) and activations (fp32, no checkpointing).

    ``model``: "minilm" or "tiny-minilm" (offline, ``ftlab.models``) or a BERT-like transformers config
    (hidden_size, num_hidden_layers, num_attention_heads, intermediate_size). The defaults are the stored cpu
    comparison's full fine-tuning run: batch 16, length 64 (its padded batches are at most that long), a
    ``num_labels`` linear head; the s×s scores are stored (``attention_scores=True``: on the CPU, attention
    with dropout in training saves them, eager and SDPA alike in torch 2.13 / transformers 5.23).

    What the measured peak growth of resident memory (RSS) includes and this does not: the imports and the
    safetensors file pages read while the model loads, torch's allocator and glibc caching and fragmentation,
    the optimiser step's temporaries (torch's foreach AdamW allocates parameter-sized buffers), gradients of
    activations alive during the backward pass, the Trainer, data loader and evaluation buffers, and the
    embeddings' own activations. Expect the measurement above the prediction.
    """
    from transformers import AutoConfig

    from .models import load_model, model_path

    if isinstance(model, str):
        if model == "minilm":
            config = AutoConfig.from_pretrained(model_path("minilm"))
        elif model == "tiny-minilm":
            config = load_model("tiny-minilm", task="base")[0].config  # a 2-layer random model: built in ms
        else:
            raise FtlabError(f"validate_on_measured knows 'minilm' and 'tiny-minilm'; got {model!r} "
                             "(or pass a BERT-like transformers config).")
    else:
        config = model
    n = count_params(meta_model(config, head="base")) + config.hidden_size * num_labels + num_labels
    parts = training_memory(n, n)  # fp32 weights, gradients and AdamW's two moments
    parts.pop("total")
    parts["activations"] = activation_memory(config.hidden_size, config.num_hidden_layers,
                                             config.num_attention_heads, seq, batch, config.intermediate_size,
                                             bytes_per_value=4, attention_scores=attention_scores)
    parts["total"] = sum(parts.values())
    return parts


def saved_activations_mib(model: nn.Module, batch: int, seq: int, **inputs) -> float:
    """What autograd actually keeps for backward after one training-mode forward of ``model`` on random
    token ids (batch × seq), in MiB: every saved tensor's storage counted once, parameters excluded.
    The measurement ``strategy.activation_memory`` is checked against (tests/test_memory.py)."""
    saved = {}

    def pack(t):
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return t

    ids = torch.randint(0, min(model.config.vocab_size, 1000), (batch, seq))
    was_training = model.training
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(input_ids=ids, attention_mask=torch.ones_like(ids), **inputs)
    finally:
        model.train(was_training)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    return sum(size for ptr, size in saved.items() if ptr not in weights) / MIB
