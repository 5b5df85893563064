import math

import pytest
import torch
import torch.nn.functional as F

from ftlab.errors import FtlabError
from ftlab.methods import distill


def _logits(seed=0, batch=8, classes=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, classes, generator=g) * 2, torch.randn(batch, classes, generator=g) * 2


def test_kd_loss_matches_kldivloss_and_cross_entropy():
    student, teacher = _logits()
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    for T, alpha in [(1.0, 0.5), (2.0, 0.5), (4.0, 0.9), (3.0, 0.0), (2.0, 1.0)]:
        kl = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)(
            F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1))
        expected = alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student, labels)
        torch.testing.assert_close(distill.kd_loss(student, teacher, labels, T, alpha), expected)


def test_kd_loss_manual_formula_per_example():
    student, teacher = _logits(1)
    T = 2.5
    p_t = torch.softmax(teacher / T, -1)
    manual = (p_t * (p_t.log() - torch.log_softmax(student / T, -1))).sum(-1) * T**2
    torch.testing.assert_close(distill.kd_loss(student, teacher, None, T, reduction="none"), manual)


def test_kd_loss_zero_when_student_equals_teacher_and_no_teacher_gradient():
    student, teacher = _logits(2)
    teacher.requires_grad_(True)
    s = teacher.detach().clone().requires_grad_(True)
    loss = distill.kd_loss(s, teacher, None, temperature=3.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    distill.kd_loss(student.requires_grad_(True), teacher, None).backward()
    assert teacher.grad is None, "the teacher's logits are constants"


def test_t_squared_keeps_gradient_scale():
    student, teacher = _logits(3)
    norms = []
    for T in (1.0, 8.0):
        s = student.clone().requires_grad_(True)
        distill.kd_loss(s, teacher, None, temperature=T).backward()
        norms.append(s.grad.norm().item())
    assert 0.5 < norms[1] / norms[0] < 4  # measured 1.77; T instead of T² gives 0.22, no factor 0.028
    # Hinton et al.: for large T the T²-scaled gradient tends to (centred student - centred teacher logits) / C
    # per example (here averaged over the batch); without T² it would vanish like 1/T².
    s, T = student.clone().requires_grad_(True), 1000.0
    distill.kd_loss(s, teacher, None, temperature=T).backward()
    batch, classes = student.shape
    limit = ((student - student.mean(-1, keepdim=True)) - (teacher - teacher.mean(-1, keepdim=True))) / classes / batch
    torch.testing.assert_close(s.grad, limit, rtol=1e-2, atol=1e-4)


def test_distillation_loss_fn_trainer_signature():
    student, teacher = _logits(4)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    fn = distill.distillation_loss(distill.DistillConfig(temperature=2.0, alpha=0.3))
    with_teacher = fn({"logits": student, "teacher_logits": teacher}, labels, None)
    torch.testing.assert_close(with_teacher, distill.kd_loss(student, teacher, labels, 2.0, 0.3))
    # gradient accumulation: the Trainer passes the label count of the whole accumulated batch
    torch.testing.assert_close(fn({"logits": student, "teacher_logits": teacher}, labels, torch.tensor(16)),
                               with_teacher / 2)
    # evaluation (no teacher logits): plain cross-entropy
    torch.testing.assert_close(fn({"logits": student}, labels), F.cross_entropy(student, labels))


def test_soft_targets_temperature():
    logits = torch.tensor([[2.0, 0.0]])
    for T in (1.0, 4.0):  # softmax(z / T): for two classes p = 1 / (1 + exp(-2 / T))
        p = 1 / (1 + math.exp(-2 / T))
        torch.testing.assert_close(distill.soft_targets(logits, T), torch.tensor([[p, 1 - p]]))
    torch.testing.assert_close(distill.soft_targets(logits, 1e6), torch.tensor([[0.5, 0.5]]), atol=1e-5, rtol=0)


def test_errors():
    s, t = _logits()
    with pytest.raises(FtlabError, match="alpha"):
        distill.kd_loss(s, t, None, alpha=1.5)
    with pytest.raises(FtlabError, match="temperature"):
        distill.kd_loss(s, t, None, temperature=0)
    with pytest.raises(FtlabError, match="differ"):
        distill.kd_loss(s, t[:, :2], None)


@pytest.fixture(scope="module")
def tiny_teacher():
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    return BertForSequenceClassification(config).eval()


def _batch():
    ids = torch.tensor([[2, 5, 7, 9, 3, 0], [2, 8, 3, 0, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def test_layer_student_copies_chosen_layers(tiny_teacher):
    student = distill.layer_student(tiny_teacher, [0, 2])
    assert student.config.num_hidden_layers == 2 and tiny_teacher.config.num_hidden_layers == 4
    assert len(student.bert.encoder.layer) == 2
    torch.testing.assert_close(student.bert.encoder.layer[1].attention.self.query.weight,
                               tiny_teacher.bert.encoder.layer[2].attention.self.query.weight)
    student.eval()(**_batch())  # runs
    full = distill.layer_student(tiny_teacher, range(4)).eval()  # keeping every layer = the teacher
    torch.testing.assert_close(full(**_batch()).logits, tiny_teacher(**_batch()).logits)
    with pytest.raises(FtlabError, match="0..3"):
        distill.layer_student(tiny_teacher, [0, 4])


def test_random_student_is_small_and_fresh(tiny_teacher):
    small = distill.random_student(tiny_teacher, num_layers=1, hidden_size=16, heads=2)
    assert small.config.num_hidden_layers == 1 and small.config.hidden_size == 16
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in tiny_teacher.parameters())
    with pytest.raises(FtlabError, match="divisible"):
        distill.random_student(tiny_teacher, hidden_size=15, heads=2)


def test_distiller_online_offline_and_hidden_teacher(tiny_teacher):
    wrapped = distill.Distiller(distill.layer_student(tiny_teacher, [1]), tiny_teacher)
    teacher_params = sum(p.numel() for p in tiny_teacher.parameters())
    assert sum(p.numel() for p in wrapped.parameters()) < teacher_params  # the teacher is not a submodule
    assert not any(k.startswith("_frozen") or "teacher" in k for k in wrapped.state_dict())
    wrapped.train()
    assert not wrapped.teacher.training, "the teacher stays in eval mode"
    online = wrapped(**_batch())["teacher_logits"]
    torch.testing.assert_close(online, tiny_teacher(**_batch()).logits)
    cached = torch.ones(2, 2)
    assert torch.equal(wrapped(teacher_logits=cached, **_batch())["teacher_logits"], cached)
    wrapped.eval()
    assert "teacher_logits" not in wrapped(**_batch())


def test_add_teacher_logits(tiny_teacher):
    from datasets import Dataset

    rows = Dataset.from_dict({"input_ids": [[2, 5, 7, 3], [2, 8, 3]], "attention_mask": [[1] * 4, [1] * 3]})

    def collate(items):
        n = max(len(r["input_ids"]) for r in items)
        return {k: torch.tensor([r[k] + [0] * (n - len(r[k])) for r in items]) for k in ("input_ids", "attention_mask")}

    out = distill.add_teacher_logits(tiny_teacher, rows, collate, batch_size=1)
    expected = tiny_teacher(input_ids=torch.tensor([[2, 8, 3]])).logits[0]
    torch.testing.assert_close(torch.tensor(out[1]["teacher_logits"]), expected)


class _Timed(torch.nn.Module):
    """A model whose forward pass takes a known time: it advances a fake clock (or sleeps) by the next duration."""

    def __init__(self, seconds, clock=None):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seconds, self.clock, self.calls = list(seconds), clock, []

    def forward(self, input_ids, attention_mask):  # no labels: latency_ms drops them
        self.calls.append((self.training, torch.is_grad_enabled()))
        duration = self.seconds[len(self.calls) - 1]
        if self.clock is None:
            import time

            time.sleep(duration)
        else:
            self.clock[0] += duration
        return input_ids


def test_latency_is_the_median_of_the_timed_repeats_after_warmup(monkeypatch):
    import time

    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    # warmup 0.9 s (not counted), then 10, 80, 30 ms: the median is 30 ms (the mean 40)
    model = _Timed([0.9, 0.010, 0.080, 0.030], clock).train()
    got = distill.latency_ms(model, {**_batch(), "labels": torch.tensor([0, 1])}, repeats=3, warmup=1)
    assert got == pytest.approx(30.0, abs=1e-6)
    assert model.calls == [(False, False)] * 4, "four forward passes, in eval mode, without gradients"
    model = _Timed([0.9, 0.9, 0.004, 0.002, 0.008, 0.006, 0.001], clock)  # 2 warmups, 5 repeats
    assert distill.latency_ms(model, _batch(), repeats=5, warmup=2) == pytest.approx(4.0, abs=1e-6)
    assert len(model.calls) == 7


def test_latency_measures_real_time_in_milliseconds():
    model = _Timed([0.0] + [0.02] * 3)  # no fake clock: each timed pass sleeps 20 ms
    got = distill.latency_ms(model, _batch(), repeats=3, warmup=1)
    assert 20.0 <= got < 20.0 + 500.0, got  # sleep never returns early; the margin allows a busy machine
