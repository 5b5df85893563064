"""Freezing strategies and schedules: named strategies, the adaptive heuristic, ULMFiT's gradual unfreezing.

Part of ``ftlab.methods.freeze`` (see its docstring); torch (and transformers' ``TrainerCallback``, lazily) only.
"""

from __future__ import annotations

from ...errors import FtlabError
from ..blocks import find_blocks, num_blocks
from .core import freeze, resolve_layers

STRATEGIES = ("full", "head", "last", "first", "bottom-up", "top-down", "alternating")


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
