"""ftlab compare: the protocol's pieces (intervals, collapse, rate choice, Pareto front) and every method's build."""

import math

import pytest
import torch

import ftlab as fl
from ftlab import compare
from ftlab.compare_methods import METHODS
from ftlab.plot import pareto_front


def test_interval_is_a_t_interval():
    mean, half = compare.interval([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72)
    assert half == pytest.approx(4.302653 * 0.02 / math.sqrt(3), rel=1e-5)  # t(0.975, 2) · s / √n
    assert compare.interval([0.7]) == (0.7, 0.0)


def test_collapse_flag_at_95_percent():
    assert compare.collapsed([1] * 95 + [0] * 5) is True
    assert compare.collapsed([1] * 94 + [0] * 6) is False


def test_rate_choice_uses_validation_and_prefers_the_smaller_rate_on_a_tie():
    grid = [{"lr": 1e-3, "val_accuracy": 0.70}, {"lr": 3e-3, "val_accuracy": 0.75}, {"lr": 1e-2, "val_accuracy": 0.75}]
    assert compare.choose_lr(grid) == 3e-3


def test_pareto_front():
    # (cost, accuracy): the second is dominated by the first (dearer and worse)
    assert pareto_front([(1.0, 0.8), (2.0, 0.7), (0.5, 0.6), (3.0, 0.9)]) == [0, 2, 3]


@pytest.mark.parametrize("name", [m for m in METHODS if m != "distilled student"])
def test_every_method_builds_trains_its_part_and_keeps_the_head(smoke, name):
    built = METHODS[name].build(smoke, seed=0, steps=4)
    model = built.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert {"head.weight", "head.bias"} <= trainable, "every method trains its own linear head"
    if name == "full fine-tuning":
        assert all(p.requires_grad for p in model.parameters())
    elif name != "gradual unfreezing":  # it prepares every scheduled block, then freezes them at train begin
        frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
        assert frozen, f"{name} must leave part of the encoder frozen"
    _, tok = fl.load_model(smoke.encoder, task="base", seed=0)
    batch = tok(["a fine film", "dull and long, really"], return_tensors="pt", padding=True)
    out = model(**batch, labels=torch.tensor([1, 0]))
    assert out.logits.shape == (2, 2)
    out.loss.backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0


def test_distilled_student_needs_the_teachers_rate(smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RESULTS", str(tmp_path))
    ctx = compare.Context(smoke, compare.Protocol("smoke", steps=2, batch_size=4, max_length=16))
    with pytest.raises(fl.FtlabError, match="run 'full fine-tuning' first"):
        ctx.build("distilled student", 0)
    for lr, acc in zip(METHODS["full fine-tuning"].lrs, (0.5, 0.6, 0.55)):
        compare._record(compare._run_file("smoke", "full fine-tuning", lr, 0, "grid"), {"lr": lr, "val_accuracy": acc}, {})
    built = ctx.build("distilled student", 0)
    teacher_blocks = len(built.model.teacher.backbone.encoder.layer)
    assert len(built.model.student.backbone.encoder.layer) == (teacher_blocks + 1) // 2
    assert "1e-04" in built.note or "0.0001" in built.note
