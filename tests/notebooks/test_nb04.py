"""04_evaluate run by papermill after 01 -> 02 -> 03 on the tiny model: every candidate
evaluated on the same test items, the kept model paired against the alternatives, the advice
(at most five, none naming a test item, none disagreeing), evaluation.json and report.md."""
import json
from pathlib import Path

import nbformat
import pytest

from ftutils.evaluate.candidates import load_examples
from ftutils.evaluate.advice import Advice, Recommendation
from ftutils.evaluate.policy_rules import violations
from ftutils.train.runs import read_manifest

pytestmark = pytest.mark.slow


def test_evaluate_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("04_evaluate")
    run_dir = Path(values["_run_dir"])
    manifest = read_manifest(run_dir)
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    recorded = values["evaluation"]
    names = [c["name"] for c in evaluation["candidates"]]
    # The last checkpoint is the final model under another id, so it is not evaluated twice.
    earlier = [f"step-{c['step']}" for c in manifest["checkpoints"] if c["step"] != manifest["final_metrics"]["step"]]
    assert earlier and names == ["base", "zero-shot", "few-shot-8", "fine-tuned", *earlier, "tfidf-logreg"]
    assert [c["name"] for c in recorded["candidates"]] == names
    test_items = load_examples(run_dir / "data" / "test.jsonl")
    assert evaluation["n_test"] == len(test_items) and all(len(p) == len(test_items) for p in evaluation["predictions"].values())
    methods = {c["name"]: c["method"] for c in evaluation["candidates"]}
    assert methods["tfidf-logreg"] == "baseline" and all(methods[n] in ("score", "generate") for n in names[:-1])
    assert all(0 <= c["metrics"]["accuracy"] <= 1 for c in evaluation["candidates"])
    # The kept model is 03's, by validation; every paired test is of it.
    kept = evaluation["kept"]
    best = manifest["diagnosis"]["best_checkpoint_step"]
    assert kept == ("fine-tuned" if best == manifest["final_metrics"]["step"] else f"step-{best}")
    assert {p["b"] for p in evaluation["paired"]} == {kept}
    assert [p["a"] for p in evaluation["paired"]] == (["fine-tuned"] if kept != "fine-tuned" else []) + [
        "base", "zero-shot", "few-shot-8", "tfidf-logreg"]
    # The ceiling: out-of-scope is in the test split, never in train.
    assert evaluation["ceiling"]["untrained"] == {"out_of_scope": sum(ex.label == "out_of_scope" for ex in test_items)}
    # The advice: at most five, ranked, each with its number, naming no test item, none disagreeing.
    recs = [Recommendation(**r) for r in evaluation["recommendations"]]
    assert 1 <= len(recs) <= 5 and recs[0].kind == "keep"
    assert violations(Advice(recs), manifest, test_items) == []
    assert evaluation["next_run"]["params"] == {k: v for r in recs for k, v in r.change.items()}
    assert [e["step"] for e in values["epochs"]] == sorted(c["step"] for c in manifest["checkpoints"])
    report = (run_dir / "report.md").read_text()
    assert manifest["fine_tuned_model"] in report and "## Recommendations" in report and "**Next run:**" in report

    book = nbformat.read(values["_executed"], as_version=4)  # sources and texts as strings
    sources = ["".join(c["source"]) for c in book["cells"]]
    assert any("conn.client.chat.completions.create(" in s and "logprobs=True" in s for s in sources)
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # Out-of-scope counts, per-class F1 and the epochs as PNGs; the confusion matrix once, as the widget's table.
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 3
    assert sum("ConfusionWidget.from_evaluation(" in s for s in sources) == 1
    assert not any("plot_confusion" in s for s in sources)
