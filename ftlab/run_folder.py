"""A run's folder under runs/: what identifies a run (its fingerprint), and resuming or setting aside.

A checkpoint is resumed only by a run that computes the same thing: same settings, loss function and
its parameters, optimiser groups, callbacks, collator, data and starting weights. A folder written by a
different run is renamed ``<name>.stale-<time>``, never deleted. Used by ``train.py``.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import re
from datetime import datetime
from pathlib import Path

import torch


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _describe(obj, depth: int = 0) -> str:
    """A loss function as stable text: its name plus the settings it carries (partial arguments, closure
    values, attributes), so e.g. a changed temperature is a changed run. Memory addresses are dropped:
    they change every session and would make every run look new."""
    if depth > 3:
        return type(obj).__qualname__
    if isinstance(obj, functools.partial):
        parts = [_describe(obj.func, depth + 1), *(_describe(a, depth + 1) for a in obj.args),
                 *(f"{k}={_describe(v, depth + 1)}" for k, v in sorted(obj.keywords.items()))]
        return f"partial({', '.join(parts)})"
    if inspect.ismethod(obj):
        return f"{_describe(obj.__self__, depth + 1)}.{obj.__name__}"
    if inspect.isfunction(obj):
        values = list(obj.__defaults__ or ()) + sorted((obj.__kwdefaults__ or {}).items())
        for cell in obj.__closure__ or ():
            try:
                values.append(cell.cell_contents)
            except ValueError:  # a cell not assigned yet
                values.append(None)
        inner = ", ".join(_describe(v, depth + 1) for v in values)
        return f"{obj.__module__}.{obj.__qualname__}({inner})"
    if type(obj).__repr__ is object.__repr__ and hasattr(obj, "__dict__"):  # no repr of its own: its attributes
        attrs = ", ".join(f"{k}={_describe(v, depth + 1)}" for k, v in sorted(vars(obj).items()))
        return f"{type(obj).__module__}.{type(obj).__qualname__}({attrs})"
    return _ADDRESS.sub("", repr(obj))


def _short(text: str) -> str:
    """Long descriptions (a tensor, a teacher model) as their start plus a hash, to keep the marker readable."""
    return text if len(text) <= 300 else f"{text[:120]}… sha256:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _name(obj) -> str | None:
    if obj is None:
        return None
    target = obj.func if isinstance(obj, functools.partial) else obj
    if inspect.isfunction(target) or inspect.ismethod(target) or isinstance(target, type):
        return f"{target.__module__}.{target.__qualname__}"
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _optimizer(optimizers) -> dict | None:
    """Type and hyperparameters of each parameter group (not the tensors), and the scheduler's type."""
    optimizer, scheduler = optimizers
    if optimizer is None:
        return None if scheduler is None else {"scheduler": _name(scheduler)}
    groups = []
    for g in optimizer.param_groups:
        # a scheduler moves "lr" and stores the starting value as "initial_lr": fingerprint the start
        settings = {k: repr(v) for k, v in sorted(g.items()) if k not in ("params", "lr", "initial_lr")}
        groups.append({"lr": g.get("initial_lr", g.get("lr")), "numel": sum(p.numel() for p in g["params"]),
                       **settings})
    return {"type": _name(optimizer), "groups": groups, "scheduler": _name(scheduler)}


def weights_digest(model) -> str:
    """A cheap digest of the trainable weights: names, shapes and a strided sample of each tensor's bytes.

    Exact bytes rather than rounded sums, so thread count or reduction order never make equal weights
    differ; a new seed or trained weights change every element, so a sample sees them.
    """
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        if p.requires_grad and not p.is_meta:
            flat = p.detach().reshape(-1)
            sample = flat[::max(1, flat.numel() // 4096)].contiguous().cpu()
            h.update(f"{name}{tuple(p.shape)}{p.dtype}".encode())
            h.update(sample.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _differences(old: dict, new: dict) -> list[str]:
    """Fingerprint keys that differ. The weights may match the run's start or where it was interrupted: after
    Ctrl-C a notebook re-runs the cell with the model trained in place, and the checkpoint replaces them."""
    changed = [k for k in sorted(set(old) | set(new)) if k not in ("weights", "weights_at_stop")
               and old.get(k) != new.get(k)]
    if new.get("weights") not in (old.get("weights"), old.get("weights_at_stop")):
        changed.append("weights")
    return changed


def _move_aside(out: Path) -> Path | None:
    """Rename the run folder to ``<name>.stale-<time>`` (never delete work); None if another process did."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    stale = out.with_name(f"{out.name}.stale-{stamp}")
    n = 1
    while stale.exists():
        n += 1
        stale = out.with_name(f"{out.name}.stale-{stamp}-{n}")
    try:
        out.rename(stale)
    except FileNotFoundError:  # under torchrun every process gets here; the first one moved it
        return None
    return stale


def prepare_output(out: Path, fingerprint: dict, resume: bool) -> bool:
    """True when an interrupted run with the same settings left a checkpoint to resume from.

    A checkpoint that cannot be resumed (other settings, or ``resume=False``) is moved aside, not deleted.
    """
    marker = out / "ftlab_run.json"
    has_checkpoint = any(out.glob("checkpoint-*"))
    old = json.loads(marker.read_text()) if marker.exists() else {}
    changed = _differences(old, fingerprint) if old else ["no settings recorded"]
    if has_checkpoint and resume and not changed:
        return True  # keep the marker: it names the weights the run started from
    if has_checkpoint:
        why = "resume=False" if not resume else "changed since the checkpoint: " + ", ".join(changed)
        stale = _move_aside(out)
        if stale is not None:
            print(f"Starting {out.name} afresh ({why}); the earlier run is kept beside it in {stale.name}/")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
    return False


def run_fingerprint(settings: dict, model, params, train_dataset, loss_fn, optimizers, callbacks, collator) -> dict:
    """Everything that changes what the run computes, as plain JSON (lists, not tuples)."""
    loss = None if loss_fn is None else {"name": _name(loss_fn), "settings": _short(_describe(loss_fn))}
    fingerprint = {"config": settings, "model": type(model).__name__, "params": [params.total, params.trainable],
                   "train_data": getattr(train_dataset, "_fingerprint", len(train_dataset)),
                   "loss_fn": loss, "optimizer": _optimizer(optimizers), "callbacks": [_name(c) for c in callbacks],
                   "collator": _name(collator), "weights": weights_digest(model)}
    return json.loads(json.dumps(fingerprint, default=repr))
