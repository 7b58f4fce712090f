"""The 02_prepare plots: the right marks in the right places, from data alone."""
from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from ftutils.plots.data import HIGHLIGHT, NORMAL, label_balance, token_histogram


def vertical_lines_at(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines if line.get_xdata()[0] == line.get_xdata()[1]]


def test_histogram_marks_the_limit_and_colours_bars_past_it():
    lengths = [20, 25, 30, 30, 35, 40, 120, 130]
    fig = token_histogram(lengths, limit=100)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert 100 in vertical_lines_at(ax)
    assert "limit 100 tokens (2 over)" in ax.get_legend().get_texts()[0].get_text()
    bars = [p for p in ax.patches if p.get_height() > 0]
    assert sum(p.get_height() for p in bars) == len(lengths)
    past = [p for p in bars if p.get_x() >= 100]
    assert past and all(to_hex(p.get_facecolor()) == HIGHLIGHT for p in past)
    assert all(to_hex(p.get_facecolor()) == NORMAL for p in bars if p.get_x() + p.get_width() <= 100)
    assert "n=8" in ax.get_title()


def test_histogram_names_a_far_limit_instead_of_squashing_the_bars():
    fig = token_histogram(pd.Series([30, 40, 50, 60]), limit=65_536)
    ax = fig.axes[0]
    assert 65_536 not in vertical_lines_at(ax)
    assert ax.get_xlim()[1] < 1000
    assert "training limit 65,536: far to the right, 0 over" in ax.get_xlabel()


def test_histogram_without_limit_has_no_limit_marks():
    ax = token_histogram([5, 6, 7]).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["median 6"]
    assert "limit" not in ax.get_xlabel()


@pytest.mark.parametrize("bad", [[], [3, -1], [float("nan"), 2]])
def test_histogram_rejects_bad_lengths(bad):
    with pytest.raises(ValueError, match="token_histogram"):
        token_histogram(bad)


def test_label_balance_highlights_the_rare_class_only():
    counts = {"billing": 60, "refund": 55, "shipping": 58, "cancel_subscription": 11}
    ax = label_balance(counts).axes[0]
    colors = {t.get_text(): to_hex(bar.get_facecolor()) for t, bar in zip(ax.get_yticklabels(), ax.patches)}
    assert colors == {"billing": NORMAL, "shipping": NORMAL, "refund": NORMAL, "cancel_subscription": HIGHLIGHT}
    assert [t.get_text() for t in ax.get_yticklabels()][0] == "billing"  # largest first
    assert "under-represented: cancel_subscription" in ax.get_title()
    assert any(t.get_text().strip() == "11 (6%)" for t in ax.texts)


def test_label_balance_takes_series_and_frames_and_explicit_highlight():
    series = pd.Series(["a", "a", "b", "b", "c"]).value_counts()
    ax = label_balance(series, highlight=["c"]).axes[0]
    assert [to_hex(p.get_facecolor()) for p in ax.patches] == [NORMAL, NORMAL, HIGHLIGHT]
    frame = pd.DataFrame({"label": ["x", "y"], "count": [10, 10]})
    ax = label_balance(frame).axes[0]
    assert all(to_hex(p.get_facecolor()) == NORMAL for p in ax.patches)
    assert "under-represented" not in ax.get_title()


def test_label_balance_rejects_what_is_not_counts():
    with pytest.raises(ValueError, match="at least one label"):
        label_balance({})
    with pytest.raises(TypeError, match="label counts"):
        label_balance(["a", "b"])
    with pytest.raises(ValueError, match="'count' column"):
        label_balance(pd.DataFrame({"label": ["a"], "share": [1.0]}))


def test_plots_leave_no_open_pyplot_figures():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    token_histogram([1, 2, 3], limit=2)
    label_balance({"a": 1})
    assert len(plt.get_fignums()) == before
