"""QLoRA building blocks: NF4 from scratch, block-wise quantisation, memory calculator, 4-bit loading.

Taught in notebooks/07_qlora.ipynb. Imports torch (and bitsandbytes/transformers lazily) only.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import torch

from ftlab.errors import FtlabError, describe

DTYPES = ("nf4", "fp4", "int4")


def nf4_code(offset: float = 0.9677083) -> torch.Tensor:
    """The 16 NF4 values (QLoRA): quantiles of N(0, 1), 8 positive + 7 negative + an exact zero, scaled to [-1, 1]."""
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])  # 8 positive
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])  # 7 negative
    code = torch.cat([pos, neg, torch.zeros(1, dtype=torch.float64)]).sort().values
    return (code / code.max()).float()


def int4_code() -> torch.Tensor:
    """Uniform symmetric int4: -7..7 scaled to [-1, 1] (15 evenly spaced levels)."""
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def fp4_code() -> torch.Tensor:
    """bitsandbytes' FP4 (1 sign, 2 exponent, 1 mantissa bit) values, normalised to [-1, 1]."""
    mags = torch.tensor([0.0, 0.0052083, 0.6666667, 1.0, 0.3333333, 0.5, 0.1666667, 0.25])
    return torch.cat([mags, -mags[1:]]).sort().values


def code_for(dtype: str) -> torch.Tensor:
    codes = {"nf4": nf4_code, "fp4": fp4_code, "int4": int4_code}
    if dtype not in codes:
        raise FtlabError(f"Unknown 4-bit data type {dtype!r}; choose one of {', '.join(DTYPES)}.")
    return codes[dtype]()


def nearest_code(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """For each value of ``x``, the index of the nearest ``code`` entry; ties go to the lower index.

    The answer of ``(x[..., None] - code).abs().argmin(-1)`` without its N x K tensor (0.9 GB for an 8-bit
    code on a 576 x 1536 weight). A binary search finds each value's neighbours in the sorted code and
    their distances are compared as argmin compares them: deciding by the midpoints instead differs
    from argmin within a rounding error of a midpoint.
    """
    dtype = torch.promote_types(x.dtype, code.dtype)  # the dtype argmin's subtraction would compute in
    values, order = code.to(dtype).sort(stable=True)
    if values.numel() == 1:
        return torch.zeros_like(x, dtype=torch.long)
    hi = torch.searchsorted(values, x.to(dtype)).clamp_(1, values.numel() - 1)
    lo = torch.searchsorted(values, values[hi - 1])  # first of equal entries: argmin's first index
    d_lo, d_hi = (x - values[lo]).abs(), (x - values[hi]).abs()
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (order[hi] < order[lo]))
    idx = order[torch.where(pick_hi, hi, lo)]
    # NaN or infinite values are equally far from every entry: argmin answers 0
    return torch.where(torch.isfinite(x), idx, 0)


def quantize_blockwise(w: torch.Tensor, code: torch.Tensor, block: int = 64):
    """Absmax per block of ``block`` values, then each value -> index of the nearest code entry."""
    if block < 1:
        raise FtlabError(f"block size must be >= 1, got {block}.")
    flat = w.detach().float().reshape(-1)
    pad = (-flat.numel()) % block
    blocks = torch.nn.functional.pad(flat, (0, pad)).reshape(-1, block)
    absmax = blocks.abs().amax(1, keepdim=True).clamp_min(1e-12)
    idx = nearest_code(blocks / absmax, code).to(torch.uint8)
    return idx, absmax.squeeze(1)


def dequantize_blockwise(idx, absmax, code, shape) -> torch.Tensor:
    n = torch.Size(shape).numel()
    return (code[idx.long()] * absmax.unsqueeze(1)).reshape(-1)[:n].reshape(shape)


def roundtrip(w: torch.Tensor, dtype: str = "nf4", block: int = 64, bits: int = 4) -> torch.Tensor:
    """Quantise and dequantise ``w``. ``bits`` != 4 only for "int" (uniform) codes: 2..8 bits."""
    if bits == 4:
        code = code_for(dtype)
    else:
        if not 2 <= bits <= 8:
            raise FtlabError(f"bits must be between 2 and 8, got {bits}.")
        half = 2 ** (bits - 1) - 1
        code = torch.arange(-half, half + 1, dtype=torch.float32) / half
    return dequantize_blockwise(*quantize_blockwise(w, code, block), code, w.shape)


def double_quant_bits(block: int = 64, block2: int = 256, bits: int = 4) -> dict[str, float]:
    """Bits per parameter: plain fp32 absmax per block vs 8-bit absmax + one fp32 scale per ``block2`` scales."""
    plain = bits + 32 / block
    double = bits + 8 / block + 32 / (block * block2)
    return {"plain": plain, "double": double, "saved": plain - double}


def double_quantize_scales(absmax: torch.Tensor, block2: int = 256) -> torch.Tensor:
    """Quantise the fp32 scales themselves to 8 bits (mean subtracted, absmax per ``block2``); returns them dequantised."""
    mean = absmax.mean()
    code = torch.arange(-127, 128, dtype=torch.float32) / 127
    return dequantize_blockwise(*quantize_blockwise(absmax - mean, code, block2), code, absmax.shape) + mean


# ---------------------------------------------------------------- memory calculator

BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "nf4": double_quant_bits()["double"] / 8}


@dataclass
class MemoryEstimate:
    weights_gb: float
    grads_gb: float
    optimizer_gb: float
    activations_gb: float

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.grads_gb + self.optimizer_gb + self.activations_gb


def estimate_memory(params: float, method: str = "qlora", lora_fraction: float = 0.004,
                    activations_gb: float = 0.0, quantized_fraction: float = 1.0,
                    other_bytes: float = 2.0) -> MemoryEstimate:
    """Training memory in GB for a model of ``params`` parameters.

    method: "full" (bf16 weights + bf16 grads + fp32 Adam m, v and master weights: 16 bytes/param),
    "lora" (bf16 frozen weights; adapters in fp32 with grads + Adam: 16 bytes/adapter param),
    "qlora" (NF4+DQ frozen weights ≈ 0.516 bytes/param, adapters as in LoRA).
    ``quantized_fraction``: share of parameters in quantised Linear layers (the rest, e.g. embeddings, keep
    ``other_bytes`` per parameter: 2 in bf16, 4 when loaded with an fp32 compute dtype).
    ``activations_gb`` is passed through: it depends on batch, length and checkpointing, not on the method.
    """
    from ..strategy import MIB, training_memory  # the one calculator; this keeps 07's GB view of it

    if method == "full":
        parts = training_memory(params, params, weight_bytes=2, master_weights=True)
    elif method in ("lora", "qlora"):
        adapter = params * lora_fraction
        per = BYTES["nf4"] if method == "qlora" else BYTES["bf16"]
        frozen_bytes = quantized_fraction * per + (1 - quantized_fraction) * other_bytes
        parts = training_memory(params + adapter, adapter, weight_bytes=frozen_bytes, trainable_bytes=4)
    else:
        raise FtlabError(f"Unknown method {method!r}; choose full, lora or qlora.")
    gb = MIB / 1e9  # MiB -> decimal GB
    return MemoryEstimate(parts["weights"] * gb, parts["gradients"] * gb, parts["optimizer"] * gb, activations_gb)


# ---------------------------------------------------------------- bitsandbytes

def import_bnb():
    """Import bitsandbytes quietly (it prints a kernel-loading line to stderr) and check 4-bit works here."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            import bitsandbytes as bnb
            import bitsandbytes.functional as F
    except ImportError:
        raise FtlabError("bitsandbytes is not installed: `pip install bitsandbytes` for 4-bit QLoRA.") from None
    try:
        q, state = F.quantize_4bit(torch.randn(64, 64), quant_type="nf4", blocksize=64)
        F.dequantize_4bit(q, state)
    except Exception as e:  # noqa: BLE001 - any failure means this build cannot do 4-bit here
        raise FtlabError(f"This bitsandbytes build ({getattr(bnb, '__version__', '?')}) cannot quantise to "
                         f"4 bits on this machine: a test quantisation of a 64 x 64 tensor failed with "
                         f"{describe(e)}. Use LoRA in 16/32-bit instead.") from e
    return bnb


def bnb_roundtrip(w: torch.Tensor, dtype: str = "nf4", block: int = 64) -> torch.Tensor:
    """bitsandbytes' own 4-bit quantise + dequantise (the reference for ``roundtrip``)."""
    import_bnb()
    import bitsandbytes.functional as F

    q, state = F.quantize_4bit(w.detach().float().contiguous(), quant_type=dtype, blocksize=block)
    return F.dequantize_4bit(q, state).reshape(w.shape)


def bnb_code(dtype: str = "nf4") -> torch.Tensor:
    import_bnb()
    import bitsandbytes.functional as F

    return F.get_4bit_type(dtype, device="cpu")[:16].float().sort().values


def is_quantized(model) -> bool:
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False)
                or getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None)


def load_quantized(path_or_model, bits: int = 4, dtype: str = "nf4", double_quant: bool = True,
                   compute_dtype: torch.dtype = torch.float32, device_map: str = "cpu", task: str = "causal-lm"):
    """Load a model from a folder in 4-bit (NF4/FP4, optional double quantisation) or 8-bit.

    ``task``: "causal-lm" (a decoder with its LM head) or "base" (the bare encoder/decoder, e.g. for a
    classification head of your own)."""
    if not isinstance(path_or_model, str):
        if is_quantized(path_or_model):
            raise FtlabError("This model is already quantised; load the original (16/32-bit) weights "
                             "and quantise those once.")
        raise FtlabError("load_quantized needs a model folder (save_pretrained first), not a model object.")
    if bits not in (4, 8):
        raise FtlabError(f"bitsandbytes loads 4- or 8-bit weights, got bits={bits}.")
    if dtype not in ("nf4", "fp4"):
        raise FtlabError(f"4-bit loading supports nf4 or fp4, got {dtype!r}.")
    import_bnb()
    from transformers import AutoModel, AutoModelForCausalLM, BitsAndBytesConfig

    if task not in ("causal-lm", "base"):
        raise FtlabError(f"load_quantized loads task 'causal-lm' or 'base', got {task!r}.")

    if bits == 4:
        cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=dtype,
                                 bnb_4bit_use_double_quant=double_quant, bnb_4bit_compute_dtype=compute_dtype)
    else:
        cfg = BitsAndBytesConfig(load_in_8bit=True)
    auto = AutoModelForCausalLM if task == "causal-lm" else AutoModel
    return auto.from_pretrained(path_or_model, quantization_config=cfg, device_map=device_map, dtype=compute_dtype)


def quantized_layer_bytes(model) -> tuple[int, int]:
    """(bytes now, bytes in fp16) of the Linear layers inside the transformer blocks (the quantised ones)."""
    import_bnb()
    import bitsandbytes as bnb

    now = fp16 = 0
    for m in model.modules():
        if isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt, torch.nn.Linear)) and m is not getattr(
                model, "lm_head", None):
            w = m.weight
            n = w.numel() if not isinstance(m, bnb.nn.Linear4bit) else m.in_features * m.out_features
            now += w.numel() * w.element_size()
            qs = getattr(w, "quant_state", None)
            if qs is not None:
                now += qs.absmax.numel() * qs.absmax.element_size()
                if getattr(qs, "state2", None) is not None:
                    now += qs.state2.absmax.numel() * 4 + qs.state2.code.numel() * 4
            scb = getattr(w, "SCB", None)
            if scb is not None:
                now += scb.numel() * scb.element_size()
            fp16 += n * 2
    return now, fp16
