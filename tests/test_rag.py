"""Retrieval and QA scores (notebook 15): SQuAD-style normalisation, exact match and token F1 checked on
hand-computed cases, abstention, top-k on vectors whose answer is known, mean pooling that ignores padding,
bootstrap intervals, and the prompt carrying the retrieved passages."""

import numpy as np
import pytest
import torch

import ftlab as fl
from ftlab.methods import rag


def test_normalisation_and_exact_match():
    assert rag.normalize_answer("  The Bell-Night!  ") == "bellnight"  # punctuation removed, not split
    assert rag.normalize_answer("An apple, a pear and THE plum.") == "apple pear and plum"
    assert rag.exact_match("the Bell Night.", "Bell Night") == 1.0
    assert rag.exact_match("Bell Nights", "Bell Night") == 0.0
    assert rag.exact_match("", "") == 1.0


def test_token_f1_by_hand():
    # prediction "smoked eel from dorsalo" (4 tokens) vs reference "smoked eel" (2): 2 in common,
    # precision 2/4, recall 2/2 -> F1 = 2 * 0.5 * 1 / 1.5 = 2/3
    assert rag.token_f1("Smoked eel from Dorsalo.", "smoked eel") == pytest.approx(2 / 3)
    # repeated tokens count once per occurrence in both: "eel eel eel" vs "smoked eel": 1 common,
    # precision 1/3, recall 1/2 -> F1 = 2 * (1/3) * (1/2) / (5/6) = 0.4
    assert rag.token_f1("eel eel eel", "smoked eel") == pytest.approx(0.4)
    assert rag.token_f1("Veny", "Veny") == 1.0
    assert rag.token_f1("Oskel", "Veny") == 0.0
    assert rag.token_f1("the", "Veny") == 0.0  # only an article: empty after normalisation
    assert rag.token_f1("", "") == 1.0


def test_contains_and_abstains():
    assert rag.contains_answer("The capital of Dorsalo is Veny.", "Veny")
    assert not rag.contains_answer("Venya is the capital", "Veny")  # whole words only
    for text in ("unknown", "Unknown.", "I don't know.", "The passages do not say.", ""):
        assert rag.abstains(text), text
    for text in ("Veny", "smoked eel", "It is known as Veny"):
        assert not rag.abstains(text), text


def test_score_answers_arrays():
    s = rag.score_answers(["Veny", "smoked eel and salt", "unknown"], ["Veny", "smoked eel", "Bell Night"])
    np.testing.assert_allclose(s["em"], [1, 0, 0])
    np.testing.assert_allclose(s["f1"], [1, 2 * 0.5 / 1.5, 0])
    np.testing.assert_allclose(s["contains"], [1, 1, 0])
    np.testing.assert_allclose(s["abstains"], [0, 0, 1])
    with pytest.raises(ValueError):
        rag.score_answers(["a"], ["a", "b"])


def test_top_k_on_known_vectors():
    passages = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 0]]), dim=-1)
    queries = torch.nn.functional.normalize(torch.tensor([[0.9, 0.1, 0], [0, 0.2, 1.0]]), dim=-1)
    scores, idx = rag.top_k(queries, passages, k=2)
    assert idx.tolist() == [[0, 3], [2, 1]]
    assert scores.shape == (2, 2) and bool((scores[:, :-1] >= scores[:, 1:]).all()), "sorted, best first"
    torch.testing.assert_close(scores[0, 0], queries[0] @ passages[0])  # cosine of unit vectors
    assert rag.top_k(queries, passages, k=10)[1].shape == (2, 4), "k is capped at the number of passages"
    assert rag.recall_at_k(idx, [3, 2]) == 1.0
    assert rag.recall_at_k(idx[:, :1], [3, 2]) == 0.5


def test_mean_pooling_ignores_padding():
    fl.setup(seed=0, profile="smoke", verbose=False)
    model, tok = fl.load_model("tiny-minilm", task="base", seed=0)
    text = "The island of Dorsalo has its capital at Veny."
    alone = rag.embed(model, tok, [text])
    padded = rag.embed(model, tok, [text, text + " It also exports smoked eel and holds the Bell Night every spring."])
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)  # the padded copy is the same vector
    torch.testing.assert_close(padded.norm(dim=-1), torch.ones(2))


def test_bootstrap_interval():
    mean, low, high = rag.bootstrap_interval([1.0] * 10)
    assert (mean, low, high) == (1.0, 1.0, 1.0)
    values = np.r_[np.ones(50), np.zeros(50)]
    mean, low, high = rag.bootstrap_interval(values, seed=0)
    assert mean == 0.5 and 0.38 < low < 0.45 and 0.55 < high < 0.62  # normal approx: 0.5 ± 0.098
    assert rag.bootstrap_interval(values, seed=0) == (mean, low, high), "seeded: reproducible"
    diff = rag.paired_difference(np.ones(40), np.zeros(40))
    assert diff == (1.0, 1.0, 1.0)


def test_prompts():
    passages = ["The island of Dorsalo has its capital at Veny.", "Every spring, Dorsalo holds the Bell Night."]
    prompt = rag.build_prompt("What is the capital of Dorsalo?", passages)
    assert rag.OPEN_BOOK in prompt and "[1] " + passages[0] in prompt and "[2] " + passages[1] in prompt
    assert prompt.endswith("Question: What is the capital of Dorsalo?")
    closed = rag.build_prompt("What is the capital of Dorsalo?")
    assert rag.CLOSED_BOOK in closed and "[1]" not in closed
