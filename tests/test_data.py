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


def test_local_file_gets_splits(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(50)))
    d = ftlab.load_dataset(str(path))
    assert {k: len(v) for k, v in d.items()} == {"train": 40, "validation": 5, "test": 5}


def test_unknown_dataset_offline_is_a_clear_error():
    with pytest.raises(ftlab.FtlabError, match="Cannot load dataset 'nobody/nothing'.*Offline names: rotten_tomatoes"):
        ftlab.load_dataset("nobody/nothing")


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
