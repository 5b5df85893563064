"""finetune_classifier: one measured run, its row in the one schema (history.row), "val accuracy" from the
evaluation at the last step, the method's own callbacks attached once."""

import pytest

import ftlab
from ftlab.history import row
from ftlab.methods import lora


@pytest.fixture(scope="module")
def task(smoke):
    _, tok = ftlab.load_model(smoke.encoder)
    data = ftlab.tokenize_classification(ftlab.load_dataset("rotten_tomatoes", smoke), tok, smoke.max_length)
    return tok, data


@pytest.mark.parametrize("steps,eval_every", [(7, 5), (4, 10)])
def test_row_keys_and_val_accuracy_is_the_last_step(smoke, task, trainer_before_5_3, steps, eval_every):
    tok, data = task
    model, _ = ftlab.load_model(smoke.encoder, seed=0)
    history, r = ftlab.finetune_classifier(model, tok, data, smoke, "exp", lr=1e-3, steps=steps,
                                           eval_every=eval_every, live=False, disk_mb=lambda m: 1.5)
    assert list(r) == ["method", "trainable", "trainable %", "lr", "s/step", "peak MB", "tokens/s", "val loss",
                       "val accuracy", "val f1", "test accuracy", "test f1", "disk MB"]
    assert history.evals[-1]["step"] == steps
    # the Trainer evaluates in batches of 2 * batch_size: the same batches give the same predictions
    val = ftlab.evaluate_classifier(model, data["validation"], tok, batch_size=2 * smoke.batch_size)
    test = ftlab.evaluate_classifier(model, data["test"], tok)
    assert r["val accuracy"] == round(val["accuracy"], 4) == round(history.final("accuracy"), 4)
    assert (r["test accuracy"], r["test f1"]) == (round(test["accuracy"], 4), round(test["f1"], 4))
    assert r == row(history, method="exp", lr=1e-3, test=test, disk_mb=1.5)
    assert r["method"] == "exp" and r["lr"] == 1e-3 and r["disk MB"] == 1.5


@pytest.mark.filterwarnings("ignore:.*LoRA tensor")  # PEFT saving a layer pruned to rank 0
def test_method_callbacks_are_attached_once(smoke, task):
    from peft import get_peft_model

    tok, data = task
    for given in (False, True):  # finetune_classifier adds them; passing them too must not double them
        base, _ = ftlab.load_model(smoke.encoder, seed=0)
        ada = get_peft_model(base, lora.adalora_config(base, total_step=4, init_r=2, target_r=1, tinit=1,
                                                       tfinal=1, deltaT=1))
        calls, update = [], ada.base_model.update_and_allocate
        ada.base_model.update_and_allocate = lambda step: (calls.append(step), update(step))
        ftlab.finetune_classifier(ada, tok, data, smoke, f"ada-{given}", lr=1e-3, steps=4, eval_every=4,
                                  live=False, callbacks=lora.method_callbacks(ada) if given else (), disk_mb=0.0)
        assert calls == [0, 1, 2, 3], "once per optimiser step (PEFT counts steps from 0)"
