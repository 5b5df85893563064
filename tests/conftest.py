import os

import pytest

# Tests never reach the hub: a name that is not offline must fail fast and clearly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("FTLAB_PROFILE", "smoke")


@pytest.fixture(autouse=True)
def runs_in_tmp(tmp_path, monkeypatch):
    """Every test trains into its own folder, so checkpoints never leak between tests."""
    monkeypatch.setenv("FTLAB_RUNS", str(tmp_path / "runs"))
    yield


@pytest.fixture(scope="session")
def smoke():
    import ftlab

    return ftlab.setup(seed=0, profile="smoke", verbose=False)
