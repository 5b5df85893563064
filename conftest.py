"""Loaded for every pytest run in this repository (unit tests, notebooks under nbval, browser tests)."""

import os
from pathlib import Path


def pytest_configure(config):
    # Under pytest-xdist each worker (and the notebook kernels it starts, which inherit its environment)
    # trains into its own runs folder, so two notebooks that reuse a run name never share a checkpoint.
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and os.environ.get("FTLAB_RUNS"):
        os.environ["FTLAB_RUNS"] = str(Path(os.environ["FTLAB_RUNS"]) / worker)
