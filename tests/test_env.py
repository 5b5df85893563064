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
    with pytest.raises(ftlab.FtlabError, match="Unknown profile 'laptop'. Choose one of smoke, cpu, gpu"):
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
