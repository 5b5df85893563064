"""FLOPs of one training step, counted by PyTorch, and the machine's ceiling: the FLOP/s of a large matmul.

``ftlab compare`` divides each method's FLOPs per step by its seconds per step, and full fine-tuning's FLOP/s
by the matmul's (point 7 of the protocol in compare.py). Taught in notebook 10, section 5; notebook 02 counts
the FLOPs of partly frozen models with ``step_flops``.
"""

from __future__ import annotations

import time

from .compare_methods import Built


def step_flops(model, batch: dict, loss_fn=None) -> int:
    """FLOPs of one training step (forward + backward) as autograd runs it; matmuls and attention counted."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        if loss_fn is None:
            loss = model(**batch).loss
        else:  # the Trainer's way with a custom loss: labels go to the loss, not the model
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            loss = loss_fn(model(**inputs), batch["labels"])
        loss.backward()
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large fp32 matmul in this process: the machine's practical ceiling for training."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def _measure_flops(method: str, ctx) -> dict:
    """FLOPs of one training step of ``method`` on a batch of the training split (the teacher's forward
    included for the distilled student)."""
    from .preprocess import classification_collator

    built: Built = ctx.build(method, 0)
    rows = ctx.tokens["train"].select(range(ctx.protocol.batch_size))
    batch = classification_collator(ctx.tokenizer)([dict(r) for r in rows])
    return {"method": method, "flops_per_step": step_flops(built.model, dict(batch), built.loss_fn),
            "batch_size": ctx.protocol.batch_size, "padded_length": int(batch["input_ids"].shape[1])}
