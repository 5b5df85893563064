"""Evaluate a model outside training: classification metrics, language-model perplexity, greedy answers.

Used for baselines (the untrained head, the model before SFT) and for final test-split numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from . import metrics
from .batching import batches  # on floor 1 (distill and probe use it too); evaluation.batches stays a name
from .preprocess import classification_collator, format_prompt, sft_collator


@torch.no_grad()
def predict(model, dataset, tokenizer, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Predicted classes and true labels for a tokenised classification dataset."""
    model.eval()
    device = next(model.parameters()).device
    preds, labels = [], []
    for batch in batches(dataset, classification_collator(tokenizer), batch_size):
        labels.append(batch.pop("labels").numpy())
        logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
        preds.append(logits.argmax(-1).cpu().numpy())
    return np.concatenate(preds), np.concatenate(labels)


def evaluate_classifier(model, dataset, tokenizer, batch_size: int = 64) -> dict[str, float]:
    """Accuracy and macro-F1 on a tokenised classification dataset."""
    preds, labels = predict(model, dataset, tokenizer, batch_size)
    return {"accuracy": metrics.accuracy(preds, labels), "f1": metrics.f1(preds, labels)}


@torch.no_grad()
def classify_texts(model, tokenizer, texts: list[str], max_length: int = 128) -> np.ndarray:
    """Class probabilities (rows sum to 1) for raw texts: what a user of the fine-tuned model sees."""
    model.eval()
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
    logits = model(**enc.to(next(model.parameters()).device)).logits
    return torch.softmax(logits.float(), -1).cpu().numpy()


@torch.no_grad()
def evaluate_lm(model, dataset, tokenizer, batch_size: int = 16) -> dict[str, float]:
    """Mean cross-entropy over the answer tokens (labels != -100) and its perplexity."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for batch in batches(dataset, sft_collator(tokenizer), batch_size):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # position t predicts token t+1: (B, T-1, V) against (B, T-1)
        target = batch["labels"][:, 1:]
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(),
                                                 target.reshape(-1), ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((target != -100).sum())
    mean = total / max(count, 1)
    return {"loss": mean, "perplexity": metrics.perplexity(mean)}


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 32, batch_size: int = 16) -> list[str]:
    """Greedy answers (deterministic) to each prompt, formatted with the model's chat template."""
    model.eval()
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues on the right
    answers = []
    try:
        for i in range(0, len(prompts), batch_size):
            texts = [format_prompt(tokenizer, p) for p in prompts[i:i + batch_size]]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
            answers += tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [a.strip() for a in answers]
