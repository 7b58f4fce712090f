"""evaluation.json and report.md, comparing run folders, and explaining a class. The
evaluation `ev` built here is shared with tests/plots/test_evaluation.py and the widget tests
(tests/widgets/test_confusion.py, test_error_explorer.py)."""
from __future__ import annotations

import json

import pytest
from matplotlib.figure import Figure

from ftutils.evaluate.compare import compare_runs
from ftutils.evaluate.report import read_evaluation, write_evaluation
from ftutils.plots.evaluation import plot_runs
from tests.evaluate.helpers import MANIFEST, evaluation, preds


@pytest.fixture(scope="module")
def ev():
    return evaluation({
        "base": ("base", None, preds({i: "billing" for i in range(14, 40, 2)}, unparseable={0, 2, 4}, raw="Hmm")),
        "fine-tuned": ("fine_tuned", 20, preds({0: "refund", 1: "refund", 20: "shipping"})),
        "step-10": ("checkpoint", 10, preds({0: "refund", 5: "shipping", 6: "shipping", 30: "billing"})),
        "tfidf-logreg": ("baseline", None, preds({i: "shipping" for i in range(14, 20)}, method="baseline")),
    }, {**MANIFEST, "base_model": "tiny-smollm2", "fine_tuned_model": "ft:tiny-smollm2:local::abc"})


def test_write_evaluation_json_and_markdown(tmp_path, ev):
    paths = write_evaluation(tmp_path, ev)
    data = read_evaluation(tmp_path)
    assert data == json.loads(paths["json"].read_text())
    assert [c["name"] for c in data["candidates"]] == ["base", "fine-tuned", "step-10", "tfidf-logreg"]
    assert data["candidates"][1]["metrics"]["accuracy"] == pytest.approx(37 / 40)
    first = data["predictions"]["base"][0]
    assert (first["id"], first["pred"], first["raw"], first["text"]) == ("t00", None, "Hmm", "ticket 0 about billing")
    assert [r["kind"] for r in data["recommendations"]] == [r.kind for r in ev.recommendations]
    assert data["kept"] == "fine-tuned" and data["next_run"] == ev.advice.next_run
    md = paths["markdown"].read_text()
    assert "- **Fine-tuned model:** ft:tiny-smollm2:local::abc" in md
    assert "| fine-tuned | fine_tuned | 20 | score | 0.925 |" in md
    assert "| fine-tuned | base | 0.925 vs 0.600 |" in md
    assert "## Confusion matrix of fine-tuned" in md and "| billing | 12 | 2 | 0 | 0 |" in md
    assert md.count("\n1. ") == 1 and ev.recommendations[0].message in md and "**Next run:**" in md
    with pytest.raises(FileNotFoundError, match="no evaluation; run 04_evaluate"):
        read_evaluation(tmp_path / "nothing")


def test_compare_runs_reads_run_folders(tmp_path, ev):
    for name, epochs, lr in (("e4", 4, 2.0), ("e2", 2, 1.0)):
        folder = tmp_path / "runs" / name
        write_evaluation(folder, ev)
        manifest = {"base_model": "tiny-smollm2", "hyperparameters": {"n_epochs": epochs, "batch_size": 8,
                    "learning_rate_multiplier": lr}, "final_metrics": {"train_loss": 0.1 * epochs},
                    "diagnosis": {"verdict": "good"}}
        (folder / "run.json").write_text(json.dumps(manifest))
    (tmp_path / "runs" / "empty").mkdir()
    frame = compare_runs(str(tmp_path / "runs" / "*"))
    assert frame.index.tolist() == ["e2", "e4"]  # sorted by n_epochs; the empty folder left out
    assert frame.loc["e4", "n_epochs"] == 4 and frame.loc["e4", "train_loss"] == pytest.approx(0.4)
    assert frame.loc["e2", "ft_macro_f1"] == pytest.approx(ev.metrics("fine-tuned")["macro_f1"])
    assert frame.loc["e2", "ft_vs_base_p"] == pytest.approx(ev.paired[0]["mcnemar"]["p_value"])
    assert frame.loc["e2", "kept"] == "fine-tuned" and frame.loc["e2", "verdict"] == "good"
    assert compare_runs([tmp_path / "runs" / "e4"]).index.tolist() == ["e4"]
    assert compare_runs(str(tmp_path / "nope" / "*")).empty
    fig = plot_runs(frame)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 2 * 4


def test_explain_class_works_precision_recall_f1_out_of_the_matrix(ev):
    from ftutils.evaluate.report import explain_class

    text = explain_class(ev.metrics("fine-tuned"), "billing").splitlines()
    # fine-tuned: billing items t00, t01 read as refund (12/14 right); t20 (shipping) read as billing.
    assert text[0].startswith("Recall of 'billing': of the 14 test items that really are billing, the model said "
                              "billing for 12: 12/14 = 0.857")
    assert "the model said billing 12 times, 12 of them rightly: 12/12 = 1.000" in text[1]
    assert f"= {ev.metrics('fine-tuned')['per_class']['billing']['f1']:.3f}" in text[2]
    assert "of the 3 classes" in text[3] and "(0.925, the diagonal over all 40 items)" in text[3]
    frame = ev.paired_frame()
    assert frame[["model", "against"]].values.tolist() == [["fine-tuned", "base"], ["fine-tuned", "tfidf-logreg"]]
