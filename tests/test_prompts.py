"""Prompt methods (notebooks 04 and 05): the from-scratch soft prompt equals PEFT's, the checks raise
FtlabError with a clear message, parameter counts match what PEFT builds, zero-shot scoring works."""

import pytest
import torch

import ftlab as fl
from ftlab.methods import prompts


@pytest.fixture(scope="module")
def tiny_lm():
    fl.setup(seed=0, profile="smoke", verbose=False)
    return fl.load_model("tiny-smollm2", task="causal-lm", seed=0)


def _batch(tok):
    tok.padding_side = "right"
    enc = tok(["a short review", "a rather longer review of a film"], return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("init", ["RANDOM", "TEXT"])
def test_soft_prompt_matches_peft(tiny_lm, init):
    from peft import PromptTuningConfig, TaskType, get_peft_model

    model, tok = fl.load_model("tiny-smollm2", task="causal-lm", seed=0)
    text = "Is this review positive or negative?"
    cfg = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=6, prompt_tuning_init=init,
                             **({"prompt_tuning_init_text": text, "tokenizer_name_or_path": tok.name_or_path}
                                if init == "TEXT" else {}))
    peft_model = get_peft_model(model, cfg)
    ours = prompts.apply_soft_prompt(model, prompts.SoftPromptConfig(6, init_text=text if init == "TEXT" else None), tok)
    if init == "TEXT":  # same text, same token embeddings: both inits agree before any copying
        torch.testing.assert_close(ours.prompt_encoder.embedding.weight,
                                   peft_model.prompt_encoder.default.embedding.weight)
    ours.prompt_encoder.embedding.weight.data.copy_(peft_model.prompt_encoder.default.embedding.weight)
    ids, mask = _batch(tok)
    labels = ids.masked_fill(mask == 0, -100)
    peft_model.eval(), ours.eval()
    a, b = peft_model(input_ids=ids, attention_mask=mask, labels=labels), ours(ids, mask, labels)
    assert a.logits.shape == (2, 6 + ids.shape[1], model.config.vocab_size)
    torch.testing.assert_close(b.logits, a.logits)
    torch.testing.assert_close(b.loss, a.loss)
    trainable = [n for n, p in ours.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_encoder.embedding.weight"]


def test_soft_prompt_trains_only_the_prompt(tiny_lm):
    model, tok = fl.load_model("tiny-smollm2", task="causal-lm", seed=0)
    ours = prompts.apply_soft_prompt(model, prompts.SoftPromptConfig(4))
    ids, mask = _batch(tok)
    before = {n: p.clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in ours.parameters() if p.requires_grad], lr=1e-1)
    losses = []
    for _ in range(5):
        loss = ours(ids, mask, ids.masked_fill(mask == 0, -100)).loss
        loss.backward(), opt.step(), opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())


def test_prompt_too_long_for_context_raises():
    model, _ = fl.load_model("tiny-minilm", seed=0)  # 512 positions
    assert prompts.check_prompt_length(model, 20, 64) == 84
    with pytest.raises(fl.FtlabError, match="512"):
        prompts.check_prompt_length(model, 500, 64)
    with pytest.raises(fl.FtlabError, match="positive"):
        prompts.check_prompt_length(model.config, 0, 64)


@pytest.mark.parametrize("method,kwargs", [
    ("prompt", {}), ("p-tuning-mlp", {"encoder_reparameterization_type": "MLP"}),
    ("p-tuning-lstm", {"encoder_reparameterization_type": "LSTM"}),
    ("prefix", {"prefix_projection": False}), ("prefix-projection", {"prefix_projection": True})])
def test_parameter_counts_match_peft(method, kwargs):
    from peft import PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType, get_peft_model

    model, _ = fl.load_model("tiny-minilm", seed=0)
    d, L = model.config.hidden_size, model.config.num_hidden_layers
    cls = {"prompt": PromptTuningConfig, "p-tuning-mlp": PromptEncoderConfig, "p-tuning-lstm": PromptEncoderConfig,
           "prefix": PrefixTuningConfig, "prefix-projection": PrefixTuningConfig}[method]
    extra = {"encoder_hidden_size": 32} if method != "prompt" else {}
    peft_model = get_peft_model(model, cls(task_type=TaskType.SEQ_CLS, num_virtual_tokens=7, **extra, **kwargs))
    got = sum(p.numel() for p in peft_model.prompt_encoder.parameters() if p.requires_grad)
    assert got == prompts.prompt_parameter_count(method, 7, d, L, extra.get("encoder_hidden_size"))
    with pytest.raises(fl.FtlabError, match="choose one of"):
        prompts.prompt_parameter_count("lora", 7, d, L)


def test_zero_shot_scores(tiny_lm):
    model, tok = tiny_lm
    texts = ["great film", "dull and long", "fine"]
    s = prompts.zero_shot_scores(model, tok, texts, "Review: {text}\nSentiment:", [" negative", " positive"])
    assert s.shape == (3, 2) and bool((s <= 0).all())
    # batching and left padding must not change a row's scores
    one = prompts.zero_shot_scores(model, tok, texts[1:2], "Review: {text}\nSentiment:", [" negative", " positive"])
    torch.testing.assert_close(s[1:2], one, atol=1e-4, rtol=1e-4)
    question = "Is this review positive or negative?"
    chat = prompts.chat_template(tok, question)
    assert chat.format(text="X") == tok.apply_chat_template(
        [{"role": "user", "content": f"{question}\n\nX"}], tokenize=False, add_generation_prompt=True)
    with pytest.raises(fl.FtlabError, match="placeholder"):
        prompts.zero_shot_scores(model, tok, texts, "no placeholder", [" negative", " positive"])
    with pytest.raises(fl.FtlabError, match="same token"):
        prompts.zero_shot_scores(model, tok, texts, "{text}", [" positive", " positive"])


def test_zero_shot_scores_and_accuracy_match_a_plain_loop(tiny_lm):
    """One prompt at a time, no padding, no sorting: the reference the batched scoring must reproduce."""
    model, tok = tiny_lm
    template, words = "Review: {text}\nSentiment:", [" happy", " sad"]
    texts = ["great film", "dull and long", "fine", "an utterly forgettable sequel", "I loved every minute of it",
             "meh"]  # different lengths: scoring sorts them and left-pads, and must put each row back
    word_ids = [tok.encode(w, add_special_tokens=False)[0] for w in words]
    model.eval()
    with torch.no_grad():
        loop = torch.stack([
            torch.log_softmax(model(**tok(template.format(text=t), return_tensors="pt", add_special_tokens=False))
                              .logits[0, -1].float(), -1)[word_ids] for t in texts])
    scores = prompts.zero_shot_scores(model, tok, texts, template, words)
    torch.testing.assert_close(scores, loop, atol=1e-4, rtol=1e-4)
    pred = loop.argmax(-1).tolist()
    assert len(set(pred)) == 2, f"the seeded tiny model should predict both classes here: {pred}"
    accuracy = lambda labels: prompts.zero_shot_accuracy(model, tok, texts, labels, template, words)  # noqa: E731
    assert accuracy(pred) == 1.0
    assert accuracy([1 - p for p in pred]) == 0.0
    assert accuracy([1 - p for p in pred[:2]] + pred[2:]) == pytest.approx(4 / 6)
