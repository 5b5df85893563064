"""Figures drawn from histories and result tables. Never trains, never loads a model, writes no files.

Each function returns a matplotlib ``Figure`` built without pyplot, so a notebook shows it exactly once.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure as _MplFigure


class Figure(_MplFigure):
    """A Figure that shows itself as PNG in Jupyter without pyplot's global state.

    (A plain pyplot-free Figure is shown as text, "<Figure size …>", unless pyplot was imported.)
    """

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=100)
        return buf.getvalue()


def _smooth(values, window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    kernel = np.ones(window) / window
    head = np.array([v[: i + 1].mean() for i in range(window - 1)])  # no dip at the start
    return np.concatenate([head, np.convolve(v, kernel, mode="valid")])


def plot_history(*histories, metric: str | None = "accuracy", smooth: int = 10) -> Figure:
    """Training loss (smoothed) and validation loss; a second panel with ``metric`` when evaluated."""
    has_metric = metric and any(metric in e for h in histories for e in h.evals)
    fig = Figure(figsize=(11 if has_metric else 6, 3.6), layout="constrained")
    axes = fig.subplots(1, 2 if has_metric else 1, squeeze=False)[0]
    for i, h in enumerate(histories):
        color = f"C{i}"
        axes[0].plot(h.steps, _smooth(h.loss, smooth), color=color, label=f"{h.name} train")
        s, v = h.eval_series("loss")
        if s:
            axes[0].plot(s, v, "o--", color=color, label=f"{h.name} validation")
        if has_metric:
            s, v = h.eval_series(metric)
            axes[1].plot(s, v, "o-", color=color, label=h.name)
    axes[0].set(xlabel="step", ylabel="loss", title="loss")
    axes[0].legend(fontsize=8)
    if has_metric:
        axes[1].set(xlabel="step", ylabel=metric, title=f"validation {metric}")
        axes[1].legend(fontsize=8)
    return fig


def plot_bars(rows: list[dict], metric: str, label: str = "run", reference: float | None = None,
              reference_label: str = "baseline", err: str | None = None) -> Figure:
    """One bar per row of a results table; ``err`` names a column of half-widths drawn as error bars (e.g.
    "± 95 %"); an optional dashed reference line (e.g. a majority baseline)."""
    fig = Figure(figsize=(max(4, 1.1 * len(rows) + 2), 3.4), layout="constrained")
    ax = fig.subplots()
    names, values = [str(r[label]) for r in rows], [r[metric] for r in rows]
    yerr = [r[err] for r in rows] if err else None
    bars = ax.bar(names, values, yerr=yerr, capsize=4 if err else 0, color=[f"C{i}" for i in range(len(rows))])
    ax.bar_label(bars, fmt="%.3g", fontsize=8)
    if reference is not None:
        ax.axhline(reference, ls="--", color="grey", label=reference_label)
        ax.legend(fontsize=8)
    ax.set(ylabel=metric, title=metric)
    ax.tick_params(axis="x", labelrotation=20)
    return fig


def plot_sweep(xs, ys, xlabel: str, ylabel: str, logx: bool = False, labels=None, title: str = "") -> Figure:
    """A metric against a setting (learning rate, rank, trainable %), one point per run."""
    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(xs, ys, "o-")
    for x, y, text in zip(xs, ys, labels or []):
        ax.annotate(str(text), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    return fig


def plot_live(name: str, steps, losses, eval_steps, eval_losses, max_steps: int) -> Figure:
    """The small figure the live progress redraws during training."""
    fig = Figure(figsize=(6, 3), layout="constrained")
    ax = fig.subplots()
    ax.plot(steps, _smooth(losses, 10), label="train (smoothed)")
    if eval_steps:
        ax.plot(eval_steps, eval_losses, "o--", label="validation")
    ax.set(xlim=(0, max_steps), xlabel="step", ylabel="loss", title=f"{name}: live loss")
    ax.legend(fontsize=8)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both axes (lower x, higher y)."""
    return [i for i, (x, y) in enumerate(points)
            if not any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for x2, y2 in points)]


def plot_tradeoff(rows: list[dict], x: str, y: str = "test accuracy", err: str = "± 95 %", logx: bool = False,
                  baselines: dict | None = None, title: str = "") -> Figure:
    """Methods as points (not a line: they have no order) with their interval, baselines as labelled
    horizontal lines, and the Pareto front (cheapest for its accuracy) ringed."""
    rows = [r for r in rows if r.get(x) is not None and r.get(y) == r.get(y)]  # all-collapsed methods have no point
    fig = Figure(figsize=(7, 4.4), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.errorbar(r[x], r[y], yerr=r.get(err, 0), fmt="os^D"[i // 10 % 4], color=f"C{i % 10}", capsize=3,
                    label=r["method"])  # ten colours, then another marker
    front = pareto_front([(r[x], r[y]) for r in rows])
    ax.scatter([rows[i][x] for i in front], [rows[i][y] for i in front], s=160, facecolors="none",
               edgecolors="black", label="Pareto front")
    for k, (name, value) in enumerate((baselines or {}).items()):
        ax.axhline(value, ls=(0, (4, 2 + k)), color="grey", lw=1)
        ax.annotate(f"{name} {value:.3f}", (1.0, value), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=7, color="dimgrey")
    if logx:
        ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def plot_intervals(rows: list[dict], reference: str | None = None, baselines: dict | None = None,
                   value: str = "test accuracy", err: str = "± 95 %") -> Figure:
    """One horizontal bar per method: its mean and 95 % interval, best on top; the ``reference`` method's
    interval shaded, so a method whose bar leaves the shade differs from it and one inside does not.
    ``baselines`` (name → value) are dashed vertical lines, named in a legend beside the axes (labels written
    on the lines crowd the points when two baselines are close)."""
    rows = sorted((r for r in rows if r.get(value) == r.get(value)), key=lambda r: r[value])
    fig = Figure(figsize=(7, 0.32 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        ax.errorbar(r[value], i, xerr=r.get(err, 0), fmt="o", color="C0" if r["method"] != reference else "C3",
                    capsize=3)
    ref = next((r for r in rows if r["method"] == reference), None)
    if ref is not None:
        ax.axvspan(ref[value] - ref[err], ref[value] + ref[err], color="C3", alpha=0.12, label=f"{reference} ± 95 %")
    for k, (name, v) in enumerate((baselines or {}).items()):
        ax.axvline(v, ls=["--", ":", "-."][k % 3], color="dimgrey", lw=1.2, label=f"{name} {v:.3f}")
    ax.set_yticks(range(len(rows)), [r["method"] for r in rows], fontsize=8)
    ax.set(xlabel=f"{value} (mean and 95 % interval over seeds)")
    ax.grid(axis="x", alpha=0.3)
    if ref is not None or baselines:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))   # beside the axes, off the points
    return fig
