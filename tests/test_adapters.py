"""Bottleneck adapters (notebook 03): injection into BERT- and Llama-style models, exact identity at
initialisation, trainable counts by formula, several named adapters, save/load round trip, clear errors."""

import pytest
import torch

import ftlab as fl
from ftlab.methods import adapters as A

MODELS = ["tiny-minilm", "tiny-smollm2"]


def _model(name):
    model, tok = fl.load_model(name, seed=0)
    model.eval()
    return model, tok


def _batch(tok):
    tok.padding_side = "right"
    return tok(["a fine film", "long, dull and far too pleased with itself"], return_tensors="pt", padding=True)


def _logits(model, enc):
    with torch.no_grad():
        return model(**enc).logits


def _expected_trainable(model, bottleneck, placement):
    """Counted by hand: per adapter a (d x m) down and (m x d) up Linear with biases; plus one head copy."""
    c = model.config
    d, m, L = c.hidden_size, bottleneck, c.num_hidden_layers
    per_adapter = d * m + m + m * d + d
    n_adapters = L * (2 if placement == "houlsby" else 1)
    head = d * 2 + (2 if c.model_type == "bert" else 0)  # BERT's classifier has a bias; Llama's score has none
    return n_adapters * per_adapter + head


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("placement", ["houlsby", "pfeiffer"])
def test_injection_identity_and_exact_counts(name, placement):
    model, tok = _model(name)
    enc = _batch(tok)
    before = _logits(model, enc)
    total_before = fl.count_parameters(model).total
    A.apply_adapters(model, A.AdapterConfig(bottleneck=8, placement=placement), name="task")
    torch.testing.assert_close(_logits(model, enc), before, rtol=0, atol=0)  # exactly the identity
    count = fl.count_parameters(model)
    expected = _expected_trainable(model, 8, placement)
    assert count.trainable == expected
    assert count.total == total_before + expected  # the frozen original head is kept beside the copy
    wrapped = [n for n, m in model.named_modules() if isinstance(m, A.AdapterLinear)]
    suffixes = {"houlsby": ({"attention.output.dense", "output.dense"}, {"self_attn.o_proj", "mlp.down_proj"}),
                "pfeiffer": ({"output.dense"}, {"mlp.down_proj"})}[placement]
    want = suffixes[0] if name == "tiny-minilm" else suffixes[1]
    assert len(wrapped) == model.config.num_hidden_layers * len(want)
    assert all(any(n.endswith(s) for s in want) for n in wrapped)
    assert A.adapter_parameter_count(model.config.hidden_size, 8, model.config.num_hidden_layers, placement) \
        == expected - (model.config.hidden_size * 2 + (2 if name == "tiny-minilm" else 0))


def test_adapter_layer_is_residual_bottleneck():
    torch.manual_seed(0)
    layer = A.Adapter(16, A.AdapterConfig(bottleneck=4, non_linearity="gelu"))
    h = torch.randn(2, 3, 16)
    torch.testing.assert_close(layer(h), h, rtol=0, atol=0)
    torch.nn.init.normal_(layer.adapter_up.weight)
    expected = h + layer.adapter_up(torch.nn.functional.gelu(layer.adapter_down(h)))
    torch.testing.assert_close(layer(h), expected)
    assert layer.adapter_down.weight.shape == (4, 16) and layer.adapter_up.weight.shape == (16, 4)


def _perturb(model, name):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if f".adapters.{name}." in n or f".heads.{name}." in n:
                p.add_(0.1 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip(name, tmp_path):
    model, tok = _model(name)
    enc = _batch(tok)
    A.apply_adapters(model, A.AdapterConfig(bottleneck=6, placement="houlsby", non_linearity="silu"), name="sent")
    _perturb(model, "sent")
    trained = _logits(model, enc)
    path = A.save_adapter(model, tmp_path / "sent")
    assert sorted(p.name for p in path.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    assert A.adapter_size_mb(model) < fl.size_on_disk_mb(fl.load_model(name, seed=0)[0]) / 10

    fresh, _ = _model(name)
    assert A.load_adapter(fresh, path) == "sent"
    torch.testing.assert_close(_logits(fresh, enc), trained, rtol=0, atol=0)
    assert A.active_adapter(fresh) == "sent"
    assert fl.count_parameters(fresh).trainable == _expected_trainable(fresh, 6, "houlsby")


def test_several_adapters_switch_and_base_unchanged():
    model, tok = _model("tiny-minilm")
    enc = _batch(tok)
    base_logits = _logits(model, enc)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    A.apply_adapters(model, A.AdapterConfig(bottleneck=4), name="a")
    _perturb(model, "a")
    logits_a = _logits(model, enc)
    A.apply_adapters(model, A.AdapterConfig(bottleneck=8, placement="houlsby"), name="b")
    assert A.active_adapter(model) == "b" and A.adapter_names(model) == ["a", "b"]
    assert all(".adapters.b." in n or ".heads.b." in n for n, p in model.named_parameters() if p.requires_grad)
    torch.testing.assert_close(_logits(model, enc), base_logits, rtol=0, atol=0)  # b is fresh: identity
    _perturb(model, "b")
    assert not torch.equal(_logits(model, enc), logits_a)
    A.set_active(model, "a")
    torch.testing.assert_close(_logits(model, enc), logits_a, rtol=0, atol=0)
    A.set_active(model, None)
    torch.testing.assert_close(_logits(model, enc), base_logits, rtol=0, atol=0)
    state = model.state_dict()
    for k, v in base.items():  # every base tensor still where it was, bit for bit
        key = k if k in state else k.replace("dense.", "dense.base_layer.").replace("classifier.", "classifier.original_module.")
        assert torch.equal(state[key], v), k
    A.delete_adapter(model, "b")
    assert A.adapter_names(model) == ["a"]


def test_trains_only_the_adapter():
    model, tok = _model("tiny-smollm2")
    enc = _batch(tok)
    A.apply_adapters(model, A.AdapterConfig(bottleneck=8, init_scale=0.1), name="t")
    frozen = {n: p.clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.tensor([1, 0])
    model.train()
    losses = []
    for _ in range(8):
        loss = model(**enc, labels=labels).loss
        loss.backward(), opt.step(), opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    ups = [p for n, p in model.named_parameters() if n.endswith("adapter_up.weight")]
    assert all(p.abs().sum() > 0 for p in ups), "up-projections left zero: gradients did not reach them"


def test_bad_inputs_raise_clear_errors(tmp_path):
    model, _ = _model("tiny-minilm")
    with pytest.raises(fl.FtlabError, match="LayerNorm.*nn.Linear.*BERT-style"):
        A.apply_adapters(model, A.AdapterConfig(target_modules=["attention.output.LayerNorm"]))
    with pytest.raises(fl.FtlabError, match="matches no module.*Linear layers include: .*query"):
        A.apply_adapters(model, A.AdapterConfig(target_modules=["c_proj"]))
    with pytest.raises(fl.FtlabError, match="houlsby.*pfeiffer"):
        A.AdapterConfig(placement="middle")
    with pytest.raises(fl.FtlabError, match="relu, gelu, silu, tanh"):
        A.AdapterConfig(non_linearity="swish")
    with pytest.raises(fl.FtlabError, match="positive integer"):
        A.AdapterConfig(bottleneck=0)
    assert fl.count_parameters(model).trainable == fl.count_parameters(model).total, "failed calls changed nothing"

    A.apply_adapters(model, A.AdapterConfig(bottleneck=4), name="sentiment")
    with pytest.raises(fl.FtlabError, match="No adapter called 'topic'.*sentiment"):
        A.set_active(model, "topic")
    with pytest.raises(fl.FtlabError, match="exists already"):
        A.apply_adapters(model, A.AdapterConfig(), name="sentiment")
    with pytest.raises(fl.FtlabError, match="not a saved adapter"):
        A.load_adapter(model, tmp_path)

    # an unsupported architecture: a model with none of the supported blocks
    plain = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    with pytest.raises(fl.FtlabError, match="BERT-style encoders .* Llama-style decoders"):
        A.apply_adapters(plain)

    # an adapter saved for another base does not load, and leaves nothing behind
    path = A.save_adapter(model, tmp_path / "bert")
    llama, _ = _model("tiny-smollm2")
    with pytest.raises(fl.FtlabError, match="does not fit this model"):
        A.load_adapter(llama, path)
    assert A.adapter_names(llama) == []


def test_base_checksum_ignores_adapters_but_sees_base_changes():
    model, _ = _model("tiny-minilm")
    before = A.base_checksum(model)
    A.apply_adapters(model, A.AdapterConfig(bottleneck=4), name="a")
    _perturb(model, "a")
    assert A.base_checksum(model) == before
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.base_layer.weight[0, 0] += 1e-3
    assert A.base_checksum(model) != before


def test_head_copy_is_the_task_head_not_the_lm_head():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=1, intermediate_size=32, tie_word_embeddings=False))
    A.apply_adapters(lm, A.AdapterConfig(bottleneck=4), name="t")
    assert not isinstance(lm.lm_head, A.HeadCopies) and not lm.lm_head.weight.requires_grad
    assert fl.count_parameters(lm).trainable == A.adapter_parameter_count(16, 4, 2)


def test_public_names_stay_on_the_package():
    import importlib

    for name in ("Adapter", "AdapterConfig", "AdapterLinear", "HeadCopies", "active_adapter", "adapter_names",
                 "adapter_parameter_count", "adapter_size_mb", "adapter_state_dict", "apply_adapters", "base_checksum",
                 "delete_adapter", "load_adapter", "save_adapter", "set_active"):
        assert hasattr(A, name), name
    assert importlib.import_module("ftlab.methods.adapters.model").apply_adapters is A.apply_adapters
