"""scripts/gpu_check.py: on a CPU machine it exits at once and writes nothing; its pure parts are right."""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"
DEFAULT_OUT = SCRIPT.parent.parent / "results" / "gpu"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def _state(folder):
    return {name: (folder / name).stat().st_mtime_ns if (folder / name).exists() else None
            for name in ("report.json", "report.md")}


@pytest.mark.parametrize("explicit_out", [True, False])
def test_without_cuda_it_prints_one_line_exits_0_and_writes_nothing(tmp_path, explicit_out):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}  # no CUDA, even on a GPU machine
    out = tmp_path / "gpu"
    before = _state(DEFAULT_OUT)
    extra = ["--out", str(out)] if explicit_out else []
    done = subprocess.run([sys.executable, str(SCRIPT), *extra], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["gpu_check: no CUDA device here; nothing measured."]
    assert not out.exists()
    assert _state(DEFAULT_OUT) == before


@pytest.mark.parametrize("name, label, tflops", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.0),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H200", "H200", 989.0),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0),
    ("NVIDIA A100 80GB PCIe", "A100", 312.0),
    ("NVIDIA L4", "L4", 121.0),
    ("Tesla T4", "T4 (fp16)", 65.0),
    ("NVIDIA L40S", "unknown", None),  # not L4
    ("NVIDIA H100 NVL", "unknown", None),  # neither SXM nor PCIe
    ("NVIDIA GeForce RTX 4090", "unknown", None),
])
def test_peak_tflops_lookup(name, label, tflops):
    assert gpu_check.peak_tflops(name) == (label, tflops)


def test_flops_and_mfu_arithmetic():
    assert gpu_check.flops_per_token("full", 100) == 600
    assert gpu_check.flops_per_token("lora", 100, 10) == 460
    assert gpu_check.flops_per_token("qlora", 100, 10) == 460  # counted as LoRA
    u = gpu_check.utilisation(tokens_per_s=1000.0, flops_tok=6e9, peak=989.0)  # 6e12 FLOP/s
    assert u["achieved_tflops"] == pytest.approx(6.0)
    assert u["mfu"] == pytest.approx(6.0 / 989.0)
    assert gpu_check.utilisation(1000.0, 6e9, None)["mfu"] == "unknown"


def _tiny(tied=True):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=tied))


@pytest.mark.parametrize("tied", [True, False])
def test_param_counts_leave_out_embeddings(tied):
    model = _tiny(tied)
    total, non_emb = gpu_check.param_counts(model)
    assert total == sum(p.numel() for p in model.parameters())
    assert non_emb == total - 100 * 64 * (1 if tied else 2)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_prepare_and_train_steps_on_cpu(method):
    model, opt = gpu_check.prepare(method, _tiny())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert all("lora_" in n for n in trainable) if method == "lora" else len(trainable) > 0
    batch = torch.randint(0, 100, (2, 8))
    run = gpu_check.train_steps(model, opt, batch, steps=4, deadline=time.monotonic() + 60)
    assert run["steps_run"] == 4 and run["timed_steps"] == 2 and run["stopped_early"] is None
    assert run["tokens_per_s"] > 0 and torch.isfinite(torch.tensor(run["loss_last"]))


def test_train_steps_stop_at_the_deadline():
    model, opt = gpu_check.prepare("full", _tiny())
    run = gpu_check.train_steps(model, opt, torch.randint(0, 100, (2, 8)), steps=5, deadline=time.monotonic() - 1)
    assert run["steps_run"] == 1 and run["stopped_early"] == "time budget" and run["tokens_per_s"] is None


def test_run_section_records_errors_and_skips_past_the_budget():
    report = {}

    def boom():
        raise RuntimeError("CUDA out of memory")

    gpu_check.run_section(report, "ok", lambda: {"x": 1}, start=time.monotonic())
    gpu_check.run_section(report, "bad", boom, start=time.monotonic())
    gpu_check.run_section(report, "late", lambda: {"x": 1}, start=time.monotonic() - 500, budget=420)
    assert report["ok"]["x"] == 1 and "seconds" in report["ok"]
    assert report["bad"]["error"] == "RuntimeError: CUDA out of memory"
    assert report["late"]["skipped"].startswith("time budget")


def test_utilisation_and_markdown_from_a_report():
    report = {"meta": {"started": "now"}, "notes": ["a note"],
              "environment": {"gpu": "NVIDIA H200", "peak_bf16_tflops": 989.0, "gpu_memory_bytes": 2**30,
                              "versions": {"torch": "2.x"}},
              "model": {"params_non_embedding": 100_000_000},
              "full": {"tokens_per_s": 10_000.0, "weights_bytes": 2**20, "peak_allocated_bytes": 2**21},
              "lora": {"tokens_per_s": 20_000.0, "trainable_params": 1_000_000},
              "qlora": {"error": "ValueError: no 4-bit"}}
    util = gpu_check.add_utilisation(report)
    assert set(util) == {"full", "lora"}
    assert util["full"]["achieved_tflops"] == pytest.approx(6e8 * 1e4 / 1e12)
    assert util["lora"]["mfu"] == pytest.approx((4e8 + 6e6) * 2e4 / 989e12)
    report["utilisation"] = util
    md = gpu_check.render_markdown(report)
    assert "| qlora | ValueError: no 4-bit |" in md and "NVIDIA H200" in md and "1,024.0 MiB" in md
    assert "torch 2.x" in md and "- a note" in md
    report["environment"]["peak_bf16_tflops"] = "unknown"
    assert gpu_check.add_utilisation(report)["full"]["mfu"] == "unknown"


@pytest.mark.filterwarnings("ignore:Paged optimizers are not supported on CPU")
def test_qlora_path_on_cpu(tmp_path):
    """The same NF4 + double-quant load, kbit preparation, LoRA and paged AdamW as on CUDA (bnb's CPU backend)."""
    from ftlab.errors import FtlabError
    from ftlab.methods import quant

    try:
        quant.import_bnb()
    except FtlabError as e:
        pytest.skip(str(e))
    _tiny().save_pretrained(tmp_path)
    model = quant.load_quantized(str(tmp_path), bits=4, compute_dtype=torch.bfloat16, device_map="cpu")
    facts = gpu_check.quant_facts(model)
    assert facts == {"linear4bit_layers": 14, "quant_type": "nf4", "double_quant": True,
                     "compute_dtype": "torch.bfloat16"}
    model, opt = gpu_check.prepare("qlora", model)
    assert type(opt).__name__ == "PagedAdamW"
    run = gpu_check.train_steps(model, opt, torch.randint(0, 100, (2, 8)), steps=3, deadline=time.monotonic() + 60)
    assert run["steps_run"] == 3 and run["tokens_per_s"] > 0
