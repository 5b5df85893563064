import pytest
import torch

from ftlab.errors import FtlabError
from ftlab.methods import quant


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
    with pytest.raises(FtlabError, match="cannot quantise"):
        quant.import_bnb()
