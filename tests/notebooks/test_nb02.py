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


def parts(prepared) -> dict:
    data = Path(prepared["_run_dir"]) / "data"
    return {p: read_jsonl(data / f"{p}.jsonl") for p in ("train", "validation", "test", "pool")}


def test_split_sizes_add_up(prepared):
    n = prepared["n_examples"]
    files = parts(prepared)
    assert TINY["02_prepare"]["max_examples"] - 5 <= n + prepared["n_dropped"] <= TINY["02_prepare"]["max_examples"] + 5
    # The pool's out-of-scope rows are set aside (pool.jsonl), not trained on, unless train_out_of_scope is set.
    assert files["pool"] and {e["label"] for e in files["pool"]} == {"out_of_scope"}
    assert sum(map(len, files.values())) == n
    split = prepared["split"]
    assert split["stratified"] is True and split["grouped"] is True
    assert split["train"] == len(files["train"]) and split["validation"] == len(files["validation"])
    assert prepared["errors"] == 0 and prepared["n_dropped"] == 0  # CLINC's rows are distinct
    # The group-aware split leaves no test item with a sibling in train; the plain one does not do better.
    assert prepared["siblings_in_test"]["group-aware"] == 0 < prepared["siblings_in_test"]["plain"]
    assert sum(e["label"] == "out_of_scope" for e in files["test"]) > 0
    # One example through OpenAI's encoding and SmolLM2's tokenizer, both counted.
    assert [r["tokenizer"].split()[0] for r in prepared["tokens"]] == ["o200k_base", "SmolLM2"]
    assert all(r["example_tokens"] > r["user_tokens"] > 0 for r in prepared["tokens"])


def test_representativeness_and_diversity_are_measured_and_shown(prepared):
    book = nbformat.read(prepared["_executed"], as_version=4)
    [labels] = [c for c in book.cells if "coverage.label_coverage(parts)" in c.source]
    [missing] = [c for c in book.cells if "coverage.length_coverage(parts)" in c.source]
    text = "".join(o.get("text", "") for o in missing.outputs)
    # Out-of-scope is in the test split and never in train: said, with its share.
    assert "'out_of_scope':" in text and "none in train: no fine-tune on this data can learn to answer it" in text
    assert "of the test items are shorter or longer than anything in train" in text
    [clusters] = [c for c in book.cells if "coverage.clusters(train)" in c.source]
    assert "groups of similar phrasing" in "".join(o.get("text", "") for o in clusters.outputs)
    assert labels.outputs


def test_written_files_validate_cleanly_and_match_the_record(prepared):
    data = Path(prepared["_run_dir"]) / "data"
    sizes = {}
    for part in ("train", "validation", "test"):
        report = validate_file(data / f"{part}.jsonl", model="gpt-4o-mini-2024-07-18")
        assert report.ok and report.n_errors == 0, str(report)
        assert report.format == "chat"
        sizes[part] = report.n_examples
        if part != "test":  # strict: nothing OpenAI would ignore or refuse
            assert report.n_warnings == 0, str(report)
    split = prepared["split"]
    assert sizes["train"] == split["train"] and sizes["validation"] == split["validation"]
    assert sizes["test"] == split["test"] + sum(e["label"] == "out_of_scope" for e in read_jsonl(data / "test.jsonl"))


def test_every_label_in_every_split_and_no_test_text_seen_in_training(prepared):
    data = Path(prepared["_run_dir"]) / "data"
    parts = {p: read_jsonl(data / f"{p}.jsonl") for p in ("train", "validation", "test")}
    for part, examples in parts.items():
        answers = Counter(e["messages"][-1]["content"] for e in examples)
        assert sorted(answers) == (LABELS if part == "test" else INTENTS), part
        assert all(e["messages"][0] == examples[0]["messages"][0] and e["messages"][0]["role"] == "system" for e in examples)
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
    cost = prepared["cost"]
    estimate = estimate_cost(train, cost["model"], n_epochs="auto")
    assert cost["n_epochs"] == auto_n_epochs(len(train)) == estimate.n_epochs
    assert cost["billed_tokens"] == estimate.billed_tokens > 0
    assert cost["usd"] == estimate.usd


def test_broken_file_codes_are_the_planted_ones(prepared):
    assert prepared["broken"] == {code: 1 for code in PLANTED.values()}


def test_executed_notebook_has_no_errors_and_shows_the_browser(prepared):
    nb = nbformat.read(prepared["_executed"], as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    [browser_cell] = [c for c in nb.cells if "DatasetBrowser(" in c.source]
    [shown] = [o for o in browser_cell.outputs if o.output_type in ("display_data", "execute_result")]
    # static table when FTUTILS_INTERACTIVE=0, else a live widget; either way something was shown
    assert "<table" in shown["data"].get("text/html", "") or "application/vnd.jupyter.widget-view+json" in shown["data"]
    assert not [o for o in outputs if TEST_KEY in str(o.get("text", "")) + str(o.get("data", ""))]
