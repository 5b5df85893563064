"""What a training run leaves behind: losses per step, evaluations, time, memory. Plain data, saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class History:
    name: str
    steps: list[int] = field(default_factory=list)  # optimiser step of each training-loss entry
    loss: list[float] = field(default_factory=list)  # training loss at that step
    evals: list[dict] = field(default_factory=list)  # {"step": s, "loss": …, "accuracy": …} per evaluation
    step_time_s: float = 0.0  # median seconds per optimiser step (forward + backward + update)
    wall_time_s: float = 0.0  # whole run, evaluations included
    peak_memory_mb: float = 0.0  # CUDA: max allocated; MPS: most allocated at a step end; CPU: peak resident memory
    memory_kind: str = "cpu-rss"  # "cuda-allocated", "mps-allocated" or "cpu-rss": which of the above
    tokens_seen: int = 0  # non-padding input tokens, a resumed run's earlier ones included
    tokens_per_s: float = 0.0  # over the steps this call trained (after a resume: from the resume on)
    params_total: int = 0
    params_trainable: int = 0

    @classmethod
    def from_trainer(cls, name, log_history, step_times, wall, peak_mb, tokens, params, memory_kind,
                     tokens_before: int = 0) -> "History":
        """``tokens_before``: tokens already seen at a resume; ``step_times`` only cover the steps after it."""
        h = cls(name=name, wall_time_s=wall, peak_memory_mb=peak_mb, tokens_seen=int(tokens),
                memory_kind=memory_kind, params_total=params.total, params_trainable=params.trainable)
        for entry in log_history:
            if "loss" in entry and "eval_loss" not in entry:
                h.steps.append(int(entry["step"]))
                h.loss.append(float(entry["loss"]))
            elif any(k.startswith("eval_") for k in entry):
                h.evals.append({"step": int(entry["step"]),
                                **{k[5:]: float(v) for k, v in entry.items()
                                   if k.startswith("eval_") and not k.endswith(("_runtime", "per_second"))}})
        if step_times:
            h.step_time_s = float(np.median(step_times))
            h.tokens_per_s = max(tokens - tokens_before, 0) / max(sum(step_times), 1e-9)
        return h

    def final(self, metric: str = "loss") -> float:
        """The last evaluation's value of ``metric`` (e.g. "accuracy", "loss").

        ``ftlab.train`` always evaluates at the last step, so this is the state the run ended in.
        """
        if not self.evals or metric not in self.evals[-1]:
            known = sorted(self.evals[-1]) if self.evals else []
            raise KeyError(f"No evaluation of {metric!r} in run {self.name!r}; it has {known}.")
        return self.evals[-1][metric]

    def eval_series(self, metric: str) -> tuple[list[int], list[float]]:
        pts = [(e["step"], e[metric]) for e in self.evals if metric in e]
        return [s for s, _ in pts], [v for _, v in pts]

    @property
    def trainable_percent(self) -> float:
        return 100.0 * self.params_trainable / max(self.params_total, 1)

    def summary(self) -> dict:
        """``row(self)`` as notebook 01 reads it: "run" instead of "method", final metrics without "val "."""
        r = row(self)
        return {"run": r.pop("method"), **{k.removeprefix("val "): v for k, v in r.items()}}

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path) -> "History":
        return cls(**json.loads(Path(path).read_text()))


def row(history: History, method: str | None = None, lr: float | None = None, test: dict | None = None,
        disk_mb: float | None = None) -> dict:
    """The one results-table row of a measured run, so every notebook's tables line up column by column.

    Keys: "method" (default: the run's name), "trainable", "trainable %", "lr" (when given), "s/step",
    "peak MB", "tokens/s", "val <metric>" per metric of the final evaluation, "test <metric>" per entry of
    ``test`` (e.g. ``evaluate_classifier``'s accuracy and f1), "disk MB" (when given).
    """
    r = {"method": method or history.name, "trainable": history.params_trainable,
         "trainable %": round(history.trainable_percent, 3)}
    if lr is not None:
        r["lr"] = lr
    r.update({"s/step": round(history.step_time_s, 3), "peak MB": round(history.peak_memory_mb),
              "tokens/s": round(history.tokens_per_s)})
    if history.evals:
        r.update({f"val {k}": round(v, 4) for k, v in history.evals[-1].items() if k != "step"})
    r.update({f"test {k}": round(v, 4) for k, v in (test or {}).items()})
    if disk_mb is not None:
        r["disk MB"] = round(disk_mb, 2)
    return r
