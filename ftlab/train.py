"""The training engine: the Hugging Face Trainer, plus a history, progress, measurements and resume.

It knows no fine-tuning method. A method that needs a hook in the loop (AdaLoRA's rank update, EWC's
penalty, a distillation teacher) passes ``callbacks`` or a ``loss_fn``. Taught in notebook 01, section 3.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .env import in_notebook, runs_dir, seed_everything
from .errors import FtlabError
from .history import History
from .models import count_parameters
from .progress import LiveProgress


@dataclass
class TrainConfig:
    """One run's settings. ``TrainConfig.from_profile(P, lr=...)`` sizes it for the profile."""

    name: str = "run"  # also the checkpoint folder under runs/
    steps: int = 100  # optimiser steps
    batch_size: int = 16
    lr: float = 5e-5  # full fine-tuning; parameter-efficient methods want 20-600x more
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06  # share of steps with a linearly rising learning rate
    eval_every: int = 50  # steps between evaluations and checkpoints
    seed: int = 0
    bf16: bool = False
    resume: bool = True  # continue from the last checkpoint of an interrupted run with the same settings
    keep_checkpoint: bool = False  # keep the final checkpoint (model + optimiser) after a finished run
    live: bool | None = None  # live loss plot + progress bar; None = only inside a notebook
    output_dir: str | None = None  # default: runs/<name> (or $FTLAB_RUNS/<name>)
    extra: dict = field(default_factory=dict)  # more TrainingArguments, e.g. {"gradient_checkpointing": True}

    @classmethod
    def from_profile(cls, profile, sft: bool = False, **overrides) -> "TrainConfig":
        base = dict(steps=profile.sft_steps if sft else profile.steps,
                    batch_size=profile.sft_batch_size if sft else profile.batch_size,
                    eval_every=profile.eval_every, seed=profile.seed, bf16=profile.bf16)
        return cls(**{**base, **overrides})


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after an interrupted run saved its checkpoint; running the same call again resumes."""


class _Measure:
    """Step times, tokens and peak memory, kept by a Trainer callback (see ``_callback``)."""

    def __init__(self, device: str):
        self.device, self.step_times, self.peak_mb, self._t = device, [], 0.0, None
        self.interrupt_requested = False

    def memory_mb(self) -> float:
        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        import psutil

        return psutil.Process().memory_info().rss / 2**20


def _callback(measure: _Measure, live: LiveProgress | None):
    from transformers import TrainerCallback

    class FtlabCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            if measure.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            if live:
                live.start(state.max_steps, state.global_step)

        def on_step_begin(self, args, state, control, **kw):
            measure._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            measure.step_times.append(time.perf_counter() - measure._t)
            measure.peak_mb = max(measure.peak_mb, measure.memory_mb())
            if measure.interrupt_requested:  # stop at a step boundary, with a checkpoint
                control.should_save = True
                control.should_training_stop = True
            if live:
                live.step(state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):
            if live and logs:
                live.log(state.global_step, logs)

        def on_train_end(self, args, state, control, **kw):
            if live:
                live.close()

    return FtlabCallback()


def _method_callbacks(model) -> list:
    """Hooks a PEFT method needs inside the loop, added here so no notebook can forget them.

    AdaLoRA reallocates its rank budget in ``update_and_allocate``, which must run after every optimiser
    step while the gradients still exist; without the call it silently trains as plain LoRA.
    """
    from transformers import TrainerCallback

    configs = getattr(model, "peft_config", None) or {}
    if not any(str(getattr(c, "peft_type", "")).endswith("ADALORA") for c in configs.values()):
        return []

    class AdaLoraCallback(TrainerCallback):
        def on_optimizer_step(self, args, state, control, **kw):  # before zero_grad
            model.base_model.update_and_allocate(state.global_step)

    return [AdaLoraCallback()]


def _default_collator(dataset, tokenizer):
    from .data import classification_collator, sft_collator

    if tokenizer is None:
        return None
    return sft_collator(tokenizer) if isinstance(dataset[0]["labels"], list) else classification_collator(tokenizer)


def _check_dataset(ds, what: str) -> None:
    if ds is None:
        return
    if len(ds) == 0:
        raise FtlabError(f"The {what} dataset is empty: nothing to train or evaluate on.")
    if "input_ids" not in ds.column_names or "labels" not in ds.column_names:
        raise FtlabError(f"The {what} dataset has columns {ds.column_names}; training needs tokenised rows with "
                         "'input_ids' and 'labels'. Use ftlab.tokenize_classification or ftlab.tokenize_sft first.")


def _prepare_output(out: Path, fingerprint: dict, resume: bool) -> bool:
    """True when an interrupted run with the same settings left a checkpoint to resume from."""
    marker = out / "ftlab_run.json"
    has_checkpoint = any(out.glob("checkpoint-*"))
    same = marker.exists() and json.loads(marker.read_text()) == fingerprint
    if has_checkpoint and not (resume and same):
        print(f"Starting {out.name} afresh: " + ("resume=False." if not resume else
              "its settings, model or data changed since the checkpoint was written."))
        shutil.rmtree(out, ignore_errors=True)  # under torchrun every process gets here
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
    return has_checkpoint and resume and same


def train(model, train_dataset, eval_dataset=None, config: TrainConfig | None = None, tokenizer=None,
          collator=None, compute_metrics=None, callbacks=(), loss_fn=None, optimizers=(None, None)) -> History:
    """Train ``model`` in place and return its ``History`` (loss per step, evaluations, time, memory).

    Checkpoints every ``config.eval_every`` steps; Ctrl-C (the notebook's stop button) saves one at the
    current step. Calling ``train`` again with the same settings resumes where it stopped.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    config = config or TrainConfig()
    _check_dataset(train_dataset, "training")
    _check_dataset(eval_dataset, "evaluation")
    out = Path(config.output_dir) if config.output_dir else runs_dir() / config.name
    params = count_parameters(model)
    fingerprint = {"config": {k: v for k, v in asdict(config).items() if k not in ("resume", "live")},
                   "model": type(model).__name__, "params": [params.total, params.trainable],
                   "train_data": getattr(train_dataset, "_fingerprint", len(train_dataset))}
    resuming = _prepare_output(out, fingerprint, config.resume)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Token-level losses (causal LM) are averaged over the tokens of all processes. A per-example loss
    # must not be: the Trainer would scale it by the process count (measured: 2x loss under torchrun).
    token_level = isinstance(train_dataset[0]["labels"], list)
    args = TrainingArguments(
        output_dir=str(out), max_steps=config.steps, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2, learning_rate=config.lr,
        weight_decay=config.weight_decay, warmup_steps=int(config.warmup_ratio * config.steps),
        lr_scheduler_type="linear", logging_steps=1, logging_first_step=True,
        eval_strategy="steps" if eval_dataset is not None else "no", eval_steps=config.eval_every,
        save_strategy="steps", save_steps=config.eval_every, save_total_limit=1,
        seed=config.seed, data_seed=config.seed, report_to="none", disable_tqdm=True,
        use_cpu=device == "cpu", bf16=config.bf16, dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding", remove_unused_columns=False, label_names=["labels"],
        average_tokens_across_devices=token_level, **config.extra)
    live_on = in_notebook() if config.live is None else config.live
    measure = _Measure(device)
    live = LiveProgress(config.name, eval_dataset is not None) if live_on else None
    seed_everything(config.seed)
    trainer = Trainer(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      data_collator=collator or _default_collator(train_dataset, tokenizer),
                      compute_metrics=compute_metrics, compute_loss_func=loss_fn,
                      callbacks=[*_method_callbacks(model), *callbacks, _callback(measure, live)], optimizers=optimizers)
    trainer.remove_callback(PrinterCallback)  # it prints raw log dicts; LiveProgress reports instead

    def request_stop(signum, frame):
        measure.interrupt_requested = True

    previous = signal.signal(signal.SIGINT, request_stop)
    start = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=True if resuming else None)
    finally:
        signal.signal(signal.SIGINT, previous)
    wall = time.perf_counter() - start
    history = History.from_trainer(config.name, trainer.state.log_history, measure.step_times, wall,
                                   measure.peak_mb, trainer.state.num_input_tokens_seen, params, device)
    if trainer.is_world_process_zero():  # under torchrun, one process writes
        history.save(out / "history.json")
    if measure.interrupt_requested:
        raise TrainingInterrupted(f"Interrupted at step {trainer.state.global_step}/{config.steps}; checkpoint "
                                  f"saved in {out.name}/. Run the same cell again to resume.")
    if not config.keep_checkpoint and trainer.is_world_process_zero():
        for ckpt in out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    if live:
        live.summary(history)
    return history
