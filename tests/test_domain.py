"""ftlab.methods.domain: gradient reversal (identity forward, -λ·grad backward), the DANN λ schedule, the
sub-word mean initialisation of new vocabulary rows, tokens per text after adding terms, and that training
only the new rows (PEFT trainable tokens) leaves every old row unchanged (notebook 13)."""

import pytest
import torch
from torch import nn

from ftlab.methods import domain


def test_gradient_reversal_is_the_identity_forward_and_minus_lambda_backward():
    torch.manual_seed(0)
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    for lam in (0.0, 0.5, 2.0):
        y = domain.grad_reverse(x, lam)
        torch.testing.assert_close(y, x, rtol=0, atol=0)
        (grad,) = torch.autograd.grad(y, x, grad_outputs=upstream)
        torch.testing.assert_close(grad, -lam * upstream, rtol=0, atol=0)


def test_gradient_reversal_layer_flips_the_gradient_reaching_the_features():
    torch.manual_seed(0)
    feats = torch.randn(5, 6, requires_grad=True)
    head = nn.Linear(6, 2)
    plain = torch.autograd.grad(head(feats).sum(), feats)[0]
    reversed_ = torch.autograd.grad(head(domain.GradientReversal(0.3)(feats)).sum(), feats)[0]
    torch.testing.assert_close(reversed_, -0.3 * plain)
    # the head itself still gets its ordinary gradient: it learns to tell the domains apart
    g_plain = torch.autograd.grad(head(feats).sum(), head.weight)[0]
    g_rev = torch.autograd.grad(head(domain.GradientReversal(0.3)(feats)).sum(), head.weight)[0]
    torch.testing.assert_close(g_rev, g_plain)


def test_dann_lambda_schedule():
    assert domain.dann_lambda(0.0) == 0.0
    assert domain.dann_lambda(1.0) == pytest.approx(2 / (1 + torch.e ** -10) - 1)
    assert domain.dann_lambda(0.5, lambda_max=0.1) == pytest.approx(0.1 * (2 / (1 + torch.e ** -5) - 1))
    values = [domain.dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)


@pytest.fixture(scope="module")
def tok():
    import ftlab

    return ftlab.load_tokenizer("tiny-minilm")


WORDS = ["coolpix", "megapixel", "jukebox"]
TEXTS = ["the coolpix has a 4 megapixel sensor", "my jukebox died", "the coolpix and the jukebox, both fine"]


def test_mean_init_row_is_the_mean_of_the_old_sub_word_rows(tok):
    import copy

    tok = copy.deepcopy(tok)
    emb = nn.Embedding(len(tok), 8)
    old = emb.weight.detach().clone()
    pieces_of = {w: tok(w, add_special_tokens=False)["input_ids"] for w in WORDS}
    assert all(len(p) >= 3 for p in pieces_of.values())
    new_ids, pieces = domain.add_terms(tok, WORDS)
    assert new_ids == list(range(len(old), len(old) + 3))
    big = nn.Embedding(len(tok), 8)
    with torch.no_grad():
        big.weight[:len(old)] = old
    domain.init_new_rows(big, pieces)
    for w, i in zip(WORDS, new_ids):
        torch.testing.assert_close(big.weight[i], old[pieces_of[w]].mean(0), rtol=0, atol=0)
    torch.testing.assert_close(big.weight[:len(old)], old, rtol=0, atol=0)


def test_tokens_per_text_drop_after_adding_terms(tok):
    import copy

    tok = copy.deepcopy(tok)
    before = domain.tokens_per_text(tok, TEXTS)
    domain.add_terms(tok, WORDS)
    after = domain.tokens_per_text(tok, TEXTS)
    # coolpix 3→1 (twice), megapixel 4→1, jukebox 3→1 (twice): 4 + 3 + 4 = 11 tokens fewer over 3 texts
    assert before - after == pytest.approx(11 / 3)
    assert tok.tokenize("coolpix") == ["coolpix"]
    assert len(tok.tokenize("coolpixes")) > 1, "single_word: no match inside a longer word"


def test_split_words_finds_frequent_words_split_into_many_pieces(tok):
    rows = domain.split_words(tok, TEXTS, min_pieces=3, top=10)
    assert [w for w, _, _ in rows] == ["coolpix", "jukebox", "megapixel"]
    assert rows[0][1] == 2 and rows[0][2] == tok.tokenize("coolpix")


def test_mask_tokens_never_masks_padding_or_special_tokens(tok):
    batch = domain.pad([tok(t)["input_ids"] for t in TEXTS], tok.pad_token_id)
    ids, labels = domain.mask_tokens(batch["input_ids"], batch["attention_mask"], tok, prob=1.0,
                                     generator=torch.Generator().manual_seed(0))
    special = torch.isin(batch["input_ids"], torch.tensor(tok.all_special_ids))
    assert (labels[special] == -100).all() and (labels[~special] == batch["input_ids"][~special]).all()
    assert (ids[special] == batch["input_ids"][special]).all()


def _tiny_mlm(tok):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, pad_token_id=tok.pad_token_id)
    return domain.mlm_model(BertModel(cfg))


def test_mlm_model_ties_the_decoder_to_the_word_embeddings(tok):
    model = _tiny_mlm(tok)
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bert.embeddings.word_embeddings.weight.data_ptr()


def test_training_only_new_rows_with_peft_trainable_tokens_leaves_old_rows_unchanged(tok):
    import copy

    from peft import TrainableTokensConfig, get_peft_model

    tok = copy.deepcopy(tok)
    model = _tiny_mlm(tok)
    n_old = len(tok)
    new_ids, pieces = domain.add_terms(tok, WORDS)
    model.resize_token_embeddings(len(tok), mean_resizing=False)
    domain.init_new_rows(model.bert.embeddings.word_embeddings, pieces)
    before = model.bert.embeddings.word_embeddings.weight.detach().clone()
    peft_model = get_peft_model(model, TrainableTokensConfig(target_modules=["word_embeddings"],
                                                             token_indices=new_ids))
    ids = [tok(t)["input_ids"] for t in TEXTS * 4]
    domain.train_mlm(peft_model, ids, tok, lr=1e-2, steps=4, batch_size=4)
    merged = peft_model.merge_and_unload()
    after = merged.bert.embeddings.word_embeddings.weight.detach()
    torch.testing.assert_close(after[:n_old], before[:n_old], rtol=0, atol=0)
    assert (after[n_old:] - before[n_old:]).abs().sum(-1).gt(0).all(), "every new row moved"


def test_train_steps_dann_reads_target_batches_and_schedules_lambda(tok):
    from transformers import BertConfig, BertModel

    from ftlab.compare_methods import PooledClassifier

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, pad_token_id=tok.pad_token_id)
    model = PooledClassifier(BertModel(cfg))
    head = domain.DomainClassifier(32, width=16)
    ids = [tok(t)["input_ids"] for t in TEXTS * 4]
    src = domain.batch_stream({"input_ids": ids, "labels": [0, 1, 1] * 4}, 4, 0, tok.pad_token_id)
    tgt = domain.batch_stream({"input_ids": ids[:5]}, 2, 1, tok.pad_token_id, with_labels=False)
    before = [p.detach().clone() for p in head.parameters()]
    log = domain.train_steps(model, src, 1e-3, 5, target_batches=tgt, domain_head=head, lambda_max=0.5)
    assert len(log["task loss"]) == len(log["domain loss"]) == 5
    assert log["lambda"][0] == 0.0 and log["lambda"][-1] == pytest.approx(domain.dann_lambda(1.0, 0.5))
    assert all(not torch.equal(a, b) for a, b in zip(before, head.parameters())), "the domain head trains"
    plain = domain.train_steps(model, src, 1e-3, 2)
    assert plain["domain loss"] == [] and len(plain["task loss"]) == 2
