import pytest
import torch

from ftlab.errors import FtlabError
from ftlab.methods import freeze as fz


def _bert(layers=4):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    return BertForSequenceClassification(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=layers,
                                                    num_attention_heads=2, intermediate_size=32, num_labels=2))


def _llama(task="causal-lm", layers=4):
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=60, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=32, tie_word_embeddings=True, num_labels=2,
                      pad_token_id=0)
    return (LlamaForCausalLM if task == "causal-lm" else LlamaForSequenceClassification)(cfg)


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


def test_find_blocks_on_both_architectures():
    assert fz.find_blocks(_bert())[0] == "bert.encoder.layer"
    assert fz.find_blocks(_llama())[0] == "model.layers"
    assert fz.num_blocks(_llama(layers=3)) == 3


@pytest.mark.parametrize("spec,expected", [(None, []), (0, []), (2, [2, 3]), (-1, [0]), ("all", [0, 1, 2, 3]),
                                           ([1, 2], [1, 2]), (range(1, 3), [1, 2]), ([-1], [3]),
                                           (slice(1, None, 2), [1, 3])])
def test_resolve_layers(spec, expected):
    assert fz.resolve_layers(spec, 4) == expected


def test_layer_index_out_of_range_names_the_count():
    with pytest.raises(FtlabError, match="4 blocks"):
        fz.resolve_layers([7], 4)
    with pytest.raises(FtlabError, match="4 blocks"):
        fz.freeze(_bert(), layers=+5, verbose=False)


def test_head_only_and_last_blocks_bert():
    model = _bert()
    r = fz.freeze(model, layers=None, verbose=False)
    assert _trainable(model) == {"classifier.weight", "classifier.bias"}
    assert r.trainable == 16 * 2 + 2 and r.trainable_blocks == []
    r = fz.freeze(model, layers=+2, extra=["pooler"], verbose=False)
    names = _trainable(model)
    assert all(n.startswith(("bert.encoder.layer.2.", "bert.encoder.layer.3.", "bert.pooler", "classifier"))
               for n in names)
    block = sum(p.numel() for p in model.bert.encoder.layer[0].parameters())
    pooler = sum(p.numel() for p in model.bert.pooler.parameters())
    assert r.trainable == 2 * block + pooler + 34 and r.trainable_blocks == [2, 3]
    assert r.total == sum(p.numel() for p in model.parameters())
    assert r.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert "blocks 2–3" in str(r) and "pooler" in str(r) and r.groups["block 0"] == (0, block)


def test_middle_layers_and_module_patterns_llama():
    model = _llama(task="classification")
    r = fz.freeze(model, layers=[1, 2], modules=["mlp"], verbose=False)
    names = _trainable(model)
    assert names == {f"model.layers.{i}.mlp.{m}.weight" for i in (1, 2) for m in ("gate_proj", "up_proj", "down_proj")} \
        | {"score.weight"}
    assert r.trainable_blocks == [1, 2]


def test_tied_lm_head_follows_the_embeddings():
    model = _llama()
    r = fz.freeze(model, layers=+1, verbose=False)
    assert not model.model.embed_tokens.weight.requires_grad and not model.lm_head.weight.requires_grad
    assert any("tied" in n for n in r.notes)
    fz.freeze(model, layers=+1, extra=["embed_tokens"], verbose=False)
    assert model.lm_head.weight.requires_grad


def test_patterns_matching_nothing_list_what_exists():
    with pytest.raises(FtlabError, match="attention.self.query"):
        fz.freeze(_bert(), layers=1, modules=["q_proj"], verbose=False)
    with pytest.raises(FtlabError, match="embeddings"):
        fz.freeze(_bert(), layers=1, extra=["nope"], verbose=False)
    with pytest.raises(FtlabError, match="self_attn.q_proj"):
        fz.freeze(_llama(), layers=1, modules=["attention.self"], verbose=False)


def test_strategies_and_adaptive():
    n = 6
    assert fz.strategy_layers("bottom-up", n) == [3, 4, 5] and fz.strategy_layers("top-down", n) == [0, 1, 2]
    assert fz.strategy_layers("alternating", n) == [1, 3, 5] and fz.strategy_layers("last", n, 2) == [4, 5]
    assert fz.strategy_layers("head", n) == [] and fz.strategy_layers("full", n) == list(range(n))
    assert [fz.adaptive_num_layers(s, n) for s in (0.0, 0.5, 1.0)] == [6, 3, 1]
    with pytest.raises(FtlabError, match="strategy"):
        fz.strategy_layers("sideways", n)
    with pytest.raises(FtlabError):
        fz.adaptive_num_layers(1.5, n)


def test_frozen_parameters_get_no_gradient():
    model = _bert()
    fz.freeze(model, layers=+1, verbose=False)
    ids = torch.randint(1, 60, (2, 5))
    model(input_ids=ids, labels=torch.tensor([0, 1])).loss.backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, n


def test_memory_estimate():
    m = fz.training_memory_mb(2**20, 2**19)
    assert m == {"weights": 4.0, "gradients": 2.0, "adam states": 4.0, "total": 10.0}


def test_unfreezing_schedule():
    assert fz.unfreezing_schedule(3, 40) == [(10, 2), (20, 1), (30, 0)]
    assert fz.unfreezing_schedule(3, 30, head_only_first=False) == [(0, 2), (10, 1), (20, 0)]
    with pytest.raises(FtlabError):
        fz.unfreezing_schedule(6, 3)


def test_gradual_unfreezing_trains_blocks_from_the_top(smoke):
    import ftlab as fl
    from datasets import Dataset

    model = _bert(layers=2)
    rows = [{"input_ids": [1, int(i % 50) + 5, 2], "attention_mask": [1, 1, 1], "labels": i % 2} for i in range(32)]
    ds = Dataset.from_list(rows)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    steps = 9  # stages: head alone for steps 0-2, + block 1 from step 3, + block 0 from step 6
    cb = fz.gradual_unfreezing_callback(model, steps)
    assert [b for _, b in cb.plan] == [1, 0]
    snapshots = {}

    from transformers import TrainerCallback

    class Snap(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            snapshots[state.global_step] = {n: p.detach().clone() for n, p in model.named_parameters()}

    cfg = fl.TrainConfig(name="gradual", steps=steps, batch_size=8, lr=1e-2, eval_every=steps, live=False,
                         weight_decay=0.01)
    fl.train(model, ds, None, cfg, collator=_collate, callbacks=[cb, Snap()])

    def moved(step, prefix):
        return any(not torch.equal(start[n], v) for n, v in snapshots[step].items() if n.startswith(prefix))

    assert moved(3, "classifier") and not moved(3, "bert.encoder.layer.1.") and not moved(3, "bert.encoder.layer.0.")
    assert moved(6, "bert.encoder.layer.1.") and not moved(6, "bert.encoder.layer.0.")
    assert moved(9, "bert.encoder.layer.0.")
    assert not moved(9, "bert.embeddings")  # never scheduled: never moves
    assert cb.log == [(3, 1), (6, 0)]


def _collate(items):
    return {k: torch.tensor([r[k] for r in items]) for k in ("input_ids", "attention_mask", "labels")}


def test_param_groups_give_the_head_its_own_learning_rate():
    model = _bert()
    fz.freeze(model, layers=+1, extra=["pooler"], verbose=False)
    groups = fz.param_groups(model, head_lr=2e-3, block_lr=1e-4, extra=["pooler"])
    by_id = {id(p): g for g in groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert {n for n, p in names.items() if id(p) in by_id} == _trainable(model), "exactly the trainable tensors"
    for n, p in names.items():
        if id(p) in by_id:
            g = by_id[id(p)]
            assert g["lr"] == (2e-3 if n.startswith(("bert.pooler", "classifier")) else 1e-4), n
            assert g["weight_decay"] == (0.01 if p.ndim >= 2 else 0.0), n
    opt = torch.optim.AdamW(groups)
    assert sorted({g["lr"] for g in opt.param_groups}) == [1e-4, 2e-3]
    fz.freeze(model, layers=None, train_head=False, verbose=False)
    with pytest.raises(FtlabError, match="nothing to train"):
        fz.param_groups(model, 2e-3, 1e-4)


def test_memory_calculator_parts_in_mib():
    from ftlab.strategy import UNIT, training_memory

    assert UNIT == "MiB"
    n = 2**20
    assert training_memory(n, n) == {"weights": 4.0, "gradients": 4.0, "optimizer": 8.0, "total": 16.0}  # fp32 AdamW
    bf16 = training_memory(n, n, weight_bytes=2, master_weights=True)  # mixed precision: 2 + 2 + 8 + 4 bytes
    assert bf16["total"] == 16.0 and bf16["optimizer"] == 12.0
    lora = training_memory(n + n // 4, n // 4, weight_bytes=2, trainable_bytes=4, optimizer="sgd")
    assert lora == {"weights": 2.0 + 1.0, "gradients": 1.0, "optimizer": 0.0, "total": 4.0}
    with pytest.raises(FtlabError, match="adamw"):
        training_memory(n, n, optimizer="lion")
    with pytest.raises(FtlabError, match="between 0 and"):
        training_memory(n, 2 * n)


def test_one_notion_of_the_head():
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    assert fz.head_names(_bert()) == ["classifier"]
    assert fz.head_names(_llama(task="classification")) == ["score"]
    tied = _llama()
    assert fz.head_names(tied) == ["lm_head"] and fz.head_names(tied, output_embeddings=False) == []
    assert fz.head_names(_bert().bert) == []  # a bare encoder has no head
    distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=60, dim=16, n_layers=2, n_heads=2,
                                                                  hidden_dim=32))
    assert fz.head_names(distil) == ["pre_classifier", "classifier"]
    fz.freeze(distil, layers=None, verbose=False)
    assert {n.split(".")[0] for n in _trainable(distil)} == {"pre_classifier", "classifier"}
