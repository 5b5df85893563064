import numpy as np
import pytest
import torch

from ftlab.errors import FtlabError
from ftlab.methods import probe


def test_mean_pool_ignores_padding():
    hidden = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = probe.mean_pool(hidden, mask)
    torch.testing.assert_close(pooled[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(pooled[1], hidden[1].mean(0))


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                intermediate_size=32)).eval()


def _collate(items):
    n = max(len(r["input_ids"]) for r in items)
    ids = torch.tensor([r["input_ids"] + [0] * (n - len(r["input_ids"])) for r in items])
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.zeros(len(items))}


def test_layer_features_shape_and_padding_invariance(tiny_bert):
    rows = [{"input_ids": [2, 5, 7, 9, 3]}, {"input_ids": [2, 8, 3]}, {"input_ids": [2, 4, 4, 3]}]
    feats = probe.layer_features(tiny_bert, rows, _collate, batch_size=2)  # row 1 is padded in its batch
    assert feats.shape == (4, 3, 16)
    alone = tiny_bert(input_ids=torch.tensor([[2, 8, 3]]), output_hidden_states=True).hidden_states
    for layer in range(4):
        torch.testing.assert_close(feats[layer, 1], alone[layer][0].mean(0), atol=1e-5, rtol=1e-4)
    with pytest.raises(FtlabError, match="empty"):
        probe.layer_features(tiny_bert, [], _collate)


def test_control_labels_deterministic_balanced_and_word_based():
    rng = np.random.default_rng(0)
    rows = [list(rng.integers(5, 200, size=rng.integers(4, 15))) for _ in range(400)]
    a = probe.control_labels(rows, 200, seed=1, ignore_ids=(0, 1))
    assert np.array_equal(a, probe.control_labels(rows, 200, seed=1, ignore_ids=(0, 1)))
    assert abs(a.mean() - 0.5) < 0.01  # median threshold: half each
    # a function of the set of word types: order and repeats do not matter
    shuffled = [list(reversed(r)) + r[:1] for r in rows]
    assert np.array_equal(a, probe.control_labels(shuffled, 200, seed=1, ignore_ids=(0, 1)))
    assert not np.array_equal(a, probe.control_labels(rows, 200, seed=2))
    with pytest.raises(FtlabError, match="no tokens"):
        probe.control_labels([[0, 1]], 10, ignore_ids=(0, 1))


def test_probe_separable_data_and_selectivity():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 5))
    y = (x[:, 0] > 0).astype(int)
    res = probe.fit_probe(x[:200], y[:200], x[200:], y[200:], probe.ProbeConfig(C=1.0))
    assert res["test_accuracy"] > 0.95
    feats = np.stack([rng.standard_normal((300, 5)), x])  # layer 0: noise, layer 1: informative
    acc = probe.probe_layers(feats[:, :200], y[:200], feats[:, 200:], y[200:], probe.ProbeConfig(C=1.0))
    assert acc[1] > 0.9 > acc[0] + 0.2
    assert probe.selectivity([0.9, 0.8], [0.6, 0.7]) == pytest.approx([0.3, 0.1])
    with pytest.raises(FtlabError, match="single class"):
        probe.fit_probe(x[:10], np.zeros(10), x[10:20], y[10:20])


def test_from_scratch_probe_matches_scikit_learn():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 8))
    y = (x @ rng.standard_normal(8) + 0.5 * rng.standard_normal(200) > 0).astype(int)
    for C in (0.01, 1.0):
        res = probe.fit_probe(x, y, x, y, probe.ProbeConfig(C=C, standardize=False))
        w, b = probe.logistic_regression_torch(torch.from_numpy(x), torch.from_numpy(y), C=C)
        ours = torch.sigmoid(torch.from_numpy(x) @ w + b)
        theirs = torch.from_numpy(res["probe"].predict_proba(x)[:, 1])
        torch.testing.assert_close(ours, theirs, atol=1e-3, rtol=0)


def test_layers_to_freeze():
    assert probe.layers_to_freeze([0.0, 0.01, 0.02, 0.05, 0.1, 0.12]) == 4  # first gain >= 0.06 is block 4
    assert probe.layers_to_freeze([0.2, 0.0]) == 0
    assert probe.layers_to_freeze([-0.01, -0.02]) == 1  # no gain anywhere: freeze all but the last
    with pytest.raises(FtlabError):
        probe.layers_to_freeze([])


def test_one_batching_loop():
    from ftlab import batching, evaluation
    from ftlab.methods import distill

    assert evaluation.batches is batching.batches and probe.batches is batching.batches
    assert distill.batches is batching.batches
    rows = [{"x": i} for i in range(5)]
    assert [len(b) for b in batching.batches(rows, list, 2)] == [2, 2, 1]
