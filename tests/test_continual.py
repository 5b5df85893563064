"""ftlab.methods.continual: the EWC penalty and Fisher against hand-computed values, replay determinism,
the continual-learning metrics, and per-task heads (notebook 11)."""

import pytest
import torch
from torch import nn

from ftlab.methods import continual


def _set(linear: nn.Linear, weight, bias=None):
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight))
        if bias is not None:
            linear.bias.copy_(torch.tensor(bias))


def test_ewc_penalty_matches_a_hand_computed_value_and_gradient():
    model = nn.Linear(2, 1)
    _set(model, [[1.0, -2.0]], [0.5])
    anchor = {"weight": torch.tensor([[0.5, -1.0]]), "bias": torch.tensor([0.5])}
    fisher = {"weight": torch.tensor([[2.0, 0.5]]), "bias": torch.tensor([3.0])}
    # λ/2 · Σ F (θ − θ*)² = 4/2 · (2·0.5² + 0.5·(−1)² + 3·0²) = 2 · 1.0 = 2.0
    penalty = continual.ewc_penalty(model, fisher, anchor, lam=4.0)
    assert penalty.item() == pytest.approx(2.0)
    penalty.backward()  # ∂/∂θ = λ F (θ − θ*) = 4 · [2·0.5, 0.5·(−1)] and 4 · 3 · 0
    torch.testing.assert_close(model.weight.grad, torch.tensor([[4.0, -2.0]]))
    torch.testing.assert_close(model.bias.grad, torch.tensor([0.0]))


def test_ewc_sums_one_term_per_finished_task():
    model = nn.Linear(1, 1, bias=False)
    _set(model, [[1.0]])
    ewc = continual.EWC(lam=2.0)
    ewc.consolidate(model, {"weight": torch.tensor([[1.0]])})  # anchor 1.0
    _set(model, [[3.0]])
    ewc.consolidate(model, {"weight": torch.tensor([[0.5]])})  # anchor 3.0
    _set(model, [[2.0]])
    # 2/2 · (1·(2−1)² + 0.5·(2−3)²) = 1.5
    assert ewc.penalty(model).item() == pytest.approx(1.5)
    assert continual.EWC(lam=2.0).penalty(model).item() == 0.0


def _two_class(weight):
    model = nn.Linear(1, 2, bias=False)
    _set(model, weight)
    return model


def _ce(model, example):
    x, y = example
    return nn.functional.cross_entropy(model(x), y)


def test_fisher_is_the_mean_of_squared_per_example_gradients_not_the_square_of_the_mean():
    # Two examples with the same input and opposite labels: at zero weights p = (½, ½) and the per-example
    # gradients of the cross-entropy, (p − onehot(y)) x, are (−½, ½) and (½, −½). They cancel in the mean.
    examples = [(torch.tensor([[1.0]]), torch.tensor([0])), (torch.tensor([[1.0]]), torch.tensor([1]))]
    fisher = continual.fisher_diagonal(_two_class([[0.0], [0.0]]), examples, _ce)
    torch.testing.assert_close(fisher["weight"], torch.tensor([[0.25], [0.25]]))  # mean of (±½)²
    wrong = continual.squared_mean_gradient(_two_class([[0.0], [0.0]]), examples, _ce)
    torch.testing.assert_close(wrong["weight"], torch.tensor([[0.0], [0.0]]))  # (mean of ±½)² = 0


def test_fisher_of_one_example_equals_its_squared_gradient_and_skips_frozen_parameters():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    model[0].weight.requires_grad_(False)
    example = (torch.tensor([[0.3, -1.0, 2.0]]), torch.tensor([1]))
    fisher = continual.fisher_diagonal(model, [example], _ce)
    assert "0.weight" not in fisher and set(fisher) == {"0.bias", "2.weight", "2.bias"}
    model.zero_grad()
    _ce(model, example).backward()
    torch.testing.assert_close(fisher["2.weight"], model[2].weight.grad ** 2)


def test_replay_sampling_is_deterministic_by_seed():
    rows = [(0, [i], i % 2) for i in range(100)]

    def draws(seed):
        buffer = continual.ReplayBuffer(per_task=10, seed=seed)
        buffer.add(rows)
        return buffer.rows, [buffer.sample(4) for _ in range(5)]

    assert draws(7) == draws(7)
    assert draws(7) != draws(8)
    kept, samples = draws(7)
    assert len(kept) == 10 and all(r in kept for s in samples for r in s)
    assert continual.ReplayBuffer(per_task=10, seed=0).sample(4) == []  # nothing kept yet: nothing to replay


def test_average_accuracy_and_forgetting_by_hand():
    R = [[0.80, 0.50, 0.50],
         [0.70, 0.90, 0.50],
         [0.60, 0.85, 0.75]]
    assert continual.average_accuracy(R) == pytest.approx((0.60 + 0.85 + 0.75) / 3)
    # task 0: best 0.80 → 0.60; task 1: best 0.90 → 0.85
    assert continual.forgetting(R) == pytest.approx([0.20, 0.05])
    assert continual.average_forgetting(R) == pytest.approx(0.125)
    assert continual.average_forgetting([[0.7]]) == 0.0


def _tiny_backbone():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=16))


def test_each_row_is_read_by_its_own_task_head():
    backbone = _tiny_backbone()
    model = continual.MultiHeadClassifier(backbone, n_tasks=3).eval()
    batch = continual.pad_batch([(0, [1, 2, 3], 0), (2, [4, 5], 1), (1, [6], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 5, 0], [6, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    logits = model(batch["input_ids"], batch["attention_mask"], batch["task_ids"])
    pooled = continual.mean_pool(backbone(input_ids=batch["input_ids"],
                                          attention_mask=batch["attention_mask"]).last_hidden_state,
                                 batch["attention_mask"])
    for row, task in enumerate(batch["task_ids"].tolist()):
        torch.testing.assert_close(logits[row], model.heads[task](pooled[row]))
    assert continual.nll(model, batch).item() > 0
    assert 0.0 <= continual.accuracy(model, [(0, [1, 2], 0), (1, [3], 1)], pad_id=0) <= 1.0


def test_heads_with_different_class_counts_pad_the_missing_classes_out():
    # notebook 11: movies (2 classes), news (5), products (2) in one batch
    backbone = _tiny_backbone()
    model = continual.MultiHeadClassifier(backbone, n_tasks=3, num_labels=[2, 5, 2]).eval()
    assert [h.out_features for h in model.heads] == [2, 5, 2]
    batch = continual.pad_batch([(0, [1, 2, 3], 1), (1, [4, 5], 4), (2, [6], 0)], pad_id=0)
    logits = model(batch["input_ids"], batch["attention_mask"], batch["task_ids"])
    assert logits.shape == (3, 5)
    pooled = continual.mean_pool(backbone(input_ids=batch["input_ids"],
                                          attention_mask=batch["attention_mask"]).last_hidden_state,
                                 batch["attention_mask"])
    torch.testing.assert_close(logits[1], model.heads[1](pooled[1]))
    torch.testing.assert_close(logits[0, :2], model.heads[0](pooled[0]))
    assert (logits[[0, 2], 2:] == continual.MultiHeadClassifier.PAD_LOGIT).all()
    probs = logits.softmax(-1)
    assert (probs[[0, 2], 2:] == 0).all()  # a two-class row never puts probability on a padded class
    # the loss of a two-class row equals the cross-entropy of its own two logits
    loss = continual.nll(model, {k: v[:1] for k, v in batch.items()})
    torch.testing.assert_close(loss, nn.functional.cross_entropy(logits[:1, :2], batch["labels"][:1]))
    loss.backward()
    assert model.heads[1].weight.grad is None  # the news head saw no row
    with pytest.raises(ValueError):
        continual.MultiHeadClassifier(backbone, n_tasks=3, num_labels=[2, 5])


def test_predict_keeps_the_rows_order_though_it_batches_by_length():
    model = continual.MultiHeadClassifier(_tiny_backbone(), n_tasks=2, num_labels=[2, 5]).eval()
    rows = [(i % 2, list(range(1, 2 + (7 * i) % 9)), 0) for i in range(13)]
    one_by_one = [model(**{k: v for k, v in continual.pad_batch([r], 0).items() if k != "labels"}).argmax(-1).item()
                  for r in rows]
    assert continual.predict(model, rows, pad_id=0, batch_size=4) == one_by_one
    assert continual.accuracy(model, rows, pad_id=0) == sum(p == 0 for p in one_by_one) / len(rows)
