import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

import ftlab
from ftlab import metrics


def test_accuracy_and_f1_match_scikit_learn():
    rng = np.random.default_rng(0)
    p, r = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert metrics.accuracy(p, r) == accuracy_score(r, p)
    assert metrics.f1(p, r) == pytest.approx(f1_score(r, p, average="macro"))
    b, rb = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert metrics.f1(b, rb, average="binary") == pytest.approx(f1_score(rb, b))


def test_majority_baseline():
    assert metrics.majority_baseline([1, 1, 0], [1, 0, 1, 1]) == 0.75


def test_rouge_and_perplexity_known_values():
    r = metrics.rouge(["the cat sat"], ["the cat sat on the mat"])
    assert r["rouge1"] == pytest.approx(2 * 1 * 0.5 / 1.5)  # precision 1, recall 3/6
    assert metrics.rouge(["same words"], ["same words"])["rougeL"] == 1.0
    assert metrics.perplexity(0.0) == 1.0 and metrics.perplexity(np.log(50)) == pytest.approx(50)


def test_classification_metrics_from_logits():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert ftlab.classification_metrics((logits, np.array([1, 0, 0]))) == {"accuracy": 2 / 3, "f1": pytest.approx(2 / 3)}


def test_bad_metric_input_is_a_clear_error():
    with pytest.raises(ftlab.FtlabError, match="equal, non-empty"):
        metrics.accuracy([1, 0], [1])
    with pytest.raises(ftlab.FtlabError, match="No offline metric 'bleu'"):
        metrics.load_metric("bleu")


def test_offline_evaluate_modules_give_the_same_numbers():
    p, r = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
    assert metrics.load_metric("accuracy").compute(predictions=p, references=r) == {"accuracy": 0.8}
    assert metrics.load_metric("f1").compute(predictions=p, references=r)["f1"] == pytest.approx(metrics.f1(p, r))
    got = metrics.load_metric("rouge").compute(predictions=["a b c"], references=["a b d"])
    assert got == metrics.rouge(["a b c"], ["a b d"])
