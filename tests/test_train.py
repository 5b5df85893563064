import functools
import importlib
import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from transformers import DataCollatorWithPadding, TrainerCallback

import ftlab
from ftlab.methods import distill

train_module = importlib.import_module("ftlab.train")  # ftlab.train is the function


@pytest.fixture(scope="module")
def task(smoke):
    _, tok = ftlab.load_model(smoke.encoder)
    data = ftlab.tokenize_classification(ftlab.load_dataset("rotten_tomatoes", smoke), tok, smoke.max_length)
    return tok, data


def run(smoke, task, name, callbacks=(), model=None, seed=0, loss_fn=None, optimizer=None, collator=None,
        **overrides):
    tok, data = task
    if model is None:
        model, _ = ftlab.load_model(smoke.encoder, seed=seed)
    config = ftlab.TrainConfig.from_profile(smoke, name=name, lr=1e-3, **overrides)
    history = ftlab.train(model, data["train"], data["validation"], config, tokenizer=tok,
                          compute_metrics=ftlab.classification_metrics, callbacks=callbacks, loss_fn=loss_fn,
                          optimizers=(optimizer(model) if optimizer else None, None), collator=collator)
    return model, history


def test_history_records_every_step_and_each_evaluation(smoke, task):
    model, h = run(smoke, task, "basic")
    assert h.steps == list(range(1, smoke.steps + 1)) and len(h.loss) == smoke.steps
    assert [e["step"] for e in h.evals] == [12, 24]
    assert set(h.evals[-1]) >= {"loss", "accuracy", "f1"}
    assert h.params_trainable == 2_057_666 and h.tokens_seen > 0 and h.step_time_s > 0 and h.peak_memory_mb > 0
    start, _ = ftlab.load_model(smoke.encoder, seed=0)
    assert not torch.equal(start.classifier.weight, model.classifier.weight)  # it trained in place
    assert not any((ftlab.env.runs_dir() / "basic").glob("checkpoint-*"))  # finished: no checkpoint left
    again = ftlab.History.load(ftlab.env.runs_dir() / "basic" / "history.json")
    assert again.loss == h.loss and again.evals == h.evals


def test_same_seed_same_numbers(smoke, task):
    _, a = run(smoke, task, "a")
    _, b = run(smoke, task, "b")
    assert a.loss == b.loss and a.evals == b.evals


@pytest.mark.parametrize("steps,eval_every,evals", [(7, 5, [5, 7]), (4, 10, [4]), (6, 3, [3, 6])])
@pytest.mark.parametrize("flow", ["installed", "before 5.3"])
def test_train_evaluates_at_the_last_step_once(smoke, task, request, flow, steps, eval_every, evals):
    if flow == "before 5.3":
        request.getfixturevalue("trainer_before_5_3")
    _, h = run(smoke, task, f"last-{steps}-{eval_every}", steps=steps, eval_every=eval_every)
    assert [e["step"] for e in h.evals] == evals  # 7 and 5: once at 7, not twice; 3 and 6: nothing added
    assert h.final("accuracy") == h.evals[-1]["accuracy"]


class InterruptAt(TrainerCallback):
    """Sends the notebook's stop signal (SIGINT) once, at a given step (None: never). Records the step
    training began at: 0 for a fresh run, the checkpoint's step for a resumed one. The same class on both
    calls: the callbacks are part of the run's settings."""

    def __init__(self, step=None):
        self.at, self.began = step, None

    def on_train_begin(self, args, state, control, **kw):
        self.began = state.global_step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.at:
            self.at = None
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_run_keeps_a_checkpoint_and_resumes_exactly(smoke, task, monkeypatch):
    straight, h_straight = run(smoke, task, "straight")
    model, _ = ftlab.load_model(smoke.encoder, seed=0)
    with pytest.raises(ftlab.TrainingInterrupted, match="Interrupted at step 7/24"):
        run(smoke, task, "stopped", callbacks=[InterruptAt(7)], model=model)
    ckpt = ftlab.env.runs_dir() / "stopped" / "checkpoint-7"
    assert ckpt.exists()
    tokens_at_stop = json.loads((ckpt / "trainer_state.json").read_text())["num_input_tokens_seen"]
    assert tokens_at_stop > 0
    seen = {}

    class Capture(ftlab.History):
        @classmethod
        def from_trainer(cls, name, log_history, step_times, *args, **kw):
            seen["step_times"] = step_times
            return ftlab.History.from_trainer(name, log_history, step_times, *args, **kw)

    monkeypatch.setattr(train_module, "History", Capture)
    # the notebook flow: the same cell again, so the same model object, trained in place up to step 7
    again = InterruptAt()
    resumed, h = run(smoke, task, "stopped", callbacks=[again], model=model)
    assert again.began == 7
    assert h.steps == h_straight.steps
    torch.testing.assert_close(torch.tensor(h.loss), torch.tensor(h_straight.loss))
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)
    # throughput counts the 17 steps this call trained, and only their tokens
    assert len(seen["step_times"]) == 24 - 7
    assert h.tokens_per_s == pytest.approx((h.tokens_seen - tokens_at_stop) / sum(seen["step_times"]))


def _adamw(lr):
    return lambda model: torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)


def _loss(temperature):
    return distill.distillation_loss(distill.DistillConfig(temperature=temperature))


@functools.cache
def _padding():
    return DataCollatorWithPadding(ftlab.load_tokenizer("tiny-minilm"))


def _pad(rows):  # another collator: a function instead of the default DataCollatorWithPadding
    return _padding()(rows)


class Noop(TrainerCallback):
    pass


BASE = dict(loss_fn=_loss(2.0), optimizer=_adamw(1e-3), steps=8, eval_every=4)


@pytest.mark.parametrize("change,key", [
    ({}, None),
    ({"loss_fn": _loss(2.0)}, None),  # a new closure with the same settings: the same run
    ({"weight_decay": 0.1}, "config"),
    ({"loss_fn": _loss(4.0)}, "loss_fn"),  # distillation temperature 2 -> 4
    ({"optimizer": _adamw(2e-3)}, "optimizer"),
    ({"callbacks": [Noop()]}, "callbacks"),
    ({"collator": _pad}, "collator"),
    ({"seed": 1}, "weights"),  # another initial head
], ids=["same", "same-settings-new-closure", "config", "loss_fn", "optimizer", "callbacks", "collator", "weights"])
def test_a_changed_run_does_not_resume_and_keeps_the_old_folder(smoke, task, capsys, change, key):
    runs = ftlab.env.runs_dir()
    with pytest.raises(ftlab.TrainingInterrupted):
        run(smoke, task, "stale", callbacks=[InterruptAt(5)], **BASE)
    capsys.readouterr()
    again = InterruptAt()
    settings = {**BASE, "callbacks": [again], **change}
    settings["callbacks"] = [again, *(c for c in settings["callbacks"] if c is not again)]
    _, h = run(smoke, task, "stale", **settings)
    out = capsys.readouterr().out
    stale = sorted(runs.glob("stale.stale-*"))
    if key is None:
        assert again.began == 5 and "afresh" not in out and not stale
        return
    assert again.began == 0 and h.steps == list(range(1, 9))
    assert re.search(rf"Starting stale afresh \(changed since the checkpoint: .*{key}", out), out
    assert len(stale) == 1 and f"kept beside it in {stale[0].name}/" in out, "named, without a machine path"
    assert (stale[0] / "checkpoint-5").is_dir(), "the earlier run is moved aside, never deleted"


def test_resume_false_moves_the_checkpoint_aside(smoke, task, capsys):
    with pytest.raises(ftlab.TrainingInterrupted):
        run(smoke, task, "again", callbacks=[InterruptAt(3)], steps=6, eval_every=6)
    run(smoke, task, "again", callbacks=[InterruptAt()], steps=6, eval_every=6, resume=False)
    assert "Starting again afresh (resume=False)" in capsys.readouterr().out
    [stale] = ftlab.env.runs_dir().glob("again.stale-*")
    assert (stale / "checkpoint-3").is_dir()


def test_loss_fn_fingerprint_sees_settings_not_addresses():
    from ftlab.run_folder import _describe as describe
    assert describe(_loss(2.0)) == describe(_loss(2.0)) != describe(_loss(4.0))
    assert "temperature=2.0" in describe(_loss(2.0))
    part = functools.partial(distill.kd_loss, temperature=3.0)
    assert describe(part) != describe(functools.partial(distill.kd_loss, temperature=1.0))

    class Scaled:  # an object without its own repr: its attributes count
        def __init__(self, k):
            self.k = k

        def __call__(self, outputs, labels, num_items_in_batch=None):
            return outputs["loss"] * self.k

    assert describe(Scaled(2)) == describe(Scaled(2)) != describe(Scaled(3))
    assert " at 0x" not in describe(Scaled(2)) + describe(_loss(2.0))


def test_device_follows_pick_device(smoke, task, monkeypatch):
    import transformers

    seen = {}

    class Stop(Exception):
        pass

    def arguments(**kw):
        seen.update(kw)
        raise Stop

    monkeypatch.setattr(transformers, "TrainingArguments", arguments)
    for device, use_cpu in [("mps", False), ("cuda", False), ("cpu", True)]:
        monkeypatch.setattr(train_module, "pick_device", lambda: device, raising=False)
        with pytest.raises(Stop):
            run(smoke, task, f"device-{device}", steps=2, eval_every=2)
        assert seen["use_cpu"] is use_cpu, device


def test_memory_is_measured_per_device(monkeypatch):
    monkeypatch.setattr(torch.mps, "current_allocated_memory", lambda: 3 * 2**20, raising=False)
    mps = train_module._Measure("mps")
    assert mps.kind == "mps-allocated" and mps.memory_mb() == 3.0
    monkeypatch.delattr(torch.mps, "current_allocated_memory")
    assert train_module._Measure("mps").kind == "cpu-rss" and train_module._Measure("cpu").memory_mb() > 0
    assert train_module._Measure("cuda").kind == "cuda-allocated"


def test_train_knows_no_fine_tuning_method():
    """train.py is the engine; methods hook in through callbacks and loss_fn, chosen one floor up."""
    text = Path(train_module.__file__).read_text(encoding="utf-8")
    found = re.findall(r"adalora|update_and_allocate|lora|prefix|adapter|freeze|distill", text, re.IGNORECASE)
    assert not found, f"train.py names a method: {sorted(set(found))}"


def test_untokenised_or_empty_data_is_a_clear_error(smoke, task):
    tok, data = task
    model, _ = ftlab.load_model(smoke.encoder)
    raw = ftlab.load_dataset("rotten_tomatoes", smoke)["train"]
    with pytest.raises(ftlab.FtlabError, match="Use ftlab.tokenize_classification or ftlab.tokenize_sft first"):
        ftlab.train(model, raw, config=ftlab.TrainConfig(steps=2), tokenizer=tok)
    with pytest.raises(ftlab.FtlabError, match="training dataset is empty"):
        ftlab.train(model, data["train"].select([]), config=ftlab.TrainConfig(steps=2), tokenizer=tok)


def test_causal_lm_sft_trains_on_answers(smoke):
    model, tok = ftlab.load_model(smoke.decoder, task="causal-lm")
    data = ftlab.tokenize_sft(ftlab.load_dataset("instructions", smoke), tok, smoke.sft_length)
    before = ftlab.evaluate_lm(model, data["validation"], tok)
    h = ftlab.train(model, data["train"], data["validation"],
                    ftlab.TrainConfig.from_profile(smoke, sft=True, name="sft", lr=2e-3), tokenizer=tok)
    after = ftlab.evaluate_lm(model, data["validation"], tok)
    assert after["loss"] < before["loss"] - 0.5
    assert after["perplexity"] == pytest.approx(torch.tensor(after["loss"]).exp().item())
    # the Trainer averages per batch, evaluate_lm per answer token: the same quantity, weighted differently
    assert h.final("loss") == pytest.approx(after["loss"], rel=1e-2)


def test_finetune_classifier_row_and_its_own_optimizer(smoke, task):
    tok, data = task
    model, _ = ftlab.load_model(smoke.encoder, seed=0)
    head = [p for n, p in model.named_parameters() if n.startswith("classifier")]
    body = [p for n, p in model.named_parameters() if not n.startswith("classifier")]
    optimizer = torch.optim.AdamW([{"params": head, "lr": 1e-2}, {"params": body, "lr": 0.0}])
    body_before = [p.detach().clone() for p in body]
    history, row = ftlab.finetune_classifier(model, tok, data, smoke, "row", lr=1e-3, steps=6, eval_every=6,
                                             optimizers=(optimizer, None))
    assert set(row) >= {"method", "trainable", "trainable %", "s/step", "peak MB", "test accuracy", "disk MB"}
    assert row["method"] == "row" and row["trainable"] == history.params_trainable and len(history.loss) == 6
    assert all(torch.equal(a, b) for a, b in zip(body_before, body)), "lr 0 in its group: the body did not move"
