"""ftlab.launcher: one call (and one widget) from model, dataset, method and steps to a saved adapter."""

import json

import pytest
import torch
from safetensors import safe_open

from ftlab import FtlabError
from ftlab.compare_methods import METHODS
from ftlab.launcher import launch, launchable, launcher_widget, resolve_lr


@pytest.fixture
def results(tmp_path, monkeypatch):
    """A results folder of the test's own, and no committed comparison to fall back on: the test decides
    whether a stored comparison exists."""
    import ftlab.results

    folder = tmp_path / "results"
    monkeypatch.setenv("FTLAB_RESULTS", str(folder))
    monkeypatch.setattr(ftlab.results, "RESULTS_DIR", tmp_path / "no-committed-results")
    return folder


def store_comparison(folder, methods: dict) -> None:
    path = folder / "compare" / "smoke" / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"protocol": {"profile": "smoke", "steps": 24, "task": "rotten_tomatoes", "model": ""},
                                "methods": methods, "baselines": {}}))


def trainable_shapes(model) -> dict:
    return {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}


def saved_shapes(path) -> dict:
    with safe_open(path, framework="pt") as f:  # fails unless the file is safetensors
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def test_lora_saves_exactly_its_trainable_tensors(smoke, results, tmp_path):
    r = launch(smoke, "LoRA", steps=2, live=False)
    assert r["method"] == "LoRA" and r["steps"] == 2 and r["dataset"] == "rotten_tomatoes"
    # no stored comparison here: the middle of LoRA's grid, and the result says so
    assert r["lr"] == sorted(METHODS["LoRA"].lrs)[1] and r["lr_source"].startswith("middle of the grid")
    saved = tmp_path / "runs" / "launcher-tiny-minilm-rotten-tomatoes-lora" / "trainable.safetensors"
    assert r["saved_to"] == str(saved) and saved.is_file()
    fresh = METHODS["LoRA"].build(smoke, 0, 2).model  # the same builder, untrained: same names and shapes
    expected = trainable_shapes(fresh)
    assert saved_shapes(saved) == expected
    assert any("lora_A" in n for n in expected) and "head.weight" in expected
    assert r["trainable"] == sum(torch.Size(s).numel() for s in expected.values())
    full_mb = sum(p.numel() * p.element_size() for p in fresh.parameters()) / 2**20
    assert r["size_mb"] == round(saved.stat().st_size / 2**20, 4) and r["size_mb"] < 0.02 * full_mb
    assert 0 <= r["test_accuracy"] <= 1 and 0 <= r["test_f1"] <= 1 and isinstance(r["collapsed"], bool)
    stored = json.loads((saved.parent / "launcher.json").read_text())
    assert stored["lr"] == r["lr"] and stored["profile"] == "smoke"


def test_head_only_uses_the_stored_rate_and_saves_the_head(smoke, results, tmp_path):
    store_comparison(results, {"head only": {"lr": 0.0123}})
    out = tmp_path / "adapter"
    r = launch(smoke, "head only", steps=2, out_dir=out, live=False)
    assert r["lr"] == 0.0123 and r["lr_source"].startswith("stored comparison of profile smoke")
    assert "tiny-minilm on rotten_tomatoes at 24 steps" in r["lr_source"]
    assert saved_shapes(out / "trainable.safetensors") == {"head.weight": (2, 64), "head.bias": (2,)}
    assert r["trainable"] == 2 * 64 + 2 and r["saved_to"] == str(out / "trainable.safetensors")


def test_rate_sources(smoke, results):
    assert resolve_lr(smoke, "LoRA", 1e-3) == (1e-3, "given")
    store_comparison(results, {"head only": {"lr": 0.03}})
    lr, source = resolve_lr(smoke, "LoRA")  # a comparison without a LoRA row
    assert lr == 2e-3 and "has no row for 'LoRA'" in source
    for bad in (0, -1e-3, float("nan"), "fast"):
        with pytest.raises(FtlabError, match="lr must be a positive number"):
            resolve_lr(smoke, "LoRA", bad)


def test_bad_input_is_one_clear_error(smoke, results):
    valid = r"Unknown method 'LORA' \(did you mean 'LoRA'\?\)\. Choose one of: full fine-tuning, head only"
    with pytest.raises(FtlabError, match=valid) as e:
        launch(smoke, "LORA", steps=2, live=False)
    assert "distilled student" not in str(e.value)  # it is not offered ...
    with pytest.raises(FtlabError, match="needs a teacher"):  # ... and says why when asked for
        launch(smoke, "distilled student", steps=2, live=False)
    assert "distilled student" not in launchable() and len(launchable()) == len(METHODS) - 1
    for steps in (0, -3, 2.5):
        with pytest.raises(FtlabError, match="steps must be a whole number"):
            launch(smoke, "LoRA", steps=steps, live=False)
    with pytest.raises(FtlabError, match="Unknown dataset 'imdb'.*rotten_tomatoes, chinese_reviews"):
        launch(smoke, "LoRA", dataset="imdb", steps=2, live=False)
    with pytest.raises(FtlabError, match=r"needs the columns \['text', 'label'\]"):  # ftlab.data's own error
        launch(smoke, "LoRA", dataset="instructions", steps=2, live=False)


def test_widget_trains_on_click_and_shows_errors_as_one_line(smoke, results, tmp_path):
    box = launcher_widget(smoke)
    c = box.controls
    assert c["model"].value == "tiny-minilm" and c["lr"].value == "auto"
    labels = dict((v, k) for k, v in c["method"].options)
    assert labels["LoRA"] == "LoRA — 低秩适应" and "distilled student" not in labels
    assert set(c["dataset"].options) == {"rotten_tomatoes", "chinese_reviews"}

    c["method"].value, c["dataset"].value, c["steps"].value, c["lr"].value = "head only", "chinese_reviews", 2, "0.01"
    box.button.click()
    assert box.errors == [] and len(box.results) == 1
    r = box.results[0]
    assert (r["method"], r["dataset"], r["steps"], r["lr"], r["lr_source"]) == ("head only", "chinese_reviews", 2,
                                                                                 0.01, "given")
    saved = tmp_path / "runs" / "launcher-tiny-minilm-chinese-reviews-head-only" / "trainable.safetensors"
    assert r["saved_to"] == str(saved) and saved.is_file()
    assert f"{r['test_accuracy']:.4f}" in box.summary.value
    assert "$FTLAB_RUNS/launcher-tiny-minilm-chinese-reviews-head-only/trainable.safetensors" in box.summary.value
    assert not box.button.disabled

    c["lr"].value = "fast"
    box.button.click()
    assert len(box.results) == 1 and len(box.errors) == 1
    assert box.errors[0].startswith("FtlabError: learning rate 'fast'")
    assert "color:#c00" in box.summary.value and "Traceback" not in box.summary.value
    assert "test accuracy" not in box.summary.value  # the old result is gone
