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
    peak_memory_mb: float = 0.0  # CUDA: max allocated; CPU: peak resident memory of the process
    memory_kind: str = "cpu-rss"
    tokens_seen: int = 0  # non-padding input tokens
    tokens_per_s: float = 0.0
    params_total: int = 0
    params_trainable: int = 0

    @classmethod
    def from_trainer(cls, name, log_history, step_times, wall, peak_mb, tokens, params, device) -> "History":
        h = cls(name=name, wall_time_s=wall, peak_memory_mb=peak_mb, tokens_seen=int(tokens),
                memory_kind="cuda-allocated" if device == "cuda" else "cpu-rss",
                params_total=params.total, params_trainable=params.trainable)
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
            h.tokens_per_s = tokens / max(sum(step_times), 1e-9) if tokens else 0.0
        return h

    def final(self, metric: str = "loss") -> float:
        """The last evaluation's value of ``metric`` (e.g. "accuracy", "loss")."""
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
        """One row for a results table."""
        row = {"run": self.name, "trainable": self.params_trainable, "trainable %": round(self.trainable_percent, 3),
               "s/step": round(self.step_time_s, 3), "peak MB": round(self.peak_memory_mb),
               "tokens/s": round(self.tokens_per_s)}
        if self.evals:
            row.update({k: round(v, 4) for k, v in self.evals[-1].items() if k != "step"})
        return row

    def save(self, path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path) -> "History":
        return cls(**json.loads(Path(path).read_text()))
