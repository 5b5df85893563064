import pytest
import torch

from ftlab.errors import FtlabError
from ftlab.methods import quant

INT8 = torch.arange(-127, 128, dtype=torch.float32) / 127  # the 8-bit code double_quantize_scales uses


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)  # the tests draw random weights: the same ones on every run


def argmin_nearest(x, code):
    """The broadcasting search that quantize_blockwise used before: an N x K tensor of distances."""
    return (x.unsqueeze(-1) - code).abs().argmin(-1)


def near_midpoints(code, ulps=4):
    """Each midpoint of the sorted code and the float32 values up to ``ulps`` steps either side of it."""
    values = code.sort().values
    mid = (values[:-1] + values[1:]) / 2
    out, up, down = [mid], mid, mid
    for _ in range(ulps):
        up, down = torch.nextafter(up, torch.tensor(2.0)), torch.nextafter(down, torch.tensor(-2.0))
        out += [up, down]
    return torch.cat(out)


def test_nf4_code_matches_bitsandbytes():
    torch.testing.assert_close(quant.nf4_code(), quant.bnb_code("nf4"), atol=2e-4, rtol=0)


def test_roundtrip_matches_bitsandbytes():
    w = torch.randn(128, 64) * 0.02
    for dtype in ("nf4", "fp4"):
        torch.testing.assert_close(quant.roundtrip(w, dtype, 64), quant.bnb_roundtrip(w, dtype, 64),
                                   atol=1e-6, rtol=1e-4)


def test_nf4_beats_int4_on_normal_weights():
    w = torch.randn(256, 256)
    err = {d: (quant.roundtrip(w, d) - w).pow(2).mean() for d in quant.DTYPES}
    assert err["nf4"] < err["int4"] and err["nf4"] < err["fp4"]


def test_double_quant_bits():
    b = quant.double_quant_bits()
    assert b["plain"] == 4.5 and abs(b["double"] - 4.127) < 1e-3
    s = torch.rand(1024) * 0.1
    assert (quant.double_quantize_scales(s) - s).abs().max() < 1e-3


def test_memory_calculator_65b_fits_48gb():
    assert quant.estimate_memory(65e9, "qlora").total_gb < 48
    assert quant.estimate_memory(65e9, "full").total_gb > 1000
    assert quant.estimate_memory(7e9, "lora").weights_gb > 3 * quant.estimate_memory(7e9, "qlora").weights_gb


def test_errors():
    with pytest.raises(FtlabError, match="nf4"):
        quant.code_for("int3")
    with pytest.raises(FtlabError, match="bits"):
        quant.roundtrip(torch.randn(8), "int4", 4, bits=1)
    with pytest.raises(FtlabError, match="method"):
        quant.estimate_memory(1e9, "prefix")


def test_already_quantized_and_missing_bnb(monkeypatch):
    class Fake(torch.nn.Module):
        is_loaded_in_4bit = True
    with pytest.raises(FtlabError, match="already quantised"):
        quant.load_quantized(Fake())
    import builtins
    real = builtins.__import__

    def no_bnb(name, *a, **k):
        if name.startswith("bitsandbytes"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_bnb)
    with pytest.raises(FtlabError, match="not installed"):
        quant.import_bnb()


def test_broken_4bit_build(monkeypatch):
    quant.import_bnb()
    import bitsandbytes.functional as F

    def boom(*a, **k):
        raise RuntimeError("no kernel")
    monkeypatch.setattr(F, "quantize_4bit", boom)
    with pytest.raises(FtlabError, match="cannot quantise.*failed with RuntimeError: no kernel") as e:
        quant.import_bnb()
    assert isinstance(e.value.__cause__, RuntimeError)


@pytest.mark.parametrize("name", ["nf4", "fp4", "int8"])
def test_nearest_code_equals_the_broadcasting_search(name):
    code = INT8 if name == "int8" else quant.code_for(name)
    x = torch.cat([torch.rand(20_000) * 2.2 - 1.1, near_midpoints(code), code,
                   torch.tensor([float("nan"), float("inf"), -float("inf"), -0.0])])
    assert torch.equal(quant.nearest_code(x, code), argmin_nearest(x, code))
    # an unsorted code with a repeated entry: ties still go to the first index, as argmin's do
    shuffled = torch.cat([code, code[:3]])[torch.randperm(code.numel() + 3)]
    assert torch.equal(quant.nearest_code(x, shuffled), argmin_nearest(x, shuffled))


@pytest.mark.parametrize("name", ["nf4", "fp4", "int8"])
def test_quantize_blockwise_unchanged_at_midpoints(name):
    code = INT8 if name == "int8" else quant.code_for(name)
    ties = near_midpoints(code)
    ties = torch.cat([ties, torch.zeros(-ties.numel() % 63)]).reshape(-1, 63)
    blocks = torch.cat([torch.ones(len(ties), 1), ties], 1)  # absmax 1: the values reach the search unchanged
    w = torch.cat([blocks.reshape(-1), torch.randn(64 * 50)]).reshape(-1, 32)
    idx, absmax = quant.quantize_blockwise(w, code, 64)
    flat = w.reshape(-1, 64)
    expected = argmin_nearest(flat / flat.abs().amax(1, keepdim=True), code).to(torch.uint8)
    assert torch.equal(idx, expected) and torch.equal(absmax[: blocks.shape[0]], torch.ones(blocks.shape[0]))


def test_8bit_code_on_a_real_weight_needs_no_n_by_k_tensor():
    """SmolLM2-135M's MLP weight, 576 x 1536, with 255 code values: argmin over all of them allocated 0.9 GB."""
    from torch.profiler import ProfilerActivity, profile

    w = torch.randn(576, 1536) * 0.02
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        idx, _ = quant.quantize_blockwise(w, INT8, 64)
    largest = max(e.cpu_memory_usage for e in prof.events())
    assert largest < 16 * 2**20  # the weight itself is 3.4 MB; the old search allocated 860 MB at once
    assert idx.shape == (576 * 1536 // 64, 64) and int(idx.max()) <= 254
