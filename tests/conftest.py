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


@pytest.fixture
def trainer_before_5_3(monkeypatch):
    """The Trainer rule of transformers 5.0-5.2: no evaluation at a last step that is not a multiple of
    eval_steps. Newer Trainers evaluate there themselves, so this puts the old rule back to test ftlab's guard."""
    from transformers.trainer_callback import DefaultFlowCallback

    original = DefaultFlowCallback.on_step_end

    def on_step_end(self, args, state, control, **kw):
        control = original(self, args, state, control, **kw)
        control.should_evaluate = control.should_evaluate and state.global_step % state.eval_steps == 0
        return control

    monkeypatch.setattr(DefaultFlowCallback, "on_step_end", on_step_end)


@pytest.fixture(scope="session")
def load_tool():
    """Import a script under tools/ as a module, so its pure functions can be tested: ``load_tool("lab")``."""
    import importlib.util
    from pathlib import Path

    def load(name: str):
        path = Path(__file__).resolve().parent.parent / "tools" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
