"""ftlab.memory: offline parameter counts, bytes per parameter per method, the activation estimate (by hand
and against what autograd saves), and the 7B figures beside LLaMA-Factory's published estimates."""

import pytest
import torch

import ftlab as fl
from ftlab import memory as mem
from ftlab.strategy import MIB, activation_memory

# Published sizes: Qwen2.5-0.5B 0.49 B (model card), Llama-2-7B 6.74 B, Llama-2-70B 68.98 B.
PUBLISHED = {"0.5B": 494e6, "7B": 6.74e9, "70B": 68.98e9}
EXACT = {"0.5B": 494_032_768, "7B": 6_738_415_616, "70B": 68_976_648_192}


@pytest.fixture(scope="module")
def llama7():
    return mem.meta_model(mem.REFERENCE_CONFIGS["7B"])


@pytest.mark.parametrize("name", ["0.5B", "7B", "70B"])
def test_reference_configs_count_the_published_parameters_on_the_meta_device(name):
    model = mem.meta_model(mem.REFERENCE_CONFIGS[name])
    assert next(model.parameters()).device.type == "meta"  # nothing allocated
    n = mem.count_params(model)
    assert n == pytest.approx(PUBLISHED[name], rel=0.01)
    assert n == EXACT[name]


def test_accelerate_sizes_agree_with_the_count():
    from accelerate.utils import compute_module_sizes

    model = mem.meta_model(mem.REFERENCE_CONFIGS["0.5B"])  # tied embeddings: counted once by both
    size = compute_module_sizes(model, dtype=torch.bfloat16)[""]  # includes the rotary buffer (a few bytes)
    assert size == pytest.approx(2 * mem.count_params(model), rel=1e-6)


def test_lora_count_on_llama_7b(llama7):
    assert mem.lora_params(llama7, r=8, targets=("q_proj", "v_proj")) == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    per_block = 4 * 8 * (4096 + 4096) + 2 * 8 * (4096 + 11008) + 8 * (11008 + 4096)  # attention, gate+up, down
    assert mem.lora_params(llama7, r=8, targets="all-linear") == 32 * per_block  # lm_head excluded


@pytest.mark.parametrize("method, per_param", [("full (fp32 AdamW)", 16), ("full (bf16 mixed precision, AdamW)", 18),
                                               ("full (pure bf16)", 8)])
def test_bytes_per_parameter_of_full_fine_tuning(method, per_param):
    p = mem.plan("7B", method)
    assert (p["weights"] + p["gradients"] + p["optimizer"]) * MIB == pytest.approx(per_param * EXACT["7B"])


def test_lora_and_qlora_weights():
    n, a = EXACT["7B"], 32 * (4 * 8 * 8192 + 3 * 8 * (4096 + 11008))  # r 8 on every linear layer
    linear = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)  # the weights QLoRA quantises; embeddings, lm_head stay bf16
    assert mem.NF4_DQ_BYTES == (4 + 8 / 64 + 32 / (64 * 256)) / 8 == pytest.approx(0.5159, abs=1e-4)
    lora = mem.plan("7B", "LoRA (bf16 base)")
    assert lora["weights"] * MIB == pytest.approx(2 * n + 6 * a)  # fp32 adapters + autocast's bf16 copy
    assert (lora["gradients"] + lora["optimizer"]) * MIB == pytest.approx(12 * a)
    q4 = mem.plan("7B", "QLoRA 4-bit")
    assert q4["weights"] * MIB == pytest.approx(linear * mem.NF4_DQ_BYTES + (n - linear) * 2 + 6 * a)
    q8 = mem.plan("7B", "QLoRA 8-bit")
    assert q8["weights"] * MIB == pytest.approx(linear * 1 + (n - linear) * 2 + 6 * a)


def test_freeze_trains_the_last_two_blocks_only():
    block = 4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096  # attention, MLP, two RMSNorm weights
    p = mem.plan("7B", "freeze (last 2 blocks)")
    assert p["gradients"] * MIB == pytest.approx(2 * block * 4)
    # LLaMA-Factory runs frozen blocks without autograd: 2 block inputs + 1 recomputed block + fp32 logits
    two = activation_memory(4096, 2, 32, 512, 1, 11008, checkpointing=True, gated=True, attention_scores=False)
    assert p["activations"] == pytest.approx(two + 4 * 512 * 32000 / MIB)


def test_activation_memory_by_hand():
    # Korthikanti et al. eq. 1 at h 4096, a 32, s 2048, b 1: 2048*4096*(34 + 5*32*2048/4096) = 956,301,312 B
    assert activation_memory(4096, 1, 32, 2048, 1) == 912.0
    assert activation_memory(4096, 32, 32, 2048, 1) == 32 * 912.0
    assert activation_memory(4096, 32, 32, 2048, 1, bytes_per_value=4) == 64 * 912.0
    # full recomputation: 32 layer inputs (2*s*b*h = 16 MiB each) + one layer = 512 + 912 MiB
    assert activation_memory(4096, 32, 32, 2048, 1, checkpointing=True) == 512.0 + 912.0
    # SwiGLU width 11008, no stored scores: (11 + 3 + 4)*s*b*h + 8*s*b*i bytes per layer
    s, h, i = 2048, 4096, 11008
    assert activation_memory(h, 1, 32, s, 1, i, gated=True, attention_scores=False) == (18 * s * h + 8 * s * i) / MIB


def test_activation_estimate_is_close_to_what_autograd_saves():
    model, _ = fl.load_model("tiny-minilm", task="base")  # 2 layers, hidden 64, 2 heads, width 128, fp32
    measured = mem.saved_activations_mib(model, batch=16, seq=64)
    c = model.config
    estimate = activation_memory(c.hidden_size, c.num_hidden_layers, c.num_attention_heads, 64, 16,
                                 c.intermediate_size, bytes_per_value=4)
    # measured 10.8 MiB vs 9.0 estimated (transformers 5.23): the formula leaves out the embeddings and the
    # contiguous copies matmul makes of transposed Q, K, V; it must stay within a quarter of the measurement.
    assert 0.75 < estimate / measured < 1.25


def test_seven_b_beside_llama_factory():
    # batch 1, length 2048: LLaMA-Factory's example configs (the README states no batch or length)
    gb = {m: mem.plan("7B", m, batch=1, seq=2048)["total"] * MIB / 1e9 for m in mem.METHODS}
    assert gb["full (bf16 mixed precision, AdamW)"] == pytest.approx(120, rel=0.3)
    assert gb["full (pure bf16)"] == pytest.approx(60, rel=0.3)
    assert gb["LoRA (bf16 base)"] == pytest.approx(16, rel=0.5)
    assert gb["QLoRA 8-bit"] == pytest.approx(10, rel=0.5)
    assert gb["QLoRA 4-bit"] == pytest.approx(6, rel=0.5)
    # freezing 2 blocks trains 405 M parameters at 18 bytes: above LoRA's 16 GB row
    assert gb["freeze (last 2 blocks)"] > 16 > gb["LoRA (bf16 base)"]
    table = mem.llama_factory_comparison("7B")
    assert set(table["method here"]) == set(mem.METHODS) - {"full (fp32 AdamW)"}


def test_memory_table_shape_and_order():
    table = mem.memory_table()
    assert list(table.columns) == ["Qwen2.5-0.5B", "Llama-2-7B", "Llama-2-70B"]
    assert list(table.index) == list(mem.METHODS)
    for model in table.columns:
        col = table[model]
        assert (col["QLoRA 4-bit"] < col["QLoRA 8-bit"] < col["LoRA (bf16 base)"] < col["full (pure bf16)"]
                < col["full (fp32 AdamW)"] < col["full (bf16 mixed precision, AdamW)"])


def test_prediction_for_the_measured_minilm_run():
    p = mem.validate_on_measured("minilm")  # batch 16, length 64, fp32 AdamW, 2-label head
    assert p["weights"] * MIB / 4 == 22_713_986  # the trainable count the stored comparison recorded
    assert p["optimizer"] == 2 * p["weights"] == 2 * p["gradients"]
    assert p["activations"] == activation_memory(384, 6, 12, 64, 16, 1536, bytes_per_value=4)


def test_bad_input_is_a_clear_error():
    with pytest.raises(fl.FtlabError, match="full \\(pure bf16\\)"):
        mem.plan("7B", "dora")
    with pytest.raises(fl.FtlabError, match="0.5B, 7B, 70B"):
        mem.plan("13B", "LoRA (bf16 base)")
    with pytest.raises(fl.FtlabError, match="LoRA targets"):
        mem.plan("7B", "LoRA (bf16 base)", lora_targets=("query",))
    with pytest.raises(fl.FtlabError, match="7B, 70B"):
        mem.llama_factory_comparison("0.5B")
    with pytest.raises(fl.FtlabError, match="minilm"):
        mem.validate_on_measured("bert-base")
