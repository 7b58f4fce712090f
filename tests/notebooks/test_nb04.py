"""04_evaluate run by papermill after 01 -> 02 -> 03 on the tiny model: every candidate
evaluated on the same test items, the paired test, recommendations, evaluation.json and
report.md in the run folder, and the run comparison."""
import json
from pathlib import Path

import pytest

from ftutils.train.runs import read_manifest

pytestmark = pytest.mark.slow


def test_evaluate_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("04_evaluate")
    run_dir = Path(values["_run_dir"])
    manifest = read_manifest(run_dir)
    # The last checkpoint is the final model under another id, so it is not evaluated twice.
    earlier = [f"step-{c['step']}" for c in manifest["checkpoints"] if c["step"] != manifest["final_metrics"]["step"]]
    assert earlier and len(earlier) == len(manifest["checkpoints"]) - 1
    assert values["candidates"] == ["base", "zero-shot", "few-shot-8", "fine-tuned", *earlier, "tfidf-logreg"]
    test_items = (run_dir / "data" / "test.jsonl").read_text().count("\n")
    assert values["n_test"] == test_items and values["best"] in values["candidates"]
    assert values["methods"]["tfidf-logreg"] == "baseline"
    assert all(values["methods"][c] in ("score", "generate") for c in values["candidates"][:-1])
    assert all(0 <= values["accuracy"][c] <= 1 and 0 <= values["macro_f1"][c] <= 1 for c in values["candidates"])
    assert [p["against"] for p in values["paired"]] == ["base", "zero-shot", "few-shot-8", "tfidf-logreg"]
    assert "significance" in values["recommendation_kinds"]
    # Out-of-scope test items are counted for every candidate; the epochs beside their validation loss.
    assert set(values["out_of_scope_forced"]) == set(values["candidates"])
    assert [e["step"] for e in values["epochs"]] == sorted(c["step"] for c in manifest["checkpoints"])
    assert set(values["next_run"]) == {"params", "why", "later"}

    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert [c["name"] for c in evaluation["candidates"]] == values["candidates"]
    assert evaluation["candidates"][values["candidates"].index("fine-tuned")]["model"] == manifest["fine_tuned_model"]
    assert {c["name"]: c["metrics"]["accuracy"] for c in evaluation["candidates"]} == values["accuracy"]
    assert all(len(p) == test_items for p in evaluation["predictions"].values())
    assert evaluation["next_run"] == values["next_run"]
    report = (run_dir / "report.md").read_text()
    assert manifest["fine_tuned_model"] in report and "## Recommendations" in report

    book = json.loads(Path(values["_executed"]).read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # Out-of-scope counts, confusion matrix, per-class F1 and the epochs, each as a PNG.
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
