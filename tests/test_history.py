"""History: what a run leaves behind, parsed from the Trainer's log, saved and loaded as JSON; and the one
results-table row (history.row) that finetune_classifier and History.summary both use."""

import pytest

import ftlab
from ftlab.history import History, row
from ftlab.models import ParamCount

LOG = [  # the shape of Trainer.state.log_history: a loss entry per step, eval entries, a closing summary
    {"loss": 0.9, "grad_norm": 1.5, "learning_rate": 1e-3, "epoch": 0.1, "step": 1, "num_input_tokens_seen": 100},
    {"loss": 0.8, "grad_norm": 1.2, "learning_rate": 9e-4, "epoch": 0.2, "step": 2, "num_input_tokens_seen": 200},
    {"eval_loss": 0.75, "eval_accuracy": 0.5, "eval_f1": 0.4, "eval_runtime": 0.3,
     "eval_samples_per_second": 210.0, "eval_steps_per_second": 7.0, "epoch": 0.2, "step": 2},
    {"loss": 0.7, "grad_norm": 1.1, "learning_rate": 8e-4, "epoch": 0.3, "step": 3, "num_input_tokens_seen": 300},
    {"eval_loss": 0.65, "eval_accuracy": 0.625, "eval_f1": 0.6, "eval_runtime": 0.3,
     "eval_samples_per_second": 210.0, "eval_steps_per_second": 7.0, "epoch": 0.3, "step": 3},
    {"train_runtime": 2.0, "train_samples_per_second": 12.0, "train_steps_per_second": 1.5, "total_flos": 1.0,
     "train_loss": 0.8, "epoch": 0.3, "step": 3},
]


def parsed(tokens_before=0, memory_kind="cpu-rss"):
    return History.from_trainer("run-a", LOG, step_times=[0.5, 0.25, 0.75], wall=2.5, peak_mb=123.4, tokens=300,
                                params=ParamCount(total=1000, trainable=250), memory_kind=memory_kind,
                                tokens_before=tokens_before)


def test_from_trainer_parses_the_log():
    h = parsed()
    assert h.steps == [1, 2, 3] and h.loss == [0.9, 0.8, 0.7]  # train_loss of the closing entry is not a step
    assert h.evals == [{"step": 2, "loss": 0.75, "accuracy": 0.5, "f1": 0.4},
                       {"step": 3, "loss": 0.65, "accuracy": 0.625, "f1": 0.6}]  # runtimes and rates dropped
    assert h.step_time_s == 0.5 and h.wall_time_s == 2.5 and h.peak_memory_mb == 123.4
    assert h.tokens_seen == 300 and h.tokens_per_s == 300 / 1.5
    assert (h.params_total, h.params_trainable, h.trainable_percent) == (1000, 250, 25.0)
    assert h.eval_series("accuracy") == ([2, 3], [0.5, 0.625])


def test_throughput_after_a_resume_counts_only_the_new_tokens():
    h = parsed(tokens_before=120)  # 120 tokens were seen before the resume; the step times are after it
    assert h.tokens_seen == 300 and h.tokens_per_s == (300 - 120) / 1.5


def test_final_is_the_last_evaluation_and_names_what_exists():
    h = parsed()
    assert h.final("accuracy") == 0.625 and h.final() == 0.65
    with pytest.raises(KeyError, match=r"'rouge'.*\['accuracy', 'f1', 'loss', 'step'\]"):
        h.final("rouge")
    with pytest.raises(KeyError, match="it has \\[\\]"):
        History("no-eval").final("accuracy")


def test_save_and_load_round_trip(tmp_path):
    h = parsed(memory_kind="mps-allocated")
    h.save(tmp_path / "history.json")
    again = History.load(tmp_path / "history.json")
    assert again == h and again.memory_kind == "mps-allocated"


def test_one_row_schema_for_measured_runs():
    h = parsed()
    r = row(h, method="lora r=8", lr=2e-3, test={"accuracy": 0.61234, "f1": 0.59876}, disk_mb=1.23456)
    assert list(r) == ["method", "trainable", "trainable %", "lr", "s/step", "peak MB", "tokens/s",
                       "val loss", "val accuracy", "val f1", "test accuracy", "test f1", "disk MB"]
    assert r == {"method": "lora r=8", "trainable": 250, "trainable %": 25.0, "lr": 2e-3, "s/step": 0.5,
                 "peak MB": 123, "tokens/s": 200, "val loss": 0.65, "val accuracy": 0.625, "val f1": 0.6,
                 "test accuracy": 0.6123, "test f1": 0.5988, "disk MB": 1.23}
    # summary() is the same row as notebook 01 and plot_bars read it: "run", metrics without "val "
    assert h.summary() == {"run": "run-a", "trainable": 250, "trainable %": 25.0, "s/step": 0.5, "peak MB": 123,
                           "tokens/s": 200, "loss": 0.65, "accuracy": 0.625, "f1": 0.6}
    assert list(row(History("bare"))) == ["method", "trainable", "trainable %", "s/step", "peak MB", "tokens/s"]
    assert ftlab.History is History
