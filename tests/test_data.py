import json

import pytest

import ftlab


@pytest.fixture(scope="module")
def rt():
    return ftlab.load_dataset("rotten_tomatoes")


def test_rotten_tomatoes_fixed_splits_without_leaks(rt):
    assert {k: len(v) for k, v in rt.items()} == {"train": 10752, "validation": 1000, "test": 1000}
    assert rt["train"].features["label"].names == ["negative", "positive"]
    train, val, test = (set(rt[s]["text"]) for s in ("train", "validation", "test"))
    assert not (train & test) and not (train & val) and not (val & test)
    assert sum(rt["test"]["label"]) == 571  # 57.1 % positive: report the majority baseline beside accuracy
    assert rt["test"][0]["text"] == ftlab.load_dataset("rotten_tomatoes")["test"][0]["text"]


def test_profile_caps_rows(smoke):
    d = ftlab.load_dataset("rotten_tomatoes", smoke)
    assert {k: len(v) for k, v in d.items()} == {"train": 256, "validation": 64, "test": 64}


def test_other_offline_datasets():
    zh = ftlab.load_dataset("chinese_reviews")
    assert len(zh["test"]) == 1000 and set(zh["train"]["label"]) == {0, 1}
    ins = ftlab.load_dataset("instructions")
    assert {k: len(v) for k, v in ins.items()} == {"train": 640, "validation": 80, "test": 80}
    assert not set(ins["train"]["prompt"]) & set(ins["test"]["prompt"])
    bot = ftlab.load_dataset("chatterbot")
    assert bot["train"].column_names == ["prompt", "response"] and len(bot["test"]) == 200


def test_bbc_news_topics():
    news = ftlab.load_dataset("bbc_news")
    assert {k: len(v) for k, v in news.items()} == {"train": 1685, "validation": 210, "test": 210}
    assert news["train"].features["label"].names == ftlab.data.BBC_TOPICS
    assert set(news["test"]["label"]) == set(range(5))  # every topic is tested
    assert not set(news["train"]["text"]) & set(news["test"]["text"])


def test_product_reviews_split_by_review_and_drop_neutral_sentences():
    rows = ftlab.data._product_reviews()
    assert len(rows) == 2977 and all(r["label"] in (0, 1) for r in rows)
    assert "repost from january 13, 2004 with a better fit title." not in {r["text"] for r in rows}  # rated -0.15
    reviews = {r["text"]: r["review"] for r in rows}
    d = ftlab.load_dataset("product_reviews")
    assert d["train"].column_names == ["text", "label"]
    by_split = {s: {reviews[t] for t in d[s]["text"]} for s in d}
    assert not by_split["train"] & by_split["test"] and not by_split["validation"] & by_split["test"]
    assert {k: len(v) for k, v in d.items()} == {"train": 2375, "validation": 302, "test": 300}


def test_local_file_gets_splits(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(50)))
    d = ftlab.load_dataset(str(path))
    assert {k: len(v) for k, v in d.items()} == {"train": 40, "validation": 5, "test": 5}


def test_unknown_dataset_offline_is_a_clear_error():
    expected = "Cannot load dataset 'nobody/nothing'.*Offline names: rotten_tomatoes"
    with pytest.raises(ftlab.FtlabError, match=expected) as e:
        ftlab.load_dataset("nobody/nothing")
    assert "(ConnectionError: Couldn't reach 'nobody/nothing' on the Hub" in str(e.value)
    assert isinstance(e.value.__cause__, ConnectionError)


def test_empty_dataset_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    with pytest.raises(ftlab.FtlabError, match="empty.csv: it has no rows"):
        ftlab.load_dataset(str(path))


def test_wrong_columns_name_what_is_there(smoke):
    _, tok = ftlab.load_model(smoke.encoder)
    d = ftlab.load_dataset("instructions", smoke)
    with pytest.raises(ftlab.FtlabError, match=r"needs the columns \['text', 'label'\]; this dataset has \['task', 'prompt', 'response'\]"):
        ftlab.tokenize_classification(d, tok, 32)


def test_sft_masks_the_prompt(smoke):
    _, tok = ftlab.load_model(smoke.decoder, task="causal-lm")
    d = ftlab.load_dataset("instructions", smoke)
    row = ftlab.tokenize_sft(d, tok, 96)["train"][0]
    answer = [t for t, l in zip(row["input_ids"], row["labels"]) if l != -100]
    assert tok.decode(answer) == d["train"][0]["response"] + tok.eos_token
    assert row["labels"][0] == -100 and len(row["input_ids"]) == len(row["labels"])


def test_sft_cuts_long_rows_but_keeps_the_end_of_turn_and_counts_them(smoke, capsys):
    tok = ftlab.load_tokenizer(smoke.decoder)
    d = ftlab.load_dataset("instructions", smoke)
    out = ftlab.tokenize_sft(d, tok, 48)
    full = {s: [len(tok(ftlab.format_prompt(tok, r["prompt"]) + r["response"] + tok.eos_token,
                        add_special_tokens=False)["input_ids"]) for r in d[s]] for s in d}
    assert out.truncated_rows == {s: sum(n > 48 for n in lengths) for s, lengths in full.items()}
    assert out.truncated_rows == {"train": 152, "validation": 42, "test": 39}
    assert "tokenize_sft: 233 of 384 rows are longer than 48 tokens" in capsys.readouterr().out
    for s in d:
        for row, n in zip(out[s], full[s]):
            assert row["labels"][-1] == row["input_ids"][-1] == tok.eos_token_id
            assert len(row["input_ids"]) == len(row["labels"]) == min(n, 48)


def test_sft_without_cuts_prints_nothing(smoke, capsys):
    tok = ftlab.load_tokenizer(smoke.decoder)
    out = ftlab.tokenize_sft(ftlab.load_dataset("instructions", smoke), tok, 512)
    assert out.truncated_rows == {"train": 0, "validation": 0, "test": 0} and capsys.readouterr().out == ""


def test_official_test_split_is_kept_when_validation_is_missing(tmp_path):
    """A hub dataset with train + test only (e.g. imdb): validation comes from train, test stays official."""
    from datasets import Dataset, DatasetDict

    rows = lambda a, b: Dataset.from_list([{"text": f"t{i}", "label": i % 2} for i in range(a, b)])  # noqa: E731
    DatasetDict(train=rows(0, 50), test=rows(100, 107)).save_to_disk(str(tmp_path / "hub"))
    d = ftlab.load_dataset(str(tmp_path / "hub"))
    assert {k: len(v) for k, v in d.items()} == {"train": 45, "validation": 5, "test": 7}
    assert list(d["test"]["text"]) == [f"t{i}" for i in range(100, 107)]
    assert sorted([*d["train"]["text"], *d["validation"]["text"]]) == sorted(f"t{i}" for i in range(50))
    assert list(d["validation"]["text"]) == list(ftlab.load_dataset(str(tmp_path / "hub"))["validation"]["text"])


def test_official_validation_split_is_kept_when_test_is_missing(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = lambda a, b: Dataset.from_list([{"text": f"t{i}", "label": i % 2} for i in range(a, b)])  # noqa: E731
    DatasetDict(train=rows(0, 30), validation=rows(100, 104)).save_to_disk(str(tmp_path / "hub"))
    d = ftlab.load_dataset(str(tmp_path / "hub"))
    assert {k: len(v) for k, v in d.items()} == {"train": 27, "validation": 4, "test": 3}
    assert list(d["validation"]["text"]) == [f"t{i}" for i in range(100, 104)]


def _run_generator(script: str):
    """Import data/<script>.py (it imports its sibling make_instructions) without writing anything."""
    import importlib.util
    import sys

    from ftlab.data import DATA_DIR

    spec = importlib.util.spec_from_file_location(script, DATA_DIR / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(DATA_DIR))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(DATA_DIR))
    return module


@pytest.mark.parametrize("script, file, make", [("make_facts", "facts.jsonl", "rows"),
                                                ("make_preferences", "preferences.jsonl", "pairs")])
def test_written_data_is_what_its_script_writes(script, file, make):
    from ftlab.data import DATA_DIR

    on_disk = [json.loads(line) for line in (DATA_DIR / file).read_text(encoding="utf-8").splitlines()]
    assert on_disk == getattr(_run_generator(script), make)()


def test_facts_hold_out_a_wording_and_ask_what_the_world_does_not_say(smoke):
    d = ftlab.load_dataset("facts")
    assert {k: len(v) for k, v in d.items()} == {"train": 90, "validation": 90, "test": 126}
    said = {(r["entity"], r["attribute"]) for r in d["train"]}
    assert set(d["train"]["question"]).isdisjoint(d["test"]["question"])  # held-out wordings are new
    unknown = [r for r in d["test"] if r["answer"] == "unknown"]
    assert len(unknown) == 36 and all((r["entity"], r["attribute"]) not in said for r in unknown)
    assert all(r["answer"] not in r["question"] for r in d["test"])  # no question gives its answer away
    capped = ftlab.load_dataset("facts", smoke)["test"]
    assert 0 < capped["answer"].count("unknown") < len(capped)  # a capped test split keeps both kinds
