import math

import pytest
import torch
from torch import nn

from ftlab.errors import FtlabError
from ftlab.methods import multitask as mt


class _Encoder(nn.Module):
    """A stand-in encoder with a ``config`` and ``last_hidden_state``, as MultiTaskModel expects."""

    def __init__(self, vocab=20, hidden=8):
        super().__init__()
        self.config = type("Config", (), {"hidden_size": hidden, "hidden_dropout_prob": 0.0})()
        self.embed = nn.Embedding(vocab, hidden)
        self.mix = nn.Linear(hidden, hidden)

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"last_hidden_state": self.mix(self.embed(input_ids))})()


def _batch(seed, rows=4, length=5, classes=2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 20, (rows, length), generator=g)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids),
            "labels": torch.randint(0, classes, (rows,), generator=g)}


def test_sampling_probabilities_exact():
    sizes = {"a": 9000, "b": 1000}
    assert mt.sampling_probabilities(sizes, 1.0) == pytest.approx({"a": 0.9, "b": 0.1}, abs=1e-12)
    assert mt.sampling_probabilities(sizes, 2.0) == pytest.approx({"a": 0.75, "b": 0.25}, abs=1e-12)  # 3:1
    assert mt.sampling_probabilities(sizes, math.inf) == {"a": 0.5, "b": 0.5}
    three = mt.sampling_probabilities({"a": 8, "b": 1, "c": 27}, 3.0)  # cube roots 2, 1, 3
    assert three == pytest.approx({"a": 2 / 6, "b": 1 / 6, "c": 3 / 6}, abs=1e-12)
    with pytest.raises(FtlabError):
        mt.sampling_probabilities(sizes, 0.0)
    with pytest.raises(FtlabError):
        mt.sampling_probabilities({"a": 0}, 1.0)


def test_sampler_deterministic_by_seed_and_follows_probabilities():
    sizes = {"a": 9000, "b": 1000}
    first = mt.TaskSampler(sizes, 1.0, seed=3).sample(200)
    assert first == mt.TaskSampler(sizes, 1.0, seed=3).sample(200)
    assert first != mt.TaskSampler(sizes, 1.0, seed=4).sample(200)
    many = mt.TaskSampler(sizes, 1.0, seed=0).sample(20_000)
    assert abs(many.count("b") / len(many) - 0.1) < 0.01
    assert mt.TaskSampler(sizes, math.inf).expected_counts(80) == {"a": 40.0, "b": 40.0}


def test_uncertainty_weighting_equals_hand_computed_value():
    w = mt.UncertaintyWeighting(["a", "b"])
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.5, -1.0]))
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(0.3)}
    expected = math.exp(-0.5) * 2.0 + 0.5 + math.exp(1.0) * 0.3 - 1.0
    assert float(w(losses).detach()) == pytest.approx(expected, rel=1e-6)
    assert float(w({"b": torch.tensor(0.3)}).detach()) == pytest.approx(math.exp(1.0) * 0.3 - 1.0, rel=1e-6)
    assert w.weights() == pytest.approx({"a": math.exp(-0.5), "b": math.exp(1.0)})


def test_uncertainty_weighting_optimum_is_inverse_loss():
    # d/ds [exp(-s) L + s] = 0  at  s = log L: the learned weight exp(-s) becomes 1 / L
    w = mt.UncertaintyWeighting(["a"])
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    for _ in range(2000):
        opt.zero_grad()
        w({"a": torch.tensor(0.25)}).backward()
        opt.step()
    assert w.weights()["a"] == pytest.approx(4.0, rel=1e-3)


def test_fixed_weighting():
    w = mt.FixedWeighting(["a", "b"], {"b": 2.0})
    assert float(w({"a": torch.tensor(1.5), "b": torch.tensor(0.5)})) == pytest.approx(2.5)
    assert list(w.parameters()) == []


def test_gradients_reach_each_head_only_from_its_own_task():
    torch.manual_seed(0)
    model = mt.MultiTaskModel(_Encoder(), {"a": 2, "b": 3})
    _, loss = model("a", **_batch(0))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads["a"].parameters())
    assert all(p.grad is None for p in model.heads["b"].parameters())
    assert model.encoder.mix.weight.grad.abs().sum() > 0  # the shared encoder learns from every task
    model.zero_grad(set_to_none=True)
    _, loss = model("b", **_batch(1, classes=3))
    loss.backward()
    assert all(p.grad is None for p in model.heads["a"].parameters())
    assert all(p.grad is not None for p in model.heads["b"].parameters())
    with pytest.raises(FtlabError):
        model("c", **_batch(0))


def test_heads_change_only_on_their_own_steps_in_training():
    from datasets import Dataset

    torch.manual_seed(0)
    model = mt.MultiTaskModel(_Encoder(), {"a": 2, "b": 2})
    rows = [{k: v[i].tolist() for k, v in _batch(7, rows=32).items()} for i in range(32)]
    data = {"a": Dataset.from_list(rows), "b": Dataset.from_list(rows)}

    def collate(batch):
        return {k: torch.tensor([r[k] for r in batch]) for k in ("input_ids", "attention_mask", "labels")}

    before_b = model.heads["b"].weight.detach().clone()
    only_a = mt.TaskSampler({"a": 32, "b": 32}, 1.0)
    only_a.probabilities, only_a._p = {"a": 1.0, "b": 0.0}, torch.tensor([1.0, 0.0], dtype=torch.float64)
    history = mt.train_multitask(model, data, collate, steps=5, lr=1e-2, sampler=only_a, batch_size=8)
    assert history["counts"] == {"a": 5, "b": 0}
    assert torch.equal(model.heads["b"].weight, before_b)  # no gradient, no weight decay: untouched
    again = mt.train_multitask(mt.MultiTaskModel(_Encoder(), {"a": 2, "b": 2}), data, collate, steps=6, lr=1e-2,
                               sampler=mt.TaskSampler({"a": 32, "b": 32}, math.inf, seed=1), batch_size=8, seed=1)
    same = mt.train_multitask(mt.MultiTaskModel(_Encoder(), {"a": 2, "b": 2}), data, collate, steps=6, lr=1e-2,
                              sampler=mt.TaskSampler({"a": 32, "b": 32}, math.inf, seed=1), batch_size=8, seed=1)
    assert again["task"] == same["task"]


def test_uncertainty_weights_move_in_training_and_parameter_counts():
    from datasets import Dataset

    torch.manual_seed(0)
    model = mt.MultiTaskModel(_Encoder(), {"a": 2, "b": 2})
    rows = [{k: v[i].tolist() for k, v in _batch(3, rows=16).items()} for i in range(16)]
    data = {"a": Dataset.from_list(rows), "b": Dataset.from_list(rows)}

    def collate(batch):
        return {k: torch.tensor([r[k] for r in batch]) for k in ("input_ids", "attention_mask", "labels")}

    weighting = mt.UncertaintyWeighting(["a", "b"])
    history = mt.train_multitask(model, data, collate, steps=10, lr=1e-3, weighting=weighting,
                                 sampler=mt.TaskSampler({"a": 16, "b": 16}, math.inf), batch_size=8)
    assert history["weights"][-1][0] == 10 and weighting.weights() != {"a": 1.0, "b": 1.0}
    counts = mt.parameter_counts(model)
    assert counts == {"encoder": 20 * 8 + 8 * 8 + 8, "head a": 8 * 2 + 2, "head b": 8 * 2 + 2}
    assert sum(counts.values()) == sum(p.numel() for p in model.parameters())


def test_head_learning_rate_is_separate():
    from datasets import Dataset

    torch.manual_seed(0)
    model = mt.MultiTaskModel(_Encoder(), {"a": 2})
    rows = [{k: v[i].tolist() for k, v in _batch(5, rows=16).items()} for i in range(16)]

    def collate(batch):
        return {k: torch.tensor([r[k] for r in batch]) for k in ("input_ids", "attention_mask", "labels")}

    encoder_before = model.encoder.mix.weight.detach().clone()
    head_before = model.heads["a"].weight.detach().clone()
    mt.train_multitask(model, {"a": Dataset.from_list(rows)}, collate, steps=3, lr=0.0, head_lr=1e-2,
                       sampler=mt.TaskSampler({"a": 16}, 1.0), batch_size=8, weight_decay=0.0)
    assert torch.equal(model.encoder.mix.weight, encoder_before)  # the encoder's rate is 0
    assert not torch.equal(model.heads["a"].weight, head_before)
