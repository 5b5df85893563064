import pytest
import torch

import ftlab
from ftlab import models


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
    assert "(OSError: " in msg and isinstance(e.value.__cause__, OSError)  # the hub's own reason, kept


def test_unknown_task_is_a_clear_error(smoke):
    with pytest.raises(ftlab.FtlabError, match="Unknown task 'regression'"):
        ftlab.load_model("tiny-minilm", task="regression")


def test_offline_minilm_loads_from_its_package(smoke):
    model, tok = ftlab.load_model("minilm")
    assert ftlab.count_parameters(model).total == 22_713_986
    assert model.config.num_hidden_layers == 6


def test_count_parameters_counts_4bit_weights_as_weights():
    """bitsandbytes packs two 4-bit weights per byte: a quantised layer has as many parameters as before."""
    from peft import LoraConfig, PeftModel, get_peft_model

    from ftlab.methods import quant

    bnb = quant.import_bnb()
    torch.manual_seed(0)
    original = torch.nn.Linear(64, 32)
    layer = bnb.nn.Linear4bit(64, 32, quant_type="nf4", compute_dtype=torch.float32)
    layer.weight = bnb.nn.Params4bit(original.weight.data.clone(), requires_grad=False, quant_type="nf4")
    layer.bias = torch.nn.Parameter(original.bias.data.clone())
    layer = layer.to("cpu")  # quantises: 2048 fp32 weights -> 1024 bytes
    assert layer.weight.bnb_quantized and layer.weight.numel() == 1024
    n = ftlab.count_parameters(layer)
    assert (n.total, n.trainable) == (ftlab.count_parameters(original).total, 32) == (64 * 32 + 32, 32)
    assert PeftModel.get_nb_trainable_parameters(layer) == (32, 2080)  # PEFT's counter: (trainable, all)
    qlora = get_peft_model(torch.nn.Sequential(torch.nn.Linear(4, 4), layer), LoraConfig(r=2, target_modules=["1"]))
    n = ftlab.count_parameters(qlora)
    assert (n.trainable, n.total) == qlora.get_nb_trainable_parameters() == (2 * 64 + 32 * 2, 20 + 2080 + 192)


def tokenizer_only(dest, with_weights):
    """Stands in for the GGUF conversion: a real tokenizer (MiniLM's), and no weights."""
    ftlab.load_tokenizer("tiny-minilm").save_pretrained(dest)
    if with_weights:
        raise ValueError("boom")


def test_failed_gguf_conversion_says_so_and_keeps_its_cause(smoke, tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_smollm2", tokenizer_only)
    with pytest.raises(ftlab.FtlabError) as e:
        ftlab.load_model("smollm2-135m", task="causal-lm")
    msg = str(e.value)
    assert msg.startswith("Converting SmolLM2-135M-Instruct's tokenizer and weights") and "ValueError: boom" in msg
    assert "not an offline short name" not in msg and isinstance(e.value.__cause__, ValueError)
    # the tokenizer-only folder from load_tokenizer is still there; no temporary folder is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["smollm2-135m-instruct"]
    assert not (tmp_path / "smollm2-135m-instruct" / "model.safetensors").exists()


def fake_conversion(dest, with_weights):
    (dest / "tokenizer.json").write_text("ours")
    if with_weights:
        (dest / "model.safetensors").write_text("ours")


def test_conversion_lands_in_one_rename_and_a_finished_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))
    target = tmp_path / "smollm2-135m-instruct"

    def another_worker_finishes_first(dest, with_weights):
        fake_conversion(dest, with_weights)
        target.mkdir()  # meanwhile another pytest-xdist worker renames its complete folder into place
        (target / "tokenizer.json").write_text("theirs")
        (target / "model.safetensors").write_text("theirs")

    monkeypatch.setattr(models, "_convert_smollm2", another_worker_finishes_first)
    assert ftlab.model_path("smollm2-135m") == str(target)
    assert (target / "model.safetensors").read_text() == (target / "tokenizer.json").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # our copy was discarded


def test_conversion_replaces_a_tokenizer_only_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_smollm2", fake_conversion)
    target = tmp_path / "smollm2-135m-instruct"
    assert ftlab.model_path("smollm2-135m", with_weights=False) == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["tokenizer.json"]
    assert ftlab.model_path("smollm2-135m") == str(target)
    assert sorted(p.name for p in target.iterdir()) == ["model.safetensors", "tokenizer.json"]
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_failed_conversion_leaves_no_temporary_folder(tmp_path, monkeypatch):
    def fails_half_way(dest, with_weights):
        (dest / "tokenizer.json").write_text("partial")
        raise OSError("No space left on device")

    monkeypatch.setenv("FTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_smollm2", fails_half_way)
    with pytest.raises(ftlab.FtlabError, match=r"Converting SmolLM2.*failed with OSError: No space left on device"):
        ftlab.model_path("smollm2-135m")
    assert list(tmp_path.iterdir()) == []
