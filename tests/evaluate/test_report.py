"""evaluation.json and report.md, comparing run folders, the evaluation plots and the two
widgets' plain methods (and their live form, built without a browser)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.figure import Figure

from ftutils.evaluate.compare import compare_runs
from ftutils.evaluate.report import read_evaluation, write_evaluation
from ftutils.evaluate.scores import UNPARSEABLE
from ftutils.plots.evaluation import plot_checkpoints, plot_confusion, plot_per_class_f1, plot_runs
from ftutils.widgets.confusion import ConfusionWidget
from ftutils.widgets.error_explorer import ErrorExplorer
from tests.evaluate.test_recommend import MANIFEST, evaluation, preds


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
    md = paths["markdown"].read_text()
    assert "- **Fine-tuned model:** ft:tiny-smollm2:local::abc" in md
    assert "| fine-tuned | fine_tuned | 20 | score | 0.925 |" in md
    assert "| fine-tuned | base | 0.925 vs 0.600 |" in md
    assert "## Confusion matrix of fine-tuned" in md and "| billing | 12 | 2 | 0 | 0 |" in md
    assert md.count("\n1. ") == 1 and ev.recommendations[0].message in md
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
    assert frame.loc["e2", "best"] == "fine-tuned" and frame.loc["e2", "verdict"] == "good"
    assert compare_runs([tmp_path / "runs" / "e4"]).index.tolist() == ["e4"]
    assert compare_runs(str(tmp_path / "nope" / "*")).empty
    fig = plot_runs(frame)
    assert isinstance(fig, Figure) and len(fig.axes[0].patches) == 2 * 4


def test_plots_draw_the_data_they_are_given(ev):
    conf = ev.confusion("fine-tuned")
    fig = plot_confusion(conf, normalize=True)
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image, conf.to_numpy() / conf.to_numpy().sum(axis=1, keepdims=True))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["billing", "refund", "shipping", UNPARSEABLE]

    per_class = ev.per_class_f1()
    fig = plot_per_class_f1(per_class)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 12 and heights[:3] == pytest.approx(per_class["base"].tolist())

    steps = ev.checkpoints()
    assert steps["candidate"].tolist() == ["step-10", "fine-tuned"]
    fig = plot_checkpoints(steps, reference={"base": ev.metrics("base")["macro_f1"]})
    lines = fig.axes[0].get_lines()
    assert list(lines[0].get_xdata()) == [10, 20] and list(lines[0].get_ydata()) == pytest.approx(steps["macro_f1"].tolist())
    assert lines[-1].get_ydata()[0] == pytest.approx(ev.metrics("base")["macro_f1"])


def test_confusion_widget_cells_list_their_items(ev, monkeypatch):
    cm = ConfusionWidget.from_evaluation(ev, "base")
    assert cm.matrix().to_numpy().tolist() == ev.metrics("base")["confusion"]["matrix"]
    cell = cm.cell("billing", None)
    assert cell["id"].tolist() == ["t00", "t02", "t04"] and set(cell["raw"]) == {"Hmm"}
    assert cm.cell("refund", "billing")["id"].tolist() == [f"t{i}" for i in range(14, 27, 2)]
    assert cm.cell("shipping", "refund").empty
    with pytest.raises(KeyError, match="'cat' is not one of"):
        cm.cell("cat", "billing")
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    assert cm.static().equals(cm.matrix())

    ui = cm.build()  # the live form, exercised through its buttons without a browser
    grid, out = ui.children[1], ui.children[2]
    button = next(b for b in grid.children if getattr(b, "tooltip", None) == f"true billing, predicted {UNPARSEABLE}")
    button.click()
    assert "3 items" in out.outputs[0]["data"]["text/html"] and "t04" in out.outputs[0]["data"]["text/html"]


def test_error_explorer_filters_and_shows_conversations(ev):
    errors = ErrorExplorer.from_evaluation(ev, "step-10")
    assert errors.filter()["id"].tolist() == ["t00", "t05", "t06", "t30"]
    assert errors.filter(true="billing", pred="shipping")["id"].tolist() == ["t05", "t06"]
    assert errors.filter(pred=None).empty
    assert len(errors.filter(errors_only=False)) == 40
    assert errors.conversation("t30") == ("user: ticket 30 about shipping\nexpected: shipping\n"
                                          "model said: 'billing' -> billing")
    with pytest.raises(KeyError):
        errors.conversation("nope")
    assert errors.static()["id"].tolist() == ["t00", "t05", "t06", "t30"]
    ui = errors.build()
    true, pred = ui.children[1].children
    true.value = "billing"
    assert ui.children[2].outputs[0]["data"]["text/html"].count("<pre") == 3


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
