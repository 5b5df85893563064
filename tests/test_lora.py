"""LoRA and AdaLoRA (notebook 06): the from-scratch LoraLinear equals PEFT's LoRA given the same A and B,
bad ranks and targets raise FtlabError naming what exists, merging keeps the logits, and
lora.method_callbacks (attached by finetune_classifier) makes AdaLoRA re-allocate its ranks (a plain loop
without update_and_allocate does not)."""

import copy

import pytest
import torch

import ftlab as fl
from ftlab.methods import lora


@pytest.fixture(scope="module")
def tiny_encoder():
    fl.setup(seed=0, profile="smoke", verbose=False)
    return fl.load_model("tiny-minilm", seed=0)


def _enc(tok, texts=("a fine film", "a dull and far too long film")):
    tok.padding_side = "right"
    return tok(list(texts), return_tensors="pt", padding=True)


def _copy_peft_into_ours(peft_model, ours):
    """Give the from-scratch layers PEFT's A and B (B made non-zero first, so the check means something)."""
    torch.manual_seed(1)
    theirs = {n.replace("base_model.model.", ""): m for n, m in peft_model.named_modules() if hasattr(m, "lora_A")
              and "default" in getattr(m, "lora_A", {})}
    assert theirs, "PEFT built no LoRA layers"
    for name, m in theirs.items():
        torch.nn.init.normal_(m.lora_B["default"].weight, std=0.5)
        mine = ours.get_submodule(name)
        mine.lora_A.weight.data.copy_(m.lora_A["default"].weight)
        mine.lora_B.weight.data.copy_(m.lora_B["default"].weight)
        assert mine.scaling == m.scaling["default"]
    return len(theirs)


@pytest.mark.parametrize("name,task,targets", [("tiny-minilm", "classification", ["query", "value"]),
                                               ("tiny-smollm2", "causal-lm", ["q_proj", "v_proj"])])
def test_from_scratch_lora_matches_peft(name, task, targets):
    from peft import get_peft_model

    fl.setup(seed=0, profile="smoke", verbose=False)
    model, tok = fl.load_model(name, task=task, seed=0)
    model.eval()  # no dropout: the outputs must be comparable
    ours = lora.apply_lora(copy.deepcopy(model), targets, r=4, lora_alpha=8)
    enc = _enc(tok)
    with torch.no_grad():
        base = model(**enc).logits
        torch.testing.assert_close(ours(**enc).logits, base, atol=0, rtol=0)  # B = 0: unchanged at the start
    task_type = "SEQ_CLS" if task == "classification" else "CAUSAL_LM"
    peft_model = get_peft_model(model, lora.lora_config(model, r=4, lora_alpha=8, target_modules=targets,
                                                        task_type=task_type))
    assert _copy_peft_into_ours(peft_model, ours) == 2 * len(targets)  # two layers in the tiny models
    peft_model.eval(), ours.eval()
    with torch.no_grad():
        a, b = peft_model(**enc).logits, ours(**enc).logits
    assert (a - base).abs().max() > 1e-4, "a non-zero B must change the output"
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    trainable = {n.rsplit(".", 2)[-2] for n, p in ours.named_parameters() if p.requires_grad}
    assert trainable == {"lora_A", "lora_B"}


@pytest.mark.parametrize("r", [4, 16])
def test_default_alpha_agrees_with_peft_at_every_rank(r):
    """Neither side is given lora_alpha: both default to 2 * r (scaling 2)."""
    from peft import get_peft_model

    fl.setup(seed=0, profile="smoke", verbose=False)
    model, tok = fl.load_model("tiny-minilm", seed=0)
    model.eval()
    ours = lora.apply_lora(copy.deepcopy(model), ["query", "value"], r=r)
    peft_model = get_peft_model(model, lora.lora_config(model, r=r, target_modules=["query", "value"]))
    assert _copy_peft_into_ours(peft_model, ours) == 4  # also checks each layer's scaling is PEFT's
    assert {m.scaling for m in ours.modules() if isinstance(m, lora.LoraLinear)} == {2.0}
    enc = _enc(tok)
    peft_model.eval(), ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(**enc).logits, peft_model(**enc).logits, atol=1e-5, rtol=1e-5)


def test_adalora_all_linear_is_passed_as_a_string(tiny_encoder):
    from peft import get_peft_model

    model, _ = tiny_encoder
    cfg = lora.adalora_config(model, total_step=20, init_r=4, target_r=2, target_modules="all-linear")
    assert cfg.target_modules == "all-linear"
    ada = get_peft_model(copy.deepcopy(model), cfg)
    wrapped = sorted(n.split(".lora_E.")[0].replace("base_model.model.", "")
                     for n, _ in ada.named_parameters() if ".lora_E." in n)
    assert wrapped == sorted(lora.target_names(model, "all-linear")) and len(wrapped) == 13
    assert lora.adalora_config(model, total_step=20, target_modules=("query",)).target_modules == {"query"}


def test_delta_weight_merges_exactly(tiny_encoder):
    model, tok = tiny_encoder
    ours = lora.apply_lora(copy.deepcopy(model), ["query"], r=2, lora_alpha=4)
    layer = ours.bert.encoder.layer[0].attention.self.query
    torch.nn.init.normal_(layer.lora_B.weight)
    x = torch.randn(3, layer.base_layer.in_features)
    merged = torch.nn.functional.linear(x, layer.base_layer.weight + layer.delta_weight(), layer.base_layer.bias)
    torch.testing.assert_close(layer(x), merged, atol=1e-5, rtol=1e-5)
    assert layer.scaling == 2.0


def test_bad_rank_and_targets_raise_clear_errors(tiny_encoder):
    model, _ = tiny_encoder
    with pytest.raises(fl.FtlabError, match=r"r <= 64"):
        lora.lora_config(model, r=65, target_modules=["query", "value"])
    with pytest.raises(fl.FtlabError, match=r"query, value"):  # lists the model's module names
        lora.lora_config(model, r=8, target_modules=["q_proj", "v_proj"])
    with pytest.raises(fl.FtlabError, match="positive"):
        lora.lora_config(model, r=0)
    with pytest.raises(fl.FtlabError, match="total_step"):
        lora.adalora_config(model, total_step=0)
    with pytest.raises(fl.FtlabError, match="tinit"):
        lora.adalora_config(model, total_step=10, tinit=5, tfinal=5)
    assert lora.lora_config(model, r=64, target_modules="all-linear").r == 64  # the largest rank that fits


def test_counts_names_and_low_rank_error(tiny_encoder):
    model, _ = tiny_encoder
    assert lora.short_linear_names(model) == ["classifier", "dense", "key", "query", "value"]
    assert len(lora.target_names(model, ["query", "value"])) == 4
    assert "classifier" not in " ".join(lora.target_names(model, "all-linear"))
    assert lora.lora_parameter_count(model, 8, ["query", "value"]) == 4 * 8 * (64 + 64)
    w = torch.randn(32, 8) @ torch.randn(8, 48)  # rank 8
    assert lora.low_rank_error(w, 8) < 1e-5 and 0 < lora.low_rank_error(w, 2) < 1
    assert lora.low_rank_error(w, 0) == pytest.approx(1.0)


def test_peft_trainable_count_matches_formula(tiny_encoder):
    from peft import get_peft_model

    model, _ = tiny_encoder
    peft_model = get_peft_model(copy.deepcopy(model), lora.lora_config(model, r=8, target_modules=["query", "value"]))
    n = sum(p.numel() for name, p in peft_model.named_parameters() if p.requires_grad and "lora_" in name)
    assert n == lora.lora_parameter_count(model, 8, ["query", "value"])


def test_merge_and_reload_keep_the_logits(tiny_encoder, tmp_path):
    from peft import PeftModel, get_peft_model

    model, tok = tiny_encoder
    model.eval()
    peft_model = get_peft_model(copy.deepcopy(model), lora.lora_config(model, r=4, target_modules=["query", "value"]))
    for n, p in peft_model.named_parameters():
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    peft_model.eval()
    enc = _enc(tok)
    with torch.no_grad():
        before = peft_model(**enc).logits
        peft_model.save_pretrained(tmp_path / "adapter")
        assert (tmp_path / "adapter" / "adapter_model.safetensors").exists()
        reloaded = PeftModel.from_pretrained(copy.deepcopy(model), tmp_path / "adapter").eval()
        torch.testing.assert_close(reloaded(**enc).logits, before, atol=1e-6, rtol=0)
        merged = peft_model.merge_and_unload()
        assert not any("lora_" in n for n, _ in merged.named_parameters())
        torch.testing.assert_close(merged(**enc).logits, before, atol=1e-4, rtol=0)


def _tiny_rows(tok, n=32):
    from datasets import Dataset

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, tok.vocab_size, (n, 12), generator=g)
    labels = (ids[:, 0] % 2).tolist()  # a learnable rule
    return Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": [[1] * 12] * n, "labels": labels})


def _adalora_model(model, steps):
    from peft import get_peft_model

    cfg = lora.adalora_config(model, total_step=steps, init_r=4, target_r=1, tinit=2, tfinal=3, deltaT=1)
    return get_peft_model(copy.deepcopy(model), cfg)


def test_finetune_classifier_makes_adalora_reallocate(tiny_encoder):
    """The notebook path: finetune_classifier attaches lora.method_callbacks(model) itself."""
    model, tok = tiny_encoder
    steps = 12
    ada = _adalora_model(model, steps)
    start = lora.adalora_rank_pattern(ada)
    assert set(start.values()) == {4}
    seen = []

    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            seen.append(sum(lora.adalora_rank_pattern(ada).values()))

    rows = _tiny_rows(tok)
    tokens = {"train": rows, "validation": rows.select(range(8)), "test": rows.select(range(8))}
    smoke = fl.get_profile("smoke")
    fl.finetune_classifier(ada, tok, tokens, smoke, "ada", lr=1e-2, steps=steps, batch_size=8, eval_every=steps,
                           live=False, callbacks=[Record()])
    end = lora.adalora_rank_pattern(ada)
    assert sum(end.values()) == 1 * len(end), "the final budget is target_r per layer on average"
    assert seen[0] == 4 * len(start) and seen[-1] < seen[0], "ranks shrink during training"


def test_method_callbacks_only_for_adalora(tiny_encoder):
    from peft import get_peft_model

    model, _ = tiny_encoder
    assert lora.method_callbacks(model) == []
    assert lora.method_callbacks(get_peft_model(copy.deepcopy(model), lora.lora_config(model, r=2))) == []
    [cb] = lora.method_callbacks(_adalora_model(model, 12))
    assert type(cb).__name__ == "AdaLoraUpdateAndAllocate"


@pytest.mark.filterwarnings("ignore:.*LoRA tensor")  # PEFT saving a layer pruned to rank 0
def test_plain_train_with_method_callbacks_reallocates(tiny_encoder, tmp_path):
    """fl.train itself knows no method: called directly, it needs callbacks=lora.method_callbacks(model)."""
    model, tok = tiny_encoder
    steps = 12
    config = fl.TrainConfig(name="ada", steps=steps, batch_size=8, lr=1e-2, eval_every=steps, live=False,
                            output_dir=str(tmp_path / "ada"))
    ranks = {}
    for with_callbacks in (False, True):
        ada = _adalora_model(model, steps)
        config.output_dir = str(tmp_path / f"ada-{with_callbacks}")
        fl.train(ada, _tiny_rows(tok), None, config, tokenizer=tok,
                 callbacks=lora.method_callbacks(ada) if with_callbacks else ())
        ranks[with_callbacks] = sum(lora.adalora_rank_pattern(ada).values())
    assert ranks == {False: 4 * 4, True: 1 * 4}


def test_plain_loop_without_update_and_allocate_keeps_ranks(tiny_encoder):
    """The trap ftlab.train closes: without update_and_allocate AdaLoRA silently trains as LoRA."""
    from transformers import DataCollatorWithPadding

    model, tok = tiny_encoder
    steps = 12
    ada = _adalora_model(model, steps)
    rows = _tiny_rows(tok)
    batch = DataCollatorWithPadding(tok)([rows[i] for i in range(8)])
    opt = torch.optim.AdamW([p for p in ada.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(steps):
        ada(**batch).loss.backward()
        opt.step(), opt.zero_grad()
    assert set(lora.adalora_rank_pattern(ada).values()) == {4}
    nonzero = [int((p != 0).sum()) for n, p in ada.named_parameters() if ".lora_E." in n]
    assert nonzero == [4] * len(nonzero), "every singular value is still in use"


def test_adalora_rank_pattern_refuses_other_models(tiny_encoder):
    with pytest.raises(fl.FtlabError, match="AdaLoraConfig"):
        lora.adalora_rank_pattern(tiny_encoder[0])


def test_check_lora_reads_the_shape_of_a_4bit_layer_not_its_packed_weight():
    bnb = pytest.importorskip("bitsandbytes")
    model = torch.nn.Sequential()
    layer = bnb.nn.Linear4bit(64, 32, bias=False, quant_type="nf4")
    layer.weight = bnb.nn.Params4bit(torch.randn(32, 64), requires_grad=False, quant_type="nf4")
    model.add_module("query", layer.to("cpu"))
    assert tuple(model.query.weight.shape) != (32, 64)  # packed storage
    assert lora.check_lora(model, 8, ["query"]) == ["query"]
    with pytest.raises(fl.FtlabError, match="r <= 32"):
        lora.check_lora(model, 33, ["query"])
