"""02_prepare run by papermill (after 01_access, small parameters): what it recorded agrees
with the files it wrote, and those files are what 03_train and 04_evaluate need."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import nbformat
import pytest

from ftutils.data.cost import estimate_cost
from ftutils.data.load import read_jsonl, read_table
from ftutils.data.validate import validate_file
from ftutils.openai_rules import auto_n_epochs
from tests.conftest import ROOT, TEST_KEY
from tests.notebooks.conftest import TINY
from tests.data.test_samples import PLANTED

SAMPLE = ROOT / "data" / "samples" / "clinc150_subset.csv"
INTENTS = sorted(set(read_table(SAMPLE)["label"]) - {"out_of_scope"})
LABELS = sorted(INTENTS + ["out_of_scope"])


@pytest.fixture(scope="module")
def prepared(notebook_run):
    return notebook_run("02_prepare")


def user_text(example: dict) -> str:
    return next(m["content"] for m in example["messages"] if m["role"] == "user")


def test_recorded_split_sizes_add_up(prepared):
    n = prepared["n_examples"]
    assert TINY["02_prepare"]["max_examples"] - 5 <= n + prepared["n_dropped"] <= TINY["02_prepare"]["max_examples"] + 5
    # The pool's out-of-scope rows are not used unless train_out_of_scope is set.
    assert prepared["train_out_of_scope"] is False and prepared["n_pool"] > 0
    assert prepared["n_train"] + prepared["n_validation"] + prepared["n_test"] + prepared["n_pool"] == n
    assert prepared["stratified"] is True and prepared["grouped"] is True
    assert prepared["labels"] == LABELS
    assert prepared["n_errors"] == 0 and prepared["n_dropped"] == 0  # CLINC's rows are distinct
    # The group-aware split leaves no test item with a sibling in train; the plain one does not do better.
    assert prepared["siblings_in_test"]["group-aware"] == 0 == prepared["n_siblings_left"]
    assert prepared["siblings_in_test"]["plain"] >= 1
    assert prepared["out_of_scope"]["train"] == prepared["out_of_scope"]["validation"] == 0
    assert prepared["out_of_scope"]["test"] > 0
    # One example through OpenAI's encoding and SmolLM2's tokenizer, both counted.
    assert [r["tokenizer"].split()[0] for r in prepared["tokens_side_by_side"]] == ["o200k_base", "SmolLM2"]
    assert all(r["example_tokens"] > r["user_tokens"] > 0 for r in prepared["tokens_side_by_side"])


def test_written_files_validate_cleanly_and_match_the_record(prepared):
    data = Path(prepared["_run_dir"]) / "data"
    assert prepared["files"] == {"train": "train.jsonl", "validation": "validation.jsonl", "test": "test.jsonl"}
    sizes = {}
    for part in ("train", "validation", "test"):
        report = validate_file(data / f"{part}.jsonl", model=prepared["model"])
        assert report.ok and report.n_errors == 0, str(report)
        assert report.format == "chat"
        sizes[part] = report.n_examples
        if part != "test":  # strict: nothing OpenAI would ignore or refuse
            assert report.n_warnings == 0, str(report)
    assert sizes == {"train": prepared["n_train"], "validation": prepared["n_validation"], "test": prepared["n_test"]}
    assert prepared["n_written_errors"] == {"train": 0, "validation": 0, "test": 0}


def test_every_label_in_every_split_and_no_test_text_seen_in_training(prepared):
    data = Path(prepared["_run_dir"]) / "data"
    parts = {p: read_jsonl(data / f"{p}.jsonl") for p in ("train", "validation", "test")}
    for part, examples in parts.items():
        answers = Counter(e["messages"][-1]["content"] for e in examples)
        assert sorted(answers) == (LABELS if part == "test" else INTENTS), part
        assert all(e["messages"][0] == {"role": "system", "content": prepared["system_prompt"]} for e in examples)
    seen = {user_text(e).casefold() for e in parts["train"]}
    assert not seen & {user_text(e).casefold() for e in parts["validation"] + parts["test"]}


def test_test_file_keeps_ids_and_labels_train_files_do_not(prepared):
    data = Path(prepared["_run_dir"]) / "data"
    test = read_jsonl(data / "test.jsonl")
    tickets = read_table(SAMPLE).set_index("id")
    assert len({e["id"] for e in test}) == len(test)
    for example in test:
        assert example["label"] == example["messages"][-1]["content"]
        row = tickets.loc[example["id"]]  # the id still points at its source row
        assert row["label"] == example["label"] and row["text"] == user_text(example)
    for part in ("train", "validation"):
        assert all(set(e) == {"messages"} for e in read_jsonl(data / f"{part}.jsonl"))


def test_cost_and_epochs_match_the_training_file(prepared):
    train = read_jsonl(Path(prepared["_run_dir"]) / "data" / "train.jsonl")
    estimate = estimate_cost(train, prepared["model"], n_epochs="auto")
    assert prepared["n_epochs"] == auto_n_epochs(len(train)) == estimate.n_epochs
    assert prepared["billed_tokens"] == estimate.billed_tokens > 0
    assert prepared["usd"] == estimate.usd


def test_broken_file_codes_are_the_planted_ones(prepared):
    planted = {code for line, code in PLANTED.items()}
    assert prepared["broken_warning_codes"] == ["unrecognized_key"]
    assert prepared["broken_error_codes"] == sorted(planted - {"unrecognized_key"})


def test_executed_notebook_has_no_errors_and_shows_the_browser(prepared):
    nb = nbformat.read(prepared["_executed"], as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    [browser_cell] = [c for c in nb.cells if "DatasetBrowser(" in c.source]
    [shown] = [o for o in browser_cell.outputs if o.output_type in ("display_data", "execute_result")]
    # static table when FTUTILS_INTERACTIVE=0, else a live widget; either way something was shown
    assert "<table" in shown["data"].get("text/html", "") or "application/vnd.jupyter.widget-view+json" in shown["data"]
    assert not [o for o in outputs if TEST_KEY in str(o.get("text", "")) + str(o.get("data", ""))]
