"""Partial fine-tuning: choose which blocks (and which modules inside them) train; freeze the rest.

Taught in notebooks/02_freezing.ipynb. Imports torch (and transformers' ``TrainerCallback``, lazily) only.

The knobs follow LLaMA-Factory's freeze tuning so its users recognise them:

- ``layers`` ~ ``freeze_trainable_layers``: ``+n`` trains the last n blocks, ``-n`` the first n; a list,
  ``range`` or ``slice`` of indices picks any blocks, middle ones included (``[2, 3]``, ``range(2, 4)``);
- ``modules`` ~ ``freeze_trainable_modules``: inside the chosen blocks, only parameters whose name matches
  one of these patterns train (``["attention"]``, ``["mlp"]``; default: the whole block);
- ``extra`` ~ ``freeze_extra_modules``: parameters outside the blocks that train too (``["pooler"]``,
  ``["embeddings"]``, ``["norm"]``);
- the task head (everything the task model adds around ``model.base_model``) trains by default.

A pattern is a regular expression searched in the parameter's dotted name, so a plain word matches as a
substring. Every call returns a ``FreezeReport`` that says what trains and what was frozen.

Strategies taught in the notebook (``strategy_layers``): head only, last n blocks, bottom-up (freeze the
lower half), top-down (freeze the upper half), alternating, adaptive (``adaptive_num_layers``), and
gradual unfreezing (``gradual_unfreezing_callback``; Howard & Ruder 2018, ULMFiT).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from torch import nn

from ..errors import FtlabError

# Where common architectures keep their list of transformer blocks (relative to the task model).
BLOCK_PATHS = ("base_model.encoder.layer",  # BERT, RoBERTa, MiniLM, DeBERTa
               "base_model.layers",  # Llama, Qwen2, Mistral, SmolLM2 (model.model.layers)
               "base_model.h",  # GPT-2, GPT-J (transformer.h)
               "base_model.decoder.layers",  # OPT
               "base_model.transformer.layer",  # DistilBERT
               "base_model.encoder.block")  # T5 encoder

STRATEGIES = ("full", "head", "last", "first", "bottom-up", "top-down", "alternating")


def _get(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _unwrap(model):
    """The transformers model inside a PEFT wrapper (its ``base_model.model``), else the model itself."""
    inner = getattr(getattr(model, "base_model", None), "model", None)
    return inner if type(model).__name__.startswith("Peft") and isinstance(inner, nn.Module) else model


def find_blocks(model) -> tuple[str, nn.ModuleList]:
    """``(name, blocks)``: the model's list of transformer blocks and its dotted name inside ``model``.

    Tries the known places (``BLOCK_PATHS``), then falls back to the longest ``nn.ModuleList`` whose
    members all share one class: that is what a stack of transformer blocks looks like in any model.
    """
    model = _unwrap(model)
    names = {id(m): n for n, m in model.named_modules()}
    for path in BLOCK_PATHS:
        blocks = _get(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) and id(blocks) in names:
            return names[id(blocks)], blocks
    stacks = [(n, m) for n, m in model.named_modules()
              if isinstance(m, nn.ModuleList) and len(m) > 1 and len({type(b) for b in m}) == 1]
    if not stacks:
        raise FtlabError(f"Found no list of transformer blocks in {type(model).__name__}: looked for "
                         f"{', '.join(BLOCK_PATHS)} and any nn.ModuleList of identical blocks. Its top-level "
                         f"modules are: {', '.join(n for n, _ in model.named_children())}.")
    return max(stacks, key=lambda s: len(s[1]))


def num_blocks(model) -> int:
    """How many transformer blocks the model stacks (MiniLM-L6: 6, SmolLM2-135M: 30)."""
    return len(find_blocks(model)[1])


def resolve_layers(spec, n: int) -> list[int]:
    """Block indices (sorted, unique) from a ``layers`` spec, for a model with ``n`` blocks.

    ``None`` or ``0``: none. ``"all"``: all. ``+k``: the last k. ``-k``: the first k (LLaMA-Factory's
    ``freeze_trainable_layers``). A list / tuple / ``range`` of indices, or a ``slice``: exactly those
    (negative indices count from the end, as in Python).
    """
    if spec is None:
        return []
    if isinstance(spec, str):
        if spec == "all":
            return list(range(n))
        raise FtlabError(f"layers={spec!r}: use an int (+k last k, -k first k), 'all', a list/range of "
                         f"indices or a slice; this model has {n} blocks (0–{n - 1}).")
    if isinstance(spec, bool):
        raise FtlabError("layers=True/False is ambiguous: use 'all', None, +k, -k or a list of indices.")
    if isinstance(spec, int):
        if abs(spec) > n:
            raise FtlabError(f"layers={spec:+d} asks for {abs(spec)} blocks, but this model has {n} blocks "
                             f"(0–{n - 1}); use a value between -{n} and +{n}.")
        return list(range(n - spec, n)) if spec > 0 else list(range(-spec))
    if isinstance(spec, slice):
        return list(range(n))[spec]
    try:
        indices = [int(i) for i in spec]
    except TypeError:
        raise FtlabError(f"layers={spec!r} is not an int, a list of indices, a range or a slice.") from None
    bad = [i for i in indices if not -n <= i < n]
    if bad:
        raise FtlabError(f"Layer index {bad[0]} is out of range: this model has {n} blocks, indices 0–{n - 1} "
                         f"(or -{n}…-1 from the end).")
    return sorted({i % n for i in indices})


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


def _head_names(model) -> set[str]:
    """Parameter names of the task head: what the task model adds around ``base_model`` (classifier,
    score, lm_head …). Tied parameters (an lm_head sharing the input embeddings) are not head: they
    follow the embeddings, or the head would silently train the whole vocabulary matrix."""
    base = getattr(model, "base_model", None)
    if base is None or base is model:
        return set()
    inside = {id(p) for p in base.parameters()}
    return {n for n, p in model.named_parameters() if id(p) not in inside}


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
    head, prefix = _head_names(inner), _base_prefix(inner)
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


def _module_names(prefix: str, module: nn.Module, limit: int = 12) -> str:
    names = [n for n, m in module.named_modules() if n and list(m.parameters(recurse=False))]
    shown = ", ".join(names[:limit]) + (" …" if len(names) > limit else "")
    return f"{prefix}{shown}"


def freeze(model, layers=None, modules=None, extra=None, train_head: bool = True,
           verbose: bool = True) -> FreezeReport:
    """Freeze ``model`` in place so that only the chosen blocks / modules / head train; return the report.

    ``layers``: which blocks train (see ``resolve_layers``: ``+n`` last n, ``-n`` first n, a list, range
    or slice, ``"all"``; ``None`` = no block). ``modules``: patterns; inside the chosen blocks only
    matching parameters train (``None`` = the whole block). ``extra``: patterns for parameters outside the
    blocks that train too (e.g. ``["pooler"]``). ``train_head``: keep the task head trainable (default).

    Everything else gets ``requires_grad=False``: no gradient, no optimizer state, and no backward pass
    below the lowest trainable parameter. A pattern that matches nothing raises ``FtlabError``.
    """
    inner = _unwrap(model)
    blocks_name, blocks = find_blocks(inner)
    chosen = resolve_layers(layers, len(blocks))
    modules = [modules] if isinstance(modules, str) else list(modules or [])
    extra = [extra] if isinstance(extra, str) else list(extra or [])
    head = _head_names(inner) if train_head else set()

    prefix = blocks_name + "."
    block_of = {}
    for name, _ in inner.named_parameters():
        if name.startswith(prefix):
            block_of[name] = int(name[len(prefix):].split(".")[0])
    used = {pat: False for pat in modules + extra}
    for name, p in inner.named_parameters():
        if name in block_of:
            train = block_of[name] in chosen
            if train and modules:
                inside = name[len(prefix):].split(".", 1)[1]  # name within the block
                hits = [pat for pat in modules if re.search(pat, inside)]
                for pat in hits:
                    used[pat] = True
                train = bool(hits)
            elif modules:  # count a pattern as valid if it exists in any block
                inside = name[len(prefix):].split(".", 1)[1]
                for pat in modules:
                    used[pat] = used[pat] or bool(re.search(pat, inside))
        else:
            hits = [pat for pat in extra if re.search(pat, name)]
            for pat in hits:
                used[pat] = True
            train = name in head or bool(hits)
        p.requires_grad_(train)
    for pat in modules:
        if not used[pat]:
            raise FtlabError(f"modules pattern {pat!r} matches no parameter inside a block. "
                             + _module_names("A block holds: ", blocks[0]))
    for pat in extra:
        if not used[pat]:
            outside = sorted({n.rsplit(".", 1)[0] for n, _ in inner.named_parameters() if n not in block_of})
            raise FtlabError(f"extra pattern {pat!r} matches no parameter outside the blocks. Outside the blocks "
                             f"there are: {', '.join(outside[:12])}{' …' if len(outside) > 12 else ''}.")
    report = freeze_report(inner)
    if verbose:
        print(report)
    return report


def unfreeze_all(model) -> None:
    """Make every parameter trainable again (full fine-tuning)."""
    for p in model.parameters():
        p.requires_grad_(True)


def param_groups(model, head_lr: float, block_lr: float, extra=None, weight_decay: float = 0.01) -> list[dict]:
    """Optimizer parameter groups for discriminative learning rates (ULMFiT): the new head at ``head_lr``,
    every other trainable parameter (blocks, embeddings, norms) at ``block_lr``.

    Why: a freshly initialised head starts far from any solution and wants a large step, while pretrained
    blocks need only a nudge; one rate for both either wrecks the blocks or leaves the head barely moved.
    The head is the task head plus the parameters outside the blocks that match ``extra`` (e.g.
    ``["pooler"]``). Only parameters with ``requires_grad=True`` now are included, so call it after
    ``freeze`` (or after ``gradual_unfreezing_callback``, which marks every scheduled block trainable).
    Biases and norm weights (1-D tensors) get no weight decay, as in the Trainer's default optimizer.
    Use: ``torch.optim.AdamW(param_groups(m, 2e-3, 1e-4, extra=["pooler"]))`` and pass it to
    ``ftlab.train(..., optimizers=(opt, None))``; the Trainer's warm-up/decay schedule then scales each
    group's rate by the same factor.
    """
    inner = _unwrap(model)
    blocks_name, _ = find_blocks(inner)
    head = _head_names(inner)
    extra = [extra] if isinstance(extra, str) else list(extra or [])
    groups: dict[tuple[str, bool], list] = {}
    for name, p in _unique_params(inner):
        if not p.requires_grad:
            continue
        outside = not name.startswith(blocks_name + ".")
        is_head = name in head or (outside and any(re.search(pat, name) for pat in extra))
        groups.setdefault(("head" if is_head else "blocks", p.ndim >= 2), []).append(p)
    if not groups:
        raise FtlabError("No parameter of the model requires a gradient: freeze(...) left nothing to train.")
    lrs = {"head": head_lr, "blocks": block_lr}
    return [{"name": f"{part}{'' if decay else ' (no decay)'}", "params": params, "lr": lrs[part],
             "weight_decay": weight_decay if decay else 0.0}
            for (part, decay), params in sorted(groups.items(), key=lambda kv: (kv[0][0] != "head", not kv[0][1]))]


def strategy_layers(strategy: str, n: int, k: int = 1) -> list[int]:
    """Trainable block indices for a named strategy on a model with ``n`` blocks.

    full: all · head: none · last: the last k · first: the first k · bottom-up: freeze the lower half
    (train the upper) · top-down: freeze the upper half (train the lower) · alternating: freeze every
    other block, starting with block 0 (train 1, 3, 5 …, so the top block trains when n is even).
    """
    if strategy not in STRATEGIES:
        raise FtlabError(f"Unknown strategy {strategy!r}. Choose one of {', '.join(STRATEGIES)}.")
    half = n // 2
    return {"full": list(range(n)), "head": [], "last": resolve_layers(k, n), "first": resolve_layers(-k, n),
            "bottom-up": list(range(half, n)), "top-down": list(range(half)),
            "alternating": list(range(1, n, 2))}[strategy]


def adaptive_num_layers(similarity: float, n: int, min_layers: int = 1) -> int:
    """How many top blocks to train, from a task-similarity score in [0, 1] (1 = the task looks like
    what the model already represents well).

    The rule of thumb from transfer learning (Yosinski et al. 2014: lower layers are general, upper ones
    specific): the closer the task is to the pretraining, the more blocks can stay frozen. Linear:
    trainable = round((1 - similarity) · n), at least ``min_layers``. A heuristic, not a law: the
    notebook measures it against the fixed strategies.
    """
    if not 0.0 <= similarity <= 1.0:
        raise FtlabError(f"similarity must lie in [0, 1]; got {similarity:.3f}. Normalise the score first.")
    return max(min_layers, min(n, round((1.0 - similarity) * n)))


def training_memory_mb(total: int, trainable: int, bytes_per_param: int = 4) -> dict[str, float]:
    """Weights + gradients + AdamW's two moments, in MB, for ``total`` parameters of which ``trainable``
    train (fp32 by default). Activations come on top and grow with batch × sequence length."""
    mb = 2 ** 20
    parts = {"weights": total * bytes_per_param / mb, "gradients": trainable * bytes_per_param / mb,
             "adam states": 2 * trainable * 4 / mb}
    parts["total"] = sum(parts.values())
    return parts


def unfreezing_schedule(n: int, steps: int, stages: int | None = None, head_only_first: bool = True) -> list[tuple[int, int]]:
    """ULMFiT's gradual unfreezing as ``(step, block)`` pairs: from the top block down, one block per stage.

    ``stages`` (default: n + 1 when the head trains alone first, else n) split ``steps`` evenly; with
    ``head_only_first`` the first stage trains the head alone, as ULMFiT's first epoch does.
    """
    stages = stages or (n + 1 if head_only_first else n)
    if stages < 1 or steps < stages:
        raise FtlabError(f"Cannot split {steps} steps into {stages} stages; use fewer stages or more steps.")
    first = 1 if head_only_first else 0
    plan = []
    for s in range(first, stages):
        block = n - 1 - (s - first)
        if block < 0:
            break
        plan.append((s * steps // stages, block))
    return plan


def gradual_unfreezing_callback(model, steps: int, stages: int | None = None, head_only_first: bool = True,
                                extra=None, verbose: bool = False):
    """A ``transformers.TrainerCallback`` that unfreezes one block per stage, from the top (ULMFiT).

    Pass it to ``ftlab.train(..., callbacks=[cb])`` (or ``finetune_classifier(..., callbacks=[cb])``).

    Why it prepares the model first: the Trainer builds its optimizer once, from the parameters that
    require gradients at that moment, and a parameter left out would never be updated. So every block
    the schedule will unfreeze is made trainable now (it is in the optimizer), and frozen again when
    training begins; AdamW skips parameters whose gradient is ``None``, so a frozen block does not move
    until its stage. The run's reported trainable count is therefore the final stage's.
    """
    from transformers import TrainerCallback

    n = num_blocks(model)
    plan = unfreezing_schedule(n, steps, stages, head_only_first)
    freeze(model, layers=sorted(b for _, b in plan), extra=extra, verbose=False)  # in the optimizer from the start
    _, blocks = find_blocks(model)

    class GradualUnfreezing(TrainerCallback):
        """Freezes the scheduled blocks at the start, then unfreezes them one by one."""

        def __init__(self):
            self.plan, self.log = plan, []

        def _set(self, block: int, on: bool):
            for p in blocks[block].parameters():
                p.requires_grad_(on)

        def on_train_begin(self, args, state, control, **kw):
            for step, block in self.plan:
                self._set(block, step <= state.global_step)  # a resumed run keeps what it had

        def on_step_begin(self, args, state, control, **kw):
            for step, block in self.plan:
                if step == state.global_step:
                    self._set(block, True)
                    self.log.append((step, block))
                    if verbose:
                        print(f"step {step}: unfroze block {block}")

    return GradualUnfreezing()
