"""Ordered batches of a dataset, for evaluation and feature extraction (floor 1: no model, no trainer)."""

from __future__ import annotations


def batches(dataset, collator, batch_size: int):
    """Collated batches of ``dataset`` in order (no shuffling): for evaluation and feature extraction."""
    for i in range(0, len(dataset), batch_size):
        yield collator([dataset[j] for j in range(i, min(i + batch_size, len(dataset)))])
