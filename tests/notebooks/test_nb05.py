"""05_iterate run by papermill after 01 -> 04 on the tiny model: it reads the first run's
next_run, builds the second run's data from the first run's files (no second 02_prepare),
runs 03 -> 04 into a second folder, and compares the two runs on what they share."""
from pathlib import Path

import nbformat
import pytest

from ftutils.data.load import read_jsonl
from ftutils.evaluate import read_evaluation
from ftutils.train.runs import read_manifest
from tests.notebooks.conftest import TINY

pytestmark = pytest.mark.slow


def test_iterate_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("05_iterate")
    first = Path(values["_run_dir"])
    second = first.parent / values["second_run"]
    assert values["second_run"] == first.name + "-2" and values["runs_compared"] == [first.name, second.name]
    # The proposal is the first evaluation's own; our change goes on top of it.
    assert values["proposal"] == read_evaluation(first)["next_run"]
    assert values["changed"] == {**values["proposal"]["params"], **TINY["05_iterate"]["changes"]}

    # The second run's data: the first's, with the pool added; the very same test file.
    data = {run: {p: read_jsonl(run / "data" / f"{p}.jsonl") for p in ("train", "validation", "test")} for run in (first, second)}
    pool = read_jsonl(first / "data" / "pool.jsonl")
    assert (second / "data" / "test.jsonl").read_bytes() == (first / "data" / "test.jsonl").read_bytes()
    assert len(data[second]["train"]) + len(data[second]["validation"]) == \
        len(data[first]["train"]) + len(data[first]["validation"]) + len(pool)
    assert any(e["messages"][-1]["content"] == "out_of_scope" for e in data[second]["train"])
    assert read_manifest(second)["base_model"] == "tiny-smollm2"
    second_eval = read_evaluation(second)
    names = [c["name"] for c in second_eval["candidates"]]
    assert names[0] == "base" and "fine-tuned" in names and names[-1] == "tfidf-logreg" and second_eval["kept"] in names
    # 02 did not run again, and the base model's answers are the first run's, not asked again.
    assert sorted(p.name for p in (second / "notebooks").glob("*.ipynb")) == ["03_train.ipynb", "04_evaluate.ipynb"]
    assert second_eval["predictions"]["base"] == read_evaluation(first)["predictions"]["base"]

    # The verdict follows the one rule, from the paired numbers it recorded.
    pair = values["pair"]
    assert isinstance(pair["significant"], bool) and 0 <= pair["mcnemar"]["p_value"] <= 1
    assert pair["out_of_scope"]["n"] > 0

    book = nbformat.read(values["_executed"], as_version=4)  # sources and texts as strings
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the runs compared
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    assert "not compared: validation loss" in text  # the second run validates on out-of-scope rows too
    # The progress lines carry the job's step and loss, and none repeats the one before.
    lines = [line for line in text.splitlines() if "/03_train] cell" in line]
    assert all(" · ftjob-" in line for line in lines if "monitor = JobMonitor" in line)
    assert len(lines) == len(set(lines))
