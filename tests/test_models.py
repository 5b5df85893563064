import pytest
import torch

import ftlab


def test_tiny_encoder_has_real_tokenizer_and_exact_size(smoke):
    model, tok = ftlab.load_model("tiny-minilm")
    assert len(tok) == 30522 and tok("hello world")["input_ids"] == [101, 7592, 2088, 102]
    n = ftlab.count_parameters(model)
    assert (n.total, n.trainable) == (2_057_666, 2_057_666)
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_tiny_decoder_ties_embeddings_and_counts_them_once(smoke):
    model, tok = ftlab.load_model("tiny-smollm2", task="causal-lm")
    assert tok.pad_token is not None and len(tok) == 49152
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert ftlab.count_parameters(model).total == 3_219_776


def test_same_seed_same_initial_model(smoke):
    a, _ = ftlab.load_model("tiny-minilm", seed=1)
    b, _ = ftlab.load_model("tiny-minilm", seed=1)
    c, _ = ftlab.load_model("tiny-minilm", seed=2)
    wa, wb, wc = (m.classifier.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_count_parameters_after_freezing(smoke):
    model, _ = ftlab.load_model("tiny-minilm")
    for p in model.bert.parameters():
        p.requires_grad_(False)
    n = ftlab.count_parameters(model)
    assert n.trainable == 64 * 2 + 2  # the classifier head only (the pooler sits inside model.bert)
    assert str(n) == "trainable 130 of 2,057,666 parameters (0.01 %)"


def test_local_path_loads_like_a_hub_name(smoke, tmp_path):
    """The hub-loading path (from_pretrained on a name) tested on a local folder, safetensors only."""
    model, tok = ftlab.load_model("tiny-minilm", labels=["a", "b", "c"])
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    again, tok2 = ftlab.load_model(str(tmp_path), labels=["a", "b", "c"])
    for (k, v), (k2, v2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    assert again.config.id2label == {0: "a", 1: "b", 2: "c"}


def test_unknown_model_offline_says_what_exists(smoke):
    with pytest.raises(ftlab.FtlabError) as e:
        ftlab.load_model("no-such-org/no-such-model")
    msg = str(e.value)
    assert "Cannot load model 'no-such-org/no-such-model'" in msg
    assert all(name in msg for name in ("minilm", "smollm2-135m", "tiny-minilm")) and "internet" in msg


def test_unknown_task_is_a_clear_error(smoke):
    with pytest.raises(ftlab.FtlabError, match="Unknown task 'regression'"):
        ftlab.load_model("tiny-minilm", task="regression")


def test_offline_minilm_loads_from_its_package(smoke):
    model, tok = ftlab.load_model("minilm")
    assert ftlab.count_parameters(model).total == 22_713_986
    assert model.config.num_hidden_layers == 6
