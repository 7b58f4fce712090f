"""One colour per candidate in every plot; a bar of 0 stays visible."""
import pandas as pd
from matplotlib import colors

from ftutils.plots.evaluation import plot_out_of_scope, plot_per_class_f1
from ftutils.plots.palette import FIXED, candidate_colours


def test_each_candidate_keeps_its_colour_and_checkpoints_shade_in_order():
    names = ["base", "zero-shot", "few-shot-8", "fine-tuned", "step-40", "step-20", "tfidf-logreg"]
    palette = candidate_colours(names)
    assert palette["base"] == FIXED["base"] and palette["few-shot-8"] == FIXED["few-shot"]
    assert len(set(palette.values())) == len(names)
    assert candidate_colours(["fine-tuned", "base"]) == {"fine-tuned": palette["fine-tuned"], "base": palette["base"]}
    # Later checkpoints are darker.
    lum = {n: sum(colors.to_rgb(palette[n])) for n in ("step-20", "step-40")}
    assert lum["step-40"] < lum["step-20"]


def test_bars_use_the_palette_and_a_zero_shows_as_a_stub():
    per_class = pd.DataFrame({"base": [0.0, 0.5], "fine-tuned": [0.8, 1.0]}, index=["a", "b"])
    fig = plot_per_class_f1(per_class)
    ax = fig.axes[0]
    bars = [p for p in ax.patches if p.get_hatch() is None]
    stubs = [p for p in ax.patches if p.get_hatch()]
    assert [colors.to_hex(p.get_facecolor()) for p in bars] == [FIXED["base"]] * 2 + [FIXED["fine-tuned"]] * 2
    assert len(stubs) == 1 and stubs[0].get_height() > 0 and colors.to_hex(stubs[0].get_edgecolor()) == FIXED["base"]
    assert ax.get_xlabel() and ax.get_ylabel()

    fig = plot_out_of_scope({"base": (12, 40), "fine-tuned": (40, 40), "tfidf-logreg": (0, 40)})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["12/40", "40/40", "0/40"]
    assert sum(1 for p in ax.patches if p.get_hatch()) == 1 and ax.get_xlabel() and ax.get_ylabel()
