"""evaluation: the batched helpers give exactly what a plain one-example-at-a-time loop gives."""

import numpy as np
import pytest
import torch

import ftlab
from ftlab import evaluation, metrics


@pytest.fixture(scope="module")
def classifier(smoke):
    model, tok = ftlab.load_model(smoke.encoder, seed=0)
    data = ftlab.tokenize_classification(ftlab.load_dataset("rotten_tomatoes", smoke), tok, smoke.max_length)
    return model.eval(), tok, data["validation"].select(range(40))


def test_batches_keep_order_and_cover_every_row(classifier):
    _, tok, rows = classifier
    sizes, labels = [], []
    for batch in evaluation.batches(rows, ftlab.classification_collator(tok), 16):
        sizes.append(len(batch["labels"]))
        labels += batch["labels"].tolist()
    assert sizes == [16, 16, 8] and labels == rows["labels"]


def test_evaluate_classifier_equals_a_manual_argmax_loop(classifier):
    model, tok, rows = classifier
    manual = []
    with torch.no_grad():
        for r in rows:  # one example at a time: no padding at all
            ids = torch.tensor([r["input_ids"]])
            manual.append(int(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.argmax(-1)))
    preds, labels = evaluation.predict(model, rows, tok, batch_size=16)
    assert preds.tolist() == manual and labels.tolist() == rows["labels"]
    got = ftlab.evaluate_classifier(model, rows, tok, batch_size=16)
    assert got == {"accuracy": metrics.accuracy(manual, rows["labels"]), "f1": metrics.f1(manual, rows["labels"])}
    assert got["accuracy"] == np.mean(np.array(manual) == np.array(rows["labels"]))


def test_classify_texts_gives_probabilities_in_the_models_order(classifier):
    model, tok, _ = classifier
    texts = ["a fine film", "dull", "too long by an hour"]
    probs = ftlab.classify_texts(model, tok, texts)
    assert probs.shape == (3, 2) and np.allclose(probs.sum(1), 1.0)
    with torch.no_grad():
        one = torch.softmax(model(**tok(texts[2:], return_tensors="pt")).logits, -1).numpy()
    np.testing.assert_allclose(probs[2:], one, atol=1e-6)


@pytest.fixture(scope="module")
def lm(smoke):
    model, tok = ftlab.load_model(smoke.decoder, task="causal-lm", seed=0)
    data = ftlab.tokenize_sft(ftlab.load_dataset("instructions", smoke), tok, smoke.sft_length)
    return model.eval(), tok, data["validation"].select(range(6))


def test_evaluate_lm_is_the_mean_loss_over_answer_tokens(lm):
    model, tok, rows = lm
    total, count = 0.0, 0
    with torch.no_grad():
        for r in rows:
            ids, labels = torch.tensor([r["input_ids"]]), torch.tensor(r["labels"])
            logits = model(input_ids=ids).logits[0, :-1]  # position t predicts token t+1
            target = labels[1:]
            keep = target != -100
            total += torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum").item()
            count += int(keep.sum())
    got = ftlab.evaluate_lm(model, rows, tok, batch_size=4)
    assert count > 0 and got["loss"] == pytest.approx(total / count, rel=1e-5)
    assert got["perplexity"] == pytest.approx(np.exp(total / count), rel=1e-5)


def test_generate_is_greedy_and_restores_padding_side(lm):
    model, tok, _ = lm
    tok.padding_side = "right"
    prompts = ["Name a colour.", "Say hello in French, please."]
    a = ftlab.generate(model, tok, prompts, max_new_tokens=5, batch_size=2)
    b = ftlab.generate(model, tok, prompts[1:], max_new_tokens=5)
    assert len(a) == 2 and a[1] == b[0], "greedy: the same answer alone or in a left-padded batch"
    assert tok.padding_side == "right"
