"""The evaluation plots draw the data they are given."""
import numpy as np
import pytest

from ftutils.evaluate.scores import UNPARSEABLE
from ftutils.plots.evaluation import plot_checkpoints, plot_confusion, plot_per_class_f1
from tests.evaluate.test_report import ev  # noqa: F401 (the module-scoped evaluation fixture)


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


def test_a_zero_in_the_runs_figure_is_a_visible_stub_not_a_missing_bar():
    import pandas as pd

    from ftutils.plots.evaluation import plot_runs

    runs = pd.DataFrame({"ft_macro_f1": [0.75, 0.88], "ft_accuracy": [0.61, 0.86], "baseline_macro_f1": [0.68, 0.85],
                         "base_macro_f1": [0.0, 0.0]}, index=["demo", "demo-2"])
    ax = plot_runs(runs).axes[0]
    stubs = [p for p in ax.patches if p.get_hatch() == "////"]
    assert len(stubs) == 2 and all(0 < p.get_height() < 0.05 for p in stubs)  # one per run, for base's 0
    assert ax.get_ylabel() and ax.get_xlabel() == "run"
