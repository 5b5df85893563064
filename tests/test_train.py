import os
import signal

import pytest
import torch
from transformers import TrainerCallback

import ftlab


@pytest.fixture(scope="module")
def task(smoke):
    _, tok = ftlab.load_model(smoke.encoder)
    data = ftlab.tokenize_classification(ftlab.load_dataset("rotten_tomatoes", smoke), tok, smoke.max_length)
    return tok, data


def run(smoke, task, name, callbacks=(), **overrides):
    tok, data = task
    model, _ = ftlab.load_model(smoke.encoder, seed=0)
    config = ftlab.TrainConfig.from_profile(smoke, name=name, lr=1e-3, **overrides)
    history = ftlab.train(model, data["train"], data["validation"], config, tokenizer=tok,
                          compute_metrics=ftlab.classification_metrics, callbacks=callbacks)
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


class InterruptAt(TrainerCallback):
    """Sends the notebook's stop signal (SIGINT) once, at a given step."""

    def __init__(self, step):
        self.at = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step == self.at:
            self.at = None
            os.kill(os.getpid(), signal.SIGINT)


def test_interrupted_run_keeps_a_checkpoint_and_resumes_exactly(smoke, task):
    straight, h_straight = run(smoke, task, "straight")
    with pytest.raises(ftlab.TrainingInterrupted, match="Interrupted at step 7/24"):
        run(smoke, task, "stopped", callbacks=[InterruptAt(7)])
    assert (ftlab.env.runs_dir() / "stopped" / "checkpoint-7").exists()
    resumed, h = run(smoke, task, "stopped")
    assert h.steps == h_straight.steps
    torch.testing.assert_close(torch.tensor(h.loss), torch.tensor(h_straight.loss))
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(a, b)


def test_changed_settings_do_not_resume_a_stale_checkpoint(smoke, task, capsys):
    with pytest.raises(ftlab.TrainingInterrupted):
        run(smoke, task, "stale", callbacks=[InterruptAt(5)])
    _, h = run(smoke, task, "stale", weight_decay=0.1)
    assert "Starting stale afresh" in capsys.readouterr().out
    assert h.steps[0] == 1


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
