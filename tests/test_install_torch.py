"""tools/install_torch.py: which PyTorch build `make` installs, given the machine."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def it(load_tool):
    return load_tool("install_torch")


def test_linux_without_gpu_takes_cpu_index_then_default(it):
    attempts, why = it.choose(gpu=False, system="Linux", requirement="torch==2.13.0")
    assert attempts == [["torch==2.13.0", "--index-url", "https://download.pytorch.org/whl/cpu", "--retries", "1"],
                        ["torch==2.13.0"]]
    assert "CPU build" in why


def test_unreachable_cpu_index_goes_straight_to_default(it):
    attempts, why = it.choose(gpu=False, system="Linux", requirement="torch==2.13.0", cpu_index_reachable=False)
    assert attempts == [["torch==2.13.0"]] and "unreachable" in why


def test_linux_with_gpu_takes_default_cuda_build(it):
    attempts, why = it.choose(gpu=True, system="Linux", requirement="torch==2.13.0")
    assert attempts == [["torch==2.13.0"]] and "CUDA" in why


def test_macos_takes_default(it):
    attempts, _ = it.choose(gpu=False, system="Darwin", requirement="torch==2.13.0")
    assert attempts == [["torch==2.13.0"]]


def test_version_comes_from_constraints(it, tmp_path):
    c = tmp_path / "c.txt"
    c.write_text("# comment\ntorchvision==0.1\ntorch == 2.9.1  # pinned\npeft==0.21.2\n")
    assert it.pinned_torch(c) == "torch==2.9.1"
    assert it.pinned_torch(tmp_path / "missing.txt") == "torch"
    assert it.pinned_torch(ROOT / "constraints.txt").startswith("torch==")


def test_gpu_detection_follows_driver_and_nvidia_smi(it, monkeypatch, tmp_path):
    monkeypatch.setattr(it, "Path", lambda p: tmp_path / "no-driver")  # no /proc/driver/nvidia
    monkeypatch.setattr(it.shutil, "which", lambda name: None)
    assert it.nvidia_gpu_present() is False
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: x)'\n")
    smi.chmod(0o755)
    monkeypatch.setattr(it.shutil, "which", lambda name: str(smi))
    assert it.nvidia_gpu_present() is True
