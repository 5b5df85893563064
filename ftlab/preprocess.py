"""Datasets to model inputs: tokenising for classification and SFT, the chat-template prompt, and collators.

Tokenising first checks that the dataset has the columns, text and labels it needs, and says how to fix it.
Taught in notebook 01, sections 1, 2 and 7.
"""

from __future__ import annotations

from .errors import FtlabError


def _splits(ds) -> list:
    return list(ds.values()) if hasattr(ds, "keys") else [ds]


def require_columns(ds, columns: list[str], what: str) -> None:
    """A clear error when a dataset lacks the columns a step needs."""
    some = _splits(ds)[0]
    missing = [c for c in columns if c not in some.column_names]
    if missing:
        raise FtlabError(f"{what} needs the columns {columns}; this dataset has {some.column_names} "
                         f"(missing {missing}). Rename with ds.rename_column(old, new).")


def _kind(feature) -> str:
    kind = getattr(feature, "dtype", type(feature).__name__)
    return "text" if kind in ("string", "large_string") else kind


def _require_text(ds, columns: list[str], what: str) -> None:
    # Numbers read from a CSV reach the tokenizer as ints, and it fails with a TypeError deep inside.
    some = _splits(ds)[0]
    for c in columns:
        if _kind(some.features[c]) != "text":
            raise FtlabError(f"{what} needs text in the column {c!r}, but it holds {_kind(some.features[c])} "
                             f"values such as {some[:3][c]}. Point it at the column with the text.")


def _require_class_labels(ds, column: str, num_labels: int | None) -> None:
    # Labels other than whole numbers 0..n-1 fail only later, inside the loss, with an unrelated message.
    from datasets import ClassLabel

    splits = _splits(ds)
    feature = splits[0].features[column]
    if not isinstance(feature, ClassLabel) and not _kind(feature).startswith(("int", "uint")):
        found = sorted({str(v) for v in splits[0].unique(column)})
        raise FtlabError(f"Classification needs whole-number labels 0, 1, …; the column {column!r} holds "
                         f"{_kind(feature)} values ({', '.join(found[:5])}{', …' if len(found) > 5 else ''}). "
                         f"Number the classes with dsd = dsd.class_encode_column({column!r}).")
    found = sorted(set().union(*(d.unique(column) for d in splits)))
    if found and (found[0] < 0 or (num_labels is not None and found[-1] >= num_labels)):
        expected = f"0 to {num_labels - 1} for a model with {num_labels} classes" if num_labels else "0 or more"
        raise FtlabError(f"Classification labels must be {expected}; the column {column!r} holds {len(found)} "
                         f"classes: {found[:10]}{' …' if len(found) > 10 else ''}. Load the model with "
                         "labels=[...] naming every class, or drop the rows whose label is out of range.")


def tokenize_classification(dsd, tokenizer, max_length: int, text: str = "text", label: str = "label",
                            num_labels: int | None = None):
    """Tokenised inputs plus ``labels``; other columns are dropped. Padding happens per batch.

    ``num_labels`` (the model's ``config.num_labels``), when given, is checked against the labels found.
    """
    require_columns(dsd, [text, label], "Classification")
    _require_text(dsd, [text], "Classification")
    _require_class_labels(dsd, label, num_labels)

    def encode(batch):
        enc = tokenizer(batch[text], truncation=True, max_length=max_length)
        enc["labels"] = batch[label]
        return enc

    return dsd.map(encode, batched=True, remove_columns=dsd[next(iter(dsd))].column_names)


def format_prompt(tokenizer, prompt: str) -> str:
    """The text a causal LM sees before its answer: its chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return f"### Instruction:\n{prompt}\n### Response:\n"


def tokenize_sft(dsd, tokenizer, max_length: int, prompt: str = "prompt", response: str = "response"):
    """Prompt + response + end-of-turn, with the prompt's labels masked (-100): the loss is on the answer.

    Rows longer than ``max_length`` lose the end of their answer but keep the end-of-turn token, so the
    model still learns to stop. How many rows were cut is printed and kept in ``.truncated_rows``.
    """
    require_columns(dsd, [prompt, response], "Supervised fine-tuning")
    _require_text(dsd, [prompt, response], "Supervised fine-tuning")
    end = tokenizer.eos_token or ""
    eos = [tokenizer.eos_token_id] if end else []

    def encode(row):
        p = tokenizer(format_prompt(tokenizer, row[prompt]), add_special_tokens=False)["input_ids"]
        a = tokenizer(row[response] + end, add_special_tokens=False)["input_ids"]
        ids, labels = p + a, [-100] * len(p) + a
        cut = len(ids) > max_length
        if cut:
            keep = max(max_length - len(eos), 0)
            ids, labels = ids[:keep] + eos, labels[:keep] + eos
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels, "cut": cut}

    out = dsd.map(encode, remove_columns=dsd[next(iter(dsd))].column_names)
    cut = {split: sum(ds["cut"]) for split, ds in out.items()}
    out = out.remove_columns("cut")
    out.truncated_rows = cut
    if sum(cut.values()):
        print(f"tokenize_sft: {sum(cut.values())} of {sum(len(ds) for ds in out.values())} rows are longer than "
              f"{max_length} tokens and lost the end of their answer ("
              + ", ".join(f"{s} {n}" for s, n in cut.items()) + "); each keeps its end-of-turn token.")
    return out


def classification_collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def sft_collator(tokenizer):
    """Pads inputs with the pad token and labels with -100, so padding never counts in the loss."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
