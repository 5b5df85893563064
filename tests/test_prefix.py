"""ftlab's prefix tuning (ftlab/methods/prefix.py) against PEFT, on the model types where PEFT runs.

PEFT's prefix tuning on a Llama causal LM runs on every transformers 5 release we test; on a BERT
classifier it runs up to transformers 5.23 and raises from 5.24 (see the module docstring). Where PEFT
runs, the two must agree to float precision; where it does not, it must fail with the known message.
"""

import pytest
import torch

import ftlab as fl
from ftlab.methods import prefix


def _batch(tok, texts=("The film was a quiet triumph.", "Dull.")):
    tok.padding_side = "right"
    return tok(list(texts), return_tensors="pt", padding=True)


def _peft(model, task, **kw):
    from peft import PrefixTuningConfig, get_peft_model

    torch.manual_seed(0)
    return get_peft_model(model, PrefixTuningConfig(task_type=task, num_virtual_tokens=5, **kw))


def _copy_prefix(ours: prefix.PrefixEncoder, peft_model):
    theirs = peft_model.prompt_encoder.default
    ours.embedding.weight.data.copy_(theirs.embedding.weight.data)
    if ours.prefix_projection:
        ours.transform.load_state_dict(theirs.transform.state_dict())


@pytest.mark.parametrize("projection", [False, True])
def test_prefix_forward_matches_peft_on_llama(projection):
    model, tok = fl.load_model("tiny-smollm2", task="causal-lm", seed=0)
    kw = dict(prefix_projection=True, encoder_hidden_size=16) if projection else {}
    peft_model = _peft(model, "CAUSAL_LM", **kw)
    layers, kv_heads, head_dim = prefix.kv_layout(model.config)
    ours = prefix.PrefixEncoder(5, layers, kv_heads * head_dim, projection, encoder_hidden_size=16)
    _copy_prefix(ours, peft_model)
    batch = _batch(tok)
    peft_model.eval()
    with torch.no_grad():
        theirs = peft_model(**batch).logits
        mine = prefix.prefix_forward(peft_model.get_base_model(), ours(), batch["input_ids"],
                                     batch["attention_mask"]).logits
    torch.testing.assert_close(mine, theirs)
    # and the prefix changes the output: a zero-effect prefix would also "match"
    with torch.no_grad():
        plain = peft_model.get_base_model()(**batch).logits
    assert (plain - theirs).abs().max() > 1e-3


def test_prefix_on_bert_matches_peft_or_peft_refuses():
    model, tok = fl.load_model("tiny-minilm", seed=0)
    peft_model = _peft(model, "SEQ_CLS")
    peft_model.eval()
    batch = _batch(tok)
    bert = peft_model.get_base_model().bert
    layers, kv_heads, head_dim = prefix.kv_layout(bert.config)
    ours = prefix.PrefixEncoder(5, layers, kv_heads * head_dim)
    _copy_prefix(ours, peft_model)
    with torch.no_grad():
        pooled = prefix.prefix_forward(bert, ours(), batch["input_ids"], batch["attention_mask"]).pooler_output
        mine = peft_model.get_base_model().classifier(pooled)
        try:
            theirs = peft_model(**batch).logits
        except ValueError as e:  # transformers >= 5.24 with PEFT 0.21: the signature check fails
            assert "does not support past key values" in str(e)
            assert prefix.cache_keyword(bert) == "cache"
            return
    torch.testing.assert_close(mine, theirs)


def test_prefix_classifier_trains_only_prefix_and_head(smoke):
    backbone, tok = fl.load_model("tiny-minilm", task="base", seed=0)
    model = prefix.PrefixClassifier(backbone, num_labels=2, num_virtual_tokens=4)
    layers, heads, head_dim = prefix.kv_layout(backbone.config)
    hidden = backbone.config.hidden_size
    count = fl.count_parameters(model)
    assert count.trainable == 4 * 2 * layers * heads * head_dim + hidden * 2 + 2
    batch = _batch(tok)
    labels = torch.tensor([1, 0])
    out = model(**batch, labels=labels)
    out.loss.backward()
    assert model.prefix.embedding.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())
    saved = model.trainable_state_dict()
    assert set(saved) == {"prefix", "head.weight", "head.bias"}
    torch.testing.assert_close(saved["prefix"], model.prefix.embedding.weight.detach())
    # with the MLP: more to train, the same saved prefix shape
    mlp = prefix.PrefixClassifier(backbone, 2, 4, prefix_projection=True, encoder_hidden_size=8)
    assert fl.count_parameters(mlp).trainable > count.trainable
    assert mlp.trainable_state_dict()["prefix"].shape == saved["prefix"].shape


def test_prefix_is_seen_by_every_layer():
    """Deep, not shallow: a prefix in the last layer alone changes the output (it is not input-only)."""
    backbone, tok = fl.load_model("tiny-minilm", task="base", seed=0)
    backbone.eval()
    layers, heads, head_dim = prefix.kv_layout(backbone.config)
    raw = torch.zeros(3, 2 * layers * heads * head_dim)
    batch = _batch(tok)
    with torch.no_grad():
        base = prefix.prefix_forward(backbone, raw, batch["input_ids"], batch["attention_mask"]).last_hidden_state
        raw.view(3, 2 * layers, -1)[:, -1] = 1.0  # the value vectors of the last layer only
        moved = prefix.prefix_forward(backbone, raw, batch["input_ids"], batch["attention_mask"]).last_hidden_state
    assert (moved - base).abs().max() > 1e-3


def test_model_without_cache_argument_gets_clear_error():
    with pytest.raises(fl.FtlabError, match="takes no key/value cache"):
        prefix.cache_keyword(torch.nn.Linear(2, 2))


def test_prefix_shapes_and_greedy_generation():
    model, tok = fl.load_model("tiny-smollm2", task="causal-lm", seed=0)
    c = model.config
    peft_model = _peft(model, "CAUSAL_LM")
    torch.nn.init.normal_(peft_model.prompt_encoder.default.embedding.weight, std=2.0)  # a prefix that matters
    shapes = prefix.prefix_kv_shapes(peft_model, batch_size=3)
    head_dim = c.hidden_size // c.num_attention_heads
    # one key and one value prefix per layer, with the key/value heads (grouped-query attention: fewer)
    assert shapes == [((3, c.num_key_value_heads, 5, head_dim),) * 2] * c.num_hidden_layers
    with pytest.raises(fl.FtlabError, match="PrefixTuningConfig"):
        prefix.prefix_kv_shapes(model)

    out = prefix.generate_with_prefix(peft_model, tok, "Hello", max_new_tokens=4)
    # the same greedy steps, computed independently: the hand-made cache on the plain model
    base, raw = peft_model.get_base_model(), peft_model.prompt_encoder.default.embedding.weight.detach()
    ids = tok("Hello", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain = ids.clone()
        for _ in range(4):
            ids = torch.cat([ids, prefix.prefix_forward(base, raw, ids).logits[:, -1:].argmax(-1)], 1)
            plain = torch.cat([plain, base(input_ids=plain).logits[:, -1:].argmax(-1)], 1)
    assert out == tok.decode(ids[0, 1:], skip_special_tokens=True)
    assert out != tok.decode(plain[0, 1:], skip_special_tokens=True), "the prefix changes what is generated"
