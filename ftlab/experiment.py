"""One measured classification run, the same way in every method notebook, so rows compare fairly.

``finetune_classifier`` trains, evaluates on the test split and returns the history plus one table row
with what NOTEBOOKS.md asks for: trainable count and %, time per step, peak memory, metric, size on disk.
"""

from __future__ import annotations

from .evaluation import evaluate_classifier
from .history import row as history_row
from .methods.lora import method_callbacks
from .metrics import classification_metrics
from .models import size_on_disk_mb
from .train import TrainConfig, train


def finetune_classifier(model, tokenizer, tokens, profile, name: str, lr: float, disk_mb=None,
                        callbacks=(), loss_fn=None, optimizers=(None, None), **overrides):
    """Train ``model`` on ``tokens["train"]`` with the profile's budget; return ``(history, row)``.

    ``disk_mb``: a number or a function of the model; default: what ``save_pretrained`` writes.
    ``optimizers``: ``(optimizer, scheduler)`` for ``train``, e.g. per-group learning rates (notebook 02).
    The callbacks the model's method needs in the loop (AdaLoRA's rank update) are added here, once.
    The row: ``history.row`` ("val accuracy" is the evaluation at the last step).
    """
    config = TrainConfig.from_profile(profile, name=name, lr=lr, **overrides)
    given = {type(c).__name__ for c in callbacks}
    callbacks = [*(c for c in method_callbacks(model) if type(c).__name__ not in given), *callbacks]
    history = train(model, tokens["train"], tokens["validation"], config, tokenizer=tokenizer,
                    compute_metrics=classification_metrics, callbacks=callbacks, loss_fn=loss_fn,
                    optimizers=optimizers)
    test = evaluate_classifier(model, tokens["test"], tokenizer)
    if disk_mb is None:
        disk_mb = size_on_disk_mb(model)
    elif callable(disk_mb):
        disk_mb = disk_mb(model)
    return history, history_row(history, method=name, lr=lr, test=test, disk_mb=disk_mb)


def table(rows: list[dict]):
    """Rows as a pandas DataFrame indexed by method, for display in a notebook."""
    import pandas as pd

    df = pd.DataFrame(rows)
    return df.set_index(df.columns[0]) if len(df.columns) else df
