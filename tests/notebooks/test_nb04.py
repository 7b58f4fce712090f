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
    assert values["candidates"] == ["base", "fine-tuned", *earlier, "tfidf-logreg"]
    assert values["n_test"] == 16 and values["best"] in values["candidates"]
    assert values["methods"]["tfidf-logreg"] == "baseline"
    assert all(values["methods"][c] in ("score", "generate") for c in values["candidates"][:-1])
    assert all(0 <= values["accuracy"][c] <= 1 and 0 <= values["macro_f1"][c] <= 1 for c in values["candidates"])
    assert [p["against"] for p in values["paired"]] == ["base", "tfidf-logreg"]
    assert {"significance", "baseline"} <= set(values["recommendation_kinds"])
    assert values["n_runs_compared"] >= 1

    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    assert [c["name"] for c in evaluation["candidates"]] == values["candidates"]
    assert evaluation["candidates"][1]["model"] == manifest["fine_tuned_model"]
    assert {c["name"]: c["metrics"]["accuracy"] for c in evaluation["candidates"]} == values["accuracy"]
    assert all(len(p) == 16 for p in evaluation["predictions"].values())
    report = (run_dir / "report.md").read_text()
    assert manifest["fine_tuned_model"] in report and "## Recommendations" in report

    book = json.loads(Path(values["_executed"]).read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # Confusion matrix, per-class F1, checkpoints and runs compared, each as a PNG.
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 4
