"""The training engine: the Hugging Face Trainer, plus a history, progress, measurements and resume.

It knows no fine-tuning method: a method that needs a hook in the loop (a rank update, a penalty, a
teacher's logits) passes ``callbacks`` or a ``loss_fn``, chosen by the caller one floor up
(``finetune_classifier`` or a notebook). Taught in notebook 01, section 3.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .env import in_notebook, pick_device, runs_dir, seed_everything
from .errors import FtlabError
from .history import History
from .models import count_parameters
from .progress import LiveProgress
from .run_folder import prepare_output, run_fingerprint, weights_digest


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
        self.tokens_before = 0  # tokens a resumed run had already seen: not part of this call's throughput
        self.interrupt_requested = False

    @property
    def kind(self) -> str:
        if self.device == "cuda":
            return "cuda-allocated"
        if self.device == "mps" and hasattr(getattr(torch, "mps", None), "current_allocated_memory"):
            return "mps-allocated"
        return "cpu-rss"

    def memory_mb(self) -> float:
        if self.kind == "cuda-allocated":
            return torch.cuda.max_memory_allocated() / 2**20
        if self.kind == "mps-allocated":  # MPS has no peak counter; the callback keeps the largest step-end value
            return torch.mps.current_allocated_memory() / 2**20
        from .isolation import rss_mb

        return rss_mb()


def _callback(measure: _Measure, live: LiveProgress | None):
    from transformers import TrainerCallback

    class FtlabCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            measure.tokens_before = state.num_input_tokens_seen  # restored from the checkpoint on a resume
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


def _final_evaluation(eval_every: int):
    """Evaluate at the last step when it is not an evaluation step, so ``History.final`` is the end state.

    transformers >= 5.3 does this itself; 5.0-5.2 stopped after the last multiple of ``eval_every``, or
    never evaluated when ``eval_every > steps``: a guard, so the history never depends on the Trainer's rule. Evaluating is one flag on
    ``control``: setting it where the Trainer already did still evaluates once.
    """
    from transformers import TrainerCallback

    class FinalEvaluation(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step >= state.max_steps and state.global_step % eval_every:
                control.should_evaluate = True

    return FinalEvaluation()


def _default_collator(dataset, tokenizer):
    from .preprocess import classification_collator, sft_collator

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


def _one_name_per_tensor(state_dict: dict) -> dict:
    """The state dict with each shared tensor under its first name only: PEFT's prompt models keep the word
    embeddings under two names, and safetensors refuses to save shared memory. Resuming loads non-strictly,
    so the tensor comes back through the name kept."""
    seen, kept = set(), {}
    for name, tensor in state_dict.items():
        if tensor.untyped_storage().data_ptr() not in seen:
            seen.add(tensor.untyped_storage().data_ptr())
            kept[name] = tensor
    return kept


def _trainer_class():
    from transformers import PreTrainedModel, Trainer

    class FtlabTrainer(Trainer):
        def _save(self, output_dir=None, state_dict=None):
            if not isinstance(self.model, PreTrainedModel) and not hasattr(self.model, "peft_config"):
                state_dict = _one_name_per_tensor(self.model.state_dict() if state_dict is None else state_dict)
            return super()._save(output_dir, state_dict)

    return FtlabTrainer


def train(model, train_dataset, eval_dataset=None, config: TrainConfig | None = None, tokenizer=None,
          collator=None, compute_metrics=None, callbacks=(), loss_fn=None, optimizers=(None, None)) -> History:
    """Train ``model`` in place and return its ``History`` (loss per step, evaluations, time, memory).

    Checkpoints every ``config.eval_every`` steps; Ctrl-C (the notebook's stop button) saves one at the
    current step. Calling ``train`` again with the same settings resumes where it stopped; with other
    settings (config, loss function, optimiser, callbacks, collator, data, starting weights) it starts
    afresh and moves the old run folder aside to ``<name>.stale-<time>``.
    """
    from transformers import PrinterCallback, Trainer, TrainingArguments

    config = config or TrainConfig()
    _check_dataset(train_dataset, "training")
    _check_dataset(eval_dataset, "evaluation")
    out = Path(config.output_dir) if config.output_dir else runs_dir() / config.name
    params = count_parameters(model)
    collator = collator or _default_collator(train_dataset, tokenizer)
    settings = {k: v for k, v in asdict(config).items() if k not in ("resume", "live")}
    fingerprint = run_fingerprint(settings, model, params, train_dataset, loss_fn, optimizers, callbacks, collator)
    resuming = prepare_output(out, fingerprint, config.resume)
    device = pick_device()
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
    ours = [_callback(measure, live)] + ([_final_evaluation(config.eval_every)] if eval_dataset is not None else [])
    trainer = _trainer_class()(model=model, args=args, train_dataset=train_dataset, eval_dataset=eval_dataset,
                      data_collator=collator, compute_metrics=compute_metrics, compute_loss_func=loss_fn,
                      callbacks=[*callbacks, *ours], optimizers=optimizers)
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
                                   measure.peak_mb, trainer.state.num_input_tokens_seen, params, measure.kind,
                                   tokens_before=measure.tokens_before)
    if trainer.is_world_process_zero():  # under torchrun, one process writes
        history.save(out / "history.json")
    if measure.interrupt_requested:
        if trainer.is_world_process_zero():  # the same cell run again passes these weights; they may resume
            marker = out / "ftlab_run.json"
            marker.write_text(json.dumps({**json.loads(marker.read_text()), "weights_at_stop": weights_digest(model)},
                                         indent=1, sort_keys=True))
        raise TrainingInterrupted(f"Interrupted at step {trainer.state.global_step}/{config.steps}; checkpoint "
                                  f"saved in {out.name}/. Run the same cell again to resume.")
    if not config.keep_checkpoint and trainer.is_world_process_zero():
        for ckpt in out.glob("checkpoint-*"):
            shutil.rmtree(ckpt, ignore_errors=True)
    if live:
        live.summary(history)
    return history
