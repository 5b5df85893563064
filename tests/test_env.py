import warnings

import pytest
import torch

import ftlab
from ftlab.env import banner


def test_profiles_size_runs_from_one_place():
    assert set(ftlab.PROFILES) == {"smoke", "cpu", "gpu"}
    smoke, cpu = ftlab.PROFILES["smoke"], ftlab.PROFILES["cpu"]
    assert smoke.encoder == "tiny-minilm" and cpu.encoder == "minilm" and cpu.decoder == "smollm2-135m"
    assert smoke.steps < cpu.steps and smoke.train_rows < 1000


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("FTLAB_PROFILE", "cpu")
    assert ftlab.get_profile().name == "cpu"
    monkeypatch.delenv("FTLAB_PROFILE")
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert ftlab.get_profile().name == expected


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FTLAB_PROFILE", "laptop")
    with pytest.raises(ftlab.FtlabError, match=r"Unknown profile 'laptop' \(from FTLAB_PROFILE\)\. "
                                               r"Choose one of smoke, cpu, gpu\. Set FTLAB_PROFILE"):
        ftlab.get_profile()


def test_bf16_only_where_the_hardware_has_it():
    p = ftlab.get_profile("gpu")
    assert p.bf16 == (torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def test_setup_seeds_and_prints_one_banner(capsys):
    p = ftlab.setup(seed=3, profile="smoke")
    a = torch.rand(3)
    ftlab.setup(seed=3, profile="smoke")
    assert torch.equal(a, torch.rand(3))
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0] == banner(p)
    assert "profile smoke" in lines[0] and "seed 3" in lines[0] and "transformers" in lines[0]


def warnings_after_quiet(module: str, message: str) -> list[str]:
    """The FutureWarnings that still show after ``quiet()`` for a warning raised in ``module``."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")  # under the filters quiet() adds, whatever pytest's config says
        ftlab.quiet()
        warnings.warn_explicit(message, FutureWarning, f"{module.replace('.', '/')}.py", 1, module=module)
    return [str(w.message) for w in seen if w.category is FutureWarning]


def test_quiet_keeps_futurewarnings_from_ftlab():
    assert warnings_after_quiet("ftlab.train", "this argument will change") == ["this argument will change"]
    # even with the text of a silenced library message: only its library's module is silenced
    noisy = "`gradient_checkpointing_enable` is deprecated and will be removed in v6."
    assert warnings_after_quiet("ftlab.methods.quant", noisy) == [noisy]


def test_quiet_silences_known_library_futurewarnings():
    for message in ("`is_gradient_checkpointing` is deprecated and will be removed in v6.",
                    "`gradient_checkpointing_enable` is deprecated and will be removed in v6."):
        assert warnings_after_quiet("transformers.modeling_utils", message) == []
    other = "some other transformers change"
    assert warnings_after_quiet("transformers.modeling_utils", other) == [other]
