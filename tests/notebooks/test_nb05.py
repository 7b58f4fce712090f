"""05_iterate run by papermill after 01 -> 04 on the tiny model: it reads the first run's
next_run, runs 02 -> 04 again into a second folder with the changed parameters (and fewer
candidates), and compares the two runs with deltas and a paired test."""
import json
from pathlib import Path

import pytest

from ftutils.evaluate import read_evaluation
from ftutils.train.runs import load_record, read_manifest
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

    # The second run really ran with the change: out-of-scope rows trained on, fewer candidates.
    prepared = load_record(second, "02_prepare")
    assert prepared["train_out_of_scope"] is True and prepared["out_of_scope"]["train"] > 0
    assert load_record(first, "02_prepare")["out_of_scope"]["test"] == prepared["out_of_scope"]["test"]
    assert read_manifest(second)["base_model"] == "tiny-smollm2"
    assert load_record(second, "04_evaluate")["candidates"] == ["base", "fine-tuned", "tfidf-logreg"]
    assert sorted(p.name for p in (second / "notebooks").glob("*.ipynb")) == \
        ["02_prepare.ipynb", "03_train.ipynb", "04_evaluate.ipynb"]

    # The verdict follows the one rule, from the paired numbers it recorded.
    assert isinstance(values["significant"], bool) and 0 <= values["mcnemar_p"] <= 1
    assert set(values["out_of_scope_forced"]) == {first.name, second.name}

    book = json.loads(Path(values["_executed"]).read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1  # the runs compared
