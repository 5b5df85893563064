"""results: record_result / load_results round trip, $FTLAB_RESULTS, and no lost records when two processes
(two pytest-xdist workers running notebooks) record into the same profile file at once."""

import json
import multiprocessing as mp
import os

import pytest

import ftlab
from ftlab import results


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAB_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_round_trip_in_the_folder_ftlab_results_names(folder):
    repo_file = results.RESULTS_DIR / "test-redirect.json"
    assert results.results_dir() == folder
    assert ftlab.record_result("test-redirect", "full", accuracy=0.812345678, steps=300, note="x") == {
        "accuracy": 0.812346, "steps": 300, "note": "x"}
    ftlab.record_result(ftlab.get_profile("smoke"), "lora", accuracy=0.8)  # a Profile: its name
    ftlab.record_result("test-redirect", "full", accuracy=0.9)  # the same method again: replaced
    assert ftlab.load_results("test-redirect") == {"full": {"accuracy": 0.9}}
    assert ftlab.load_results("smoke") == {"lora": {"accuracy": 0.8}}
    assert json.loads((folder / "test-redirect.json").read_text()) == {"full": {"accuracy": 0.9}}
    assert not repo_file.exists(), "a redirected record must not touch the repository's results/"
    assert ftlab.load_results("cpu") == {}
    assert sorted(p.name for p in folder.iterdir()) == ["smoke.json", "smoke.json.lock", "test-redirect.json",
                                                       "test-redirect.json.lock"]  # no temp file left


def test_undefined_values_are_stored_as_null(folder):
    assert ftlab.record_result("smoke", "multi-task", forgetting=float("nan"), ratio=float("inf")) == {
        "forgetting": None, "ratio": None}
    assert json.loads((folder / "smoke.json").read_text(), parse_constant=pytest.fail) == {
        "multi-task": {"forgetting": None, "ratio": None}}


def test_default_folder_is_the_repositorys(monkeypatch):
    monkeypatch.delenv("FTLAB_RESULTS", raising=False)
    assert results.results_dir() == results.RESULTS_DIR
    assert results.RESULTS_DIR.name == "results" and (results.RESULTS_DIR.parent / "ftlab").is_dir()


def record_many(folder, tag, n, barrier):
    os.environ["FTLAB_RESULTS"] = folder
    barrier.wait()  # both start together, so their read-modify-writes overlap
    for i in range(n):
        results.record_result("race", f"{tag}-{i}", value=i, payload="x" * 2000)  # a bigger file, a longer write


def test_two_concurrent_writers_lose_nothing(folder):
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=record_many, args=(str(folder), tag, 20, barrier)) for tag in ("a", "b")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0], "a writer failed (e.g. read a half-written file)"
    table = ftlab.load_results("race")
    assert sorted(table) == sorted(f"{t}-{i}" for t in ("a", "b") for i in range(20))
    assert all(table[f"{t}-{i}"]["value"] == i for t in ("a", "b") for i in range(20))
    assert not list(folder.glob(".*.tmp"))
