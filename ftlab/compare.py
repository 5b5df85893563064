"""``ftlab compare``: every method on one task and budget, tuned and seeded the same way. Taught in notebook 10.

The protocol (each point is what makes the table fair):
1. Same task (Rotten Tomatoes), data, step budget, batch, sequence length for every method, and one head
   policy: mean pooling over the real tokens + a trained linear head (``compare_methods.PooledClassifier``).
2. Each method's learning rate is chosen on the **validation** split from its grid (3 values, recorded);
   when the best rate sits at an edge of the grid, the grid grows one step past that edge (at most
   ``MAX_EXTEND`` times), so no method is judged at a rate its grid cut short. The test split is touched
   only by the final runs at the chosen rate.
3. ``seeds`` (≥ 3) final runs at the chosen rate; the table gives the mean and a 95 % t-interval. Two
   methods differ only when their intervals do not overlap.
4. A run that predicts one class for ≥ 95 % of the test rows is flagged as collapsed, shown as such, and
   left out of the mean (never averaged silently).
5. Baselines in every table: majority class, frozen features + logistic regression (C chosen on
   validation), zero-shot SmolLM2 with its chat template.
6. Every run trains in its own process (fork, ``isolation.py``), so its peak memory is its own: the report gives the peak
   resident memory of that process and its growth over the process at start (libraries loaded).

7. Efficiency: the FLOPs of one training step are counted by PyTorch's ``FlopCounterMode`` (forward and
   backward as autograd runs them), so FLOP/s = FLOPs per step / s per step, with s per step the fastest of
   the method's runs (each does the same work per step; other jobs on the machine only add time); for full fine-tuning it is
   also divided by the FLOP/s of a large matmul in the same process, the machine's practical ceiling. Both
   are measured in ``flops.py``.

Every run is one JSON file under ``results/compare/<profile>/runs/``; a finished run is never redone or
overwritten, so an interrupted comparison resumes where it stopped.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import re
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path

import numpy as np

from .compare_methods import METHODS, Built
from .errors import FtlabError
from .flops import _measure_flops, matmul_gflops
from .isolation import isolated, peak_rss_mb, rss_mb
from .results import results_dir

COLLAPSE = 0.95  # share of test rows in one class above which a run counts as collapsed
MAX_EXTEND = 2  # grid steps added past an edge that keeps winning


@dataclass
class Protocol:
    profile: str
    steps: int
    batch_size: int
    max_length: int
    seeds: int = 3
    validation_rows: int = 200  # grid search rows (validation split); the test split is whole
    task: str = "rotten_tomatoes"
    model: str = ""  # the encoder every method starts from ("" = the profile's)

    def same_runs(self, stored: dict) -> bool:
        """Whether a stored run was made under this protocol (the seed count may differ)."""
        mine = {k: v for k, v in asdict(self).items() if k != "seeds"}
        theirs = {**mine, "model": "", **{k: v for k, v in stored.items() if k != "seeds"}}
        return theirs == mine


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def interval(values) -> tuple[float, float]:
    """Mean and the half-width of a 95 % t-interval (0 for one value)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), 0.0
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


def collapsed(predictions) -> bool:
    """True when one class takes at least ``COLLAPSE`` of the predictions."""
    counts = np.bincount(np.asarray(predictions))
    return bool(counts.max() >= COLLAPSE * counts.sum())


def choose_lr(grid_runs: list[dict]) -> float:
    """The grid's best validation accuracy; a tie goes to the smaller rate (the safer one)."""
    return min(grid_runs, key=lambda r: (-r["val_accuracy"], r["lr"]))["lr"]


def next_rate(grid_runs: list[dict], base_grid) -> float | None:
    """The rate to add when the best sits at an edge of the grid (one grid step past it), else None."""
    by_rate = sorted((r["lr"], r["val_accuracy"]) for r in grid_runs)
    rates = [lr for lr, _ in by_rate]
    best = choose_lr(grid_runs)
    if len(rates) - len(base_grid) >= MAX_EXTEND or rates[0] < best < rates[-1]:
        return None
    inner = by_rate[1] if best == rates[0] else by_rate[-2]
    if dict(by_rate)[best] <= inner[1]:  # a tie with its neighbour: the edge is not what wins
        return None
    ratio = sorted(base_grid)[1] / sorted(base_grid)[0]
    return float(f"{best * ratio:.2g}") if best == rates[-1] else float(f"{best / ratio:.2g}")


# ---------------------------------------------------------------- one run (compare() runs it through isolation.isolated)


def _train_and_measure(method: str, lr: float, seed: int, phase: str, ctx) -> dict:
    """Build, train and evaluate one run; the numbers that describe it."""
    import torch

    from .evaluation import predict
    from .metrics import accuracy, f1
    from .models import count_parameters, size_on_disk_mb
    from .train import TrainConfig, train

    start_rss = rss_mb()
    built: Built = ctx.build(method, seed)
    config = TrainConfig(name=f"compare-{ctx.protocol.profile}-{slug(method)}-{lr:g}-{seed}-{phase}", steps=ctx.protocol.steps,
                         batch_size=ctx.protocol.batch_size, lr=lr, eval_every=ctx.protocol.steps, seed=seed,
                         live=False, output_dir=None)
    history = train(built.model, ctx.tokens["train"], ctx.tokens["validation"], config, tokenizer=ctx.tokenizer,
                    callbacks=built.callbacks, loss_fn=built.loss_fn, compute_metrics=ctx.metrics)
    params = count_parameters(built.model)
    row = {"method": method, "lr": lr, "seed": seed, "phase": phase, "note": built.note,
           "val_accuracy": history.final("accuracy"), "val_f1": history.final("f1"),
           "trainable": params.trainable, "total": params.total, "trainable_percent": params.percent,
           "s_per_step": history.step_time_s, "tokens_per_s": history.tokens_per_s, "wall_s": history.wall_time_s}
    if phase == "final":
        pred, labels = predict(built.model, ctx.tokens["test"], ctx.tokenizer)
        row.update(test_accuracy=accuracy(pred, labels), test_f1=f1(pred, labels), collapsed=collapsed(pred),
                   majority_share=float(np.bincount(pred).max() / len(pred)),
                   disk_mb=size_on_disk_mb(getattr(built.model, "student", built.model)))  # not the teacher
    if torch.cuda.is_available():
        row.update(peak_mb=torch.cuda.max_memory_allocated() / 2**20, memory="CUDA max allocated")
    else:
        row.update(peak_mb=peak_rss_mb(), peak_growth_mb=peak_rss_mb() - start_rss,
                   memory="peak resident memory of the run's own process (and its growth over the start)")
    return row


# ---------------------------------------------------------------- the comparison


class Context:
    """What every run shares: data, tokenizer, protocol, and the rates already chosen (for the student)."""

    def __init__(self, profile, protocol: Protocol):
        from .data import load_dataset
        from .metrics import classification_metrics
        from .models import load_tokenizer
        from .preprocess import tokenize_classification

        self.profile, self.protocol, self.metrics = profile, protocol, classification_metrics
        self.data = load_dataset(protocol.task, profile)
        self.tokenizer = load_tokenizer(profile.encoder)
        self.tokens = tokenize_classification(self.data, self.tokenizer, protocol.max_length)
        n_val = min(protocol.validation_rows, len(self.tokens["validation"]))
        self.tokens["validation"] = self.tokens["validation"].select(range(n_val))

    def build(self, method: str, seed: int) -> Built:
        build = METHODS[method].build
        if "ctx" in inspect.signature(build).parameters:  # a method that needs another's result
            return build(self.profile, seed, self.protocol.steps, ctx=self)
        return build(self.profile, seed, self.protocol.steps)

    def chosen_lr(self, method: str) -> float | None:
        """The rate ``method``'s finished grid chose, or None while its grid is unfinished."""
        grid = stored_grid(self.protocol, method)
        return choose_lr(grid) if grid_done(grid, method) else None


def run_dir(profile_name: str) -> Path:
    return results_dir() / "compare" / profile_name


def _run_file(profile_name: str, method: str, lr: float, seed: int, phase: str) -> Path:
    return run_dir(profile_name) / "runs" / slug(method) / f"{phase}-lr{lr:g}-seed{seed}.json"


def _load(path: Path, protocol: Protocol) -> dict:
    row = json.loads(path.read_text())
    if "protocol" in row and not protocol.same_runs(row["protocol"]):
        raise FtlabError(f"{path} was made under another protocol ({row['protocol']}); this comparison is "
                         f"{asdict(protocol)}. Point FTLAB_RESULTS at another folder, or move the old runs away.")
    return row


def stored_grid(protocol: Protocol, method: str) -> list[dict]:
    folder = run_dir(protocol.profile) / "runs" / slug(method)
    return [_load(p, protocol) for p in sorted(folder.glob("grid-*.json"))]


def rate_to_run(grid: list[dict], method: str) -> float | None:
    """The grid's next rate: a base rate not run yet, then an edge extension; None when the grid is done."""
    have = {r["lr"] for r in grid}
    missing = [lr for lr in METHODS[method].lrs if lr not in have]
    return missing[0] if missing else next_rate(grid, METHODS[method].lrs)


def grid_done(grid: list[dict], method: str) -> bool:
    return rate_to_run(grid, method) is None


def _record(path: Path, row: dict, provenance: dict) -> dict:
    row = {**row, **provenance}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(row, indent=1, default=float))
    os.replace(tmp, path)  # atomic: a run file is either whole or absent
    return row


def provenance(profile) -> dict:
    import platform
    from importlib import metadata

    from .env import pick_device

    return {"profile": profile.name, "device": pick_device(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "date": str(date.today()), "versions": {p: metadata.version(p) for p in ("torch", "transformers", "peft")}}


def compare(profile, methods=None, seeds: int = 3, steps: int | None = None, quick: bool = False,
            model: str | None = None, task: str = "rotten_tomatoes", report_only: bool = False,
            progress=print) -> dict:
    """Run the protocol (see the module docstring) and return ``{method: summary}``; resumable.

    ``quick``: one seed, and each method's rate taken from the stored grid where it exists.
    ``report_only``: train nothing; summarise the stored runs (an error names the first one missing).
    """
    from tqdm.auto import tqdm

    names = list(methods or METHODS)
    unknown = [m for m in names if m not in METHODS]
    if unknown:
        raise FtlabError(f"Unknown method(s) {unknown}; choose from: {', '.join(METHODS)}.")
    protocol = Protocol(profile.name, steps or profile.steps, profile.batch_size, profile.max_length,
                        seeds=1 if quick else seeds, task=task, model=model or "")
    if protocol.seeds < 1:
        raise FtlabError("seeds must be at least 1 (3 or more to give intervals).")
    if protocol.model:
        profile = replace(profile, encoder=protocol.model)
    ctx, prov = Context(profile, protocol), provenance(profile)
    stamp = {**prov, "protocol": asdict(protocol)}
    summaries = {}
    for name in tqdm(names, desc="methods"):
        grid = stored_grid(protocol, name)
        while not quick and (lr := rate_to_run(grid, name)) is not None:
            if report_only:
                raise FtlabError(f"{name}: the grid run at lr {lr:g} is not stored; run without --report-only.")
            if lr not in METHODS[name].lrs:
                progress(f"{name}: the best rate sits at the edge of the grid; adding {lr:g}")
            grid.append(_record(_run_file(profile.name, name, lr, 0, "grid"),
                                isolated(_train_and_measure, name, lr, 0, "grid", ctx, what=f"{name} at lr {lr:g}"),
                                stamp))
        if not grid:
            raise FtlabError(f"--quick needs the stored learning-rate grid of {name!r}; run without --quick once.")
        lr = choose_lr(grid)
        finals = []
        for seed in range(protocol.seeds):
            path = _run_file(profile.name, name, lr, seed, "final")
            if report_only and not path.exists():
                raise FtlabError(f"{name}: the final run at lr {lr:g}, seed {seed} is not stored; run without --report-only.")
            finals.append(_load(path, protocol) if path.exists() else
                          _record(path, isolated(_train_and_measure, name, lr, seed, "final", ctx,
                                                 what=f"{name} at lr {lr:g}, seed {seed}"), stamp))
        flops_path = run_dir(profile.name) / "runs" / slug(name) / "flops.json"
        flops = (_load(flops_path, protocol) if flops_path.exists() else
                 _record(flops_path, isolated(_measure_flops, name, ctx, what=f"counting {name}'s FLOPs"), stamp))
        summaries[name] = summarize(name, grid, finals, flops["flops_per_step"])
        s_ = summaries[name]
        progress(f"{name}: lr {lr:g} · test accuracy {s_['test accuracy']} ± {s_['± 95 %']} · "
                 f"{s_['GFLOP/s']} GFLOP/s")
    ceiling_path = run_dir(profile.name) / "ceiling.json"
    if "full fine-tuning" in summaries and (ceiling_path.exists() or not report_only):
        if report_only:  # the ceiling measured beside the runs
            ceiling = json.loads(ceiling_path.read_text())["matmul GFLOP/s"]
        else:
            ceiling = matmul_gflops()
            _record(ceiling_path, {"matmul GFLOP/s": ceiling, "shape": "2048 x 2048 x 2048, fp32"}, prov)
        full = summaries["full fine-tuning"]
        full["matmul GFLOP/s"] = round(ceiling, 1)
        full["share of matmul FLOP/s"] = round(full["GFLOP/s"] / ceiling, 3)
        progress(f"full fine-tuning runs at {full['GFLOP/s']} GFLOP/s; a {2048}x{2048} matmul here: {ceiling:.1f} "
                 f"GFLOP/s -> {full['share of matmul FLOP/s']:.0%} of it")
    return summaries


def summarize(name: str, grid: list[dict], finals: list[dict], flops_per_step: float | None = None) -> dict:
    ok = [r for r in finals if not r["collapsed"]]
    acc, acc_half = interval([r["test_accuracy"] for r in ok]) if ok else (float("nan"), float("nan"))
    f1, f1_half = interval([r["test_f1"] for r in ok]) if ok else (float("nan"), float("nan"))
    last = finals[-1]
    # Every run of a method does the same work per step; other jobs on the machine only add time, so the
    # fastest of its runs is the best estimate of its own speed.
    fastest = min(r["s_per_step"] for r in grid + finals)
    return {"method": name, "chinese": METHODS[name].chinese, "lr": finals[0]["lr"],
            "lr grid": {f"{r['lr']:g}": round(r["val_accuracy"], 4) for r in grid},
            "seeds": len(finals), "collapsed runs": len(finals) - len(ok),
            "test accuracy": round(acc, 4), "± 95 %": round(acc_half, 4), "test f1": round(f1, 4), "f1 ±": round(f1_half, 4),
            "trainable": last["trainable"], "trainable %": round(last["trainable_percent"], 3),
            "s/step": round(fastest, 3), "tokens/s": round(max(r["tokens_per_s"] for r in grid + finals)),
            "peak MB": round(max(r["peak_mb"] for r in finals)), "disk MB": round(last["disk_mb"], 2),
            "peak growth MB": round(max(r.get("peak_growth_mb", r["peak_mb"]) for r in finals)),
            "GFLOP/step": None if flops_per_step is None else round(flops_per_step / 1e9, 2),
            "GFLOP/s": None if flops_per_step is None else round(
                flops_per_step / 1e9 / fastest, 1),
            "note": last.get("note", "")}
