"""What a freezing call left trainable: ``FreezeReport`` by group (embeddings, each block, head), and its memory.

Part of ``ftlab.methods.freeze`` (see its docstring); torch only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...strategy import training_memory
from ..blocks import _unwrap, find_blocks, head_names


@dataclass(repr=False)
class FreezeReport:
    """What a freezing call left trainable. ``str(report)`` prints it; ``rows()`` gives a table."""

    model: str
    num_blocks: int
    blocks_name: str  # e.g. "bert.encoder.layer"
    trainable_blocks: list[int]  # blocks with at least one trainable parameter
    total: int  # parameters (tied weights counted once)
    trainable: int
    frozen_tensors: int
    trainable_tensors: int
    groups: dict = field(default_factory=dict)  # group -> (trainable, total): "embeddings/other", "block i", "head"
    notes: list[str] = field(default_factory=list)

    @property
    def frozen(self) -> int:
        return self.total - self.trainable

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)

    def rows(self) -> list[dict]:
        return [{"group": g, "trainable": t, "total": n, "trainable %": round(100.0 * t / max(n, 1), 1)}
                for g, (t, n) in self.groups.items()]

    def __str__(self) -> str:
        blocks = ", ".join(map(str, self.trainable_blocks)) if self.trainable_blocks else "none"
        lines = [f"{self.model}: trainable {self.trainable:,} of {self.total:,} parameters ({self.percent:.2f} %); "
                 f"frozen {self.frozen:,} ({100 - self.percent:.2f} %) in {self.frozen_tensors} tensors",
                 f"  training blocks [{blocks}] of {self.num_blocks} ({self.blocks_name})"]
        for g, (t, n) in _runs(self.groups):
            state = "train" if t == n else ("frozen" if t == 0 else f"{100 * t / n:.0f} % train")
            lines.append(f"  {g:<16} {n:>12,}  {state}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    __repr__ = __str__  # a notebook cell ending in a report shows the readable table


def _runs(groups: dict):
    """Consecutive blocks in the same state shown as one line ("blocks 0-27"), so 30-block models stay short."""
    out, run = [], []

    def flush():
        if run:
            first, last = run[0][0].split()[1], run[-1][0].split()[1]
            name = run[0][0] if first == last else f"blocks {first}–{last}"
            out.append((name, (sum(t for _, (t, _n) in run), sum(n for _, (_t, n) in run))))
            run.clear()

    for g, (t, n) in groups.items():
        if g.startswith("block ") and (not run or run[-1][1][0] * n == t * run[-1][1][1]):  # same share trains
            run.append((g, (t, n)))
            continue
        flush()
        if g.startswith("block "):
            run.append((g, (t, n)))
        else:
            out.append((g, (t, n)))
    flush()
    return out


def _unique_params(model):
    seen = set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) not in seen:
            seen.add(id(p))
            yield name, p


def _head_params(model) -> set[str]:
    """Parameter names of the task head (``blocks.head_names``: classifier, score, lm_head …). Tied
    parameters (an lm_head sharing the input embeddings) are not head: they follow the embeddings, or the
    head would silently train the whole vocabulary matrix."""
    heads = head_names(model)
    if not heads:
        return set()
    inside = {id(p) for p in model.base_model.parameters()}
    return {n for n, p in model.named_parameters()
            if n.split(".", 1)[0] in heads and id(p) not in inside}


def _base_prefix(model) -> str:
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return ""
    name = {id(m): n for n, m in model.named_modules()}.get(id(base), "")
    return name + "." if name else ""


def group_of(name: str, blocks_name: str, head: set[str], base_prefix: str = "") -> str:
    """The report's group of a parameter: "block i", "head", or the base model's part ("embeddings", "pooler", "norm")."""
    if name.startswith(blocks_name + "."):
        return f"block {name[len(blocks_name) + 1:].split('.')[0]}"
    if name in head:
        return "head"
    return name[len(base_prefix):].split(".")[0] if name.startswith(base_prefix) else name.split(".")[0]


def freeze_report(model) -> FreezeReport:
    """The current trainable/frozen state of ``model`` by group (embeddings, each block, pooler/norm, head)."""
    inner = _unwrap(model)
    blocks_name, blocks = find_blocks(inner)
    head, prefix = _head_params(inner), _base_prefix(inner)
    groups: dict[str, list[int]] = {}
    frozen_t = trainable_t = 0
    for name, p in _unique_params(inner):
        g = groups.setdefault(group_of(name, blocks_name, head, prefix), [0, 0])
        g[1] += p.numel()
        if p.requires_grad:
            g[0] += p.numel()
            trainable_t += 1
        else:
            frozen_t += 1
    if "head" in groups:  # the head last, whatever order the model registered it in
        groups["head"] = groups.pop("head")
    trainable_blocks = [i for i in range(len(blocks)) if groups.get(f"block {i}", (0, 0))[0]]
    total = sum(n for _, n in groups.values())
    trainable = sum(t for t, _ in groups.values())
    notes = []
    out = getattr(inner, "get_output_embeddings", lambda: None)()
    inp = getattr(inner, "get_input_embeddings", lambda: None)()
    if out is not None and inp is not None and out.weight is inp.weight:
        notes.append("lm_head is tied to the input embeddings: it trains only when the embeddings do")
    return FreezeReport(type(inner).__name__, len(blocks), blocks_name, trainable_blocks, total, trainable,
                        frozen_t, trainable_t, {g: tuple(v) for g, v in groups.items()}, notes)


def training_memory_mb(total: int, trainable: int, bytes_per_param: int = 4) -> dict[str, float]:
    """Weights + gradients + AdamW's two moments, in MiB, for ``total`` parameters of which ``trainable``
    train (fp32 by default). Notebook 02's names for ``ftlab.strategy.training_memory``; activations come
    on top and grow with batch × sequence length."""
    m = training_memory(total, trainable, weight_bytes=bytes_per_param, optimizer="adamw")
    return {"weights": m["weights"], "gradients": m["gradients"], "adam states": m["optimizer"], "total": m["total"]}
