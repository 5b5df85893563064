"""Mistakes a new user makes, and the one short paragraph each one should get back."""

import json

import pytest

import ftlab


def short_error(call, *args, **kwargs) -> str:
    """Run ``call``; it must raise an FtlabError whose message is one short paragraph."""
    with pytest.raises(ftlab.FtlabError) as e:
        call(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 600, msg
    return msg


def write_csv(path, header, rows):
    path.write_text("\n".join([header, *rows]) + "\n")
    return str(path)


def test_csv_with_other_columns_names_found_and_needed(tmp_path):
    msg = short_error(ftlab.load_dataset, write_csv(tmp_path / "reviews.csv", "review,stars", ["good,5", "bad,1"]))
    assert "reviews.csv has the columns ['review', 'stars']" in msg
    assert "'text' and 'label'" in msg and "'prompt' and 'response'" in msg


def test_csv_too_small_to_split_says_how_many_rows(tmp_path):
    msg = short_error(ftlab.load_dataset, write_csv(tmp_path / "two.csv", "text,label", ["good,1", "bad,0"]))
    assert msg.startswith("two.csv has 2 row(s): too few to split") and "at least 3 rows" in msg


def test_jsonl_with_a_broken_line_names_file_and_line(tmp_path):
    path = tmp_path / "mine.jsonl"
    lines = [json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(50)]
    path.write_text("\n".join(lines) + '\n{"text": "t50", "lab')  # the last line was cut off
    msg = short_error(ftlab.load_dataset, str(path))
    assert msg.startswith("Cannot read mine.jsonl: line 51 is not valid JSON (Unterminated string "
                          "starting at column 17)")


def test_json_array_with_a_broken_line_names_the_line(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text('[{"text": "a", "label": 1},\n {"text": "b" "label": 0},\n {"text": "c", "label": 1}]\n')
    msg = short_error(ftlab.load_dataset, str(path))
    assert msg.startswith("Cannot read mine.json: line 2 is not valid JSON (Expecting ',' delimiter at column 15)")


def test_csv_with_a_broken_row_names_the_line(tmp_path):
    path = write_csv(tmp_path / "rows.csv", "text,label", ["a,1", "b,0", "c,1,extra", "d,0"])
    msg = short_error(ftlab.load_dataset, path)
    assert msg.startswith("Cannot read rows.csv: ParserError:") and "Expected 2 fields in line 4, saw 3" in msg


def test_string_labels_say_what_was_found(tmp_path, smoke):
    rows = [f"text {i},{'pos' if i % 2 else 'neg'}" for i in range(30)]
    d = ftlab.load_dataset(write_csv(tmp_path / "words.csv", "text,label", rows))
    msg = short_error(ftlab.tokenize_classification, d, ftlab.load_tokenizer(smoke.encoder), 16)
    assert "the column 'label' holds text values (neg, pos)" in msg and "class_encode_column('label')" in msg
    fixed = ftlab.tokenize_classification(d.class_encode_column("label"), ftlab.load_tokenizer(smoke.encoder), 16)
    assert sorted(set(fixed["train"]["labels"])) == [0, 1]  # the fix the message names works


def test_three_classes_for_a_two_class_model_say_what_was_found(tmp_path, smoke):
    d = ftlab.load_dataset(write_csv(tmp_path / "three.csv", "text,label", [f"text {i},{i % 3}" for i in range(30)]))
    model, tok = ftlab.load_model(smoke.encoder)
    msg = short_error(ftlab.tokenize_classification, d, tok, 16, num_labels=model.config.num_labels)
    assert "must be 0 to 1 for a model with 2 classes; the column 'label' holds 3 classes: [0, 1, 2]" in msg
    assert "labels=[...]" in msg


def test_negative_labels_are_refused_without_a_model(tmp_path, smoke):
    d = ftlab.load_dataset(write_csv(tmp_path / "neg.csv", "text,label", [f"text {i},{i % 2 - 1}" for i in range(30)]))
    msg = short_error(ftlab.tokenize_classification, d, ftlab.load_tokenizer(smoke.encoder), 16)
    assert "must be 0 or more; the column 'label' holds 2 classes: [-1, 0]" in msg


def test_numbers_in_the_text_column_say_what_was_found(tmp_path, smoke):
    d = ftlab.load_dataset(write_csv(tmp_path / "numbers.csv", "text,label", [f"{i},{i % 2}" for i in range(30)]))
    msg = short_error(ftlab.tokenize_classification, d, ftlab.load_tokenizer(smoke.encoder), 16)
    assert msg.startswith("Classification needs text in the column 'text', but it holds int64 values such as [")


def test_model_folder_without_weights_names_folder_and_file_type(tmp_path, smoke):
    model, _ = ftlab.load_model(smoke.encoder)
    model.config.save_pretrained(tmp_path)  # config.json only
    msg = short_error(ftlab.load_model, str(tmp_path))
    assert msg.startswith(f"The model folder {tmp_path} has no weights")
    assert "*.safetensors" in msg and "holds config.json" in msg


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_profile_typo_lists_the_profiles(how, monkeypatch):
    monkeypatch.setenv("FTLAB_PROFILE", "cpuu" if how == "environment" else "smoke")
    msg = short_error(ftlab.setup, profile="cpuu" if how == "argument" else None, verbose=False)
    source = "FTLAB_PROFILE" if how == "environment" else "the profile argument"
    assert msg.startswith(f"Unknown profile 'cpuu' (from {source}). Choose one of smoke, cpu, gpu; "
                          "did you mean 'cpu'?")
