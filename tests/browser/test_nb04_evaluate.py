"""04_evaluate in JupyterLab: the confusion matrix answers a click, the error explorer its
filters, and every figure is drawn."""
from __future__ import annotations

import re


def test_confusion_errors_and_plots(run_notebook):
    nb = run_notebook("04_evaluate", timeout=150)

    # Clicking a confusion-matrix cell lists exactly the items it counts.
    grid = nb.output_of("ConfusionWidget.from_evaluation(")
    button = grid.locator("button:not([disabled])").first
    count, title = int(button.inner_text()), button.get_attribute("title")
    true, pred = re.fullmatch(r"true (.+), predicted (.+)", title).groups()
    button.click()
    listing = grid.locator(".widget-output")
    listing.locator("li").first.wait_for()
    assert f"true {true}, predicted {pred}: {count}" in listing.inner_text()
    assert listing.locator("li").count() == count

    # The error explorer: choosing a true label shows only that label's errors, fewer than all.
    explorer = nb.output_of("ErrorExplorer.from_evaluation(")

    def shown() -> tuple[int, list[str]]:
        text = explorer.locator(".widget-output").inner_text()
        total = int(re.search(r"(\d+) errors?\b", text).group(1))
        return total, re.findall(r"expected: (\S+)", text)

    all_errors, expected = shown()
    assert all_errors > 0 and expected
    label = sorted(set(expected))[0]
    explorer.locator(".widget-dropdown", has_text="true").locator("select").select_option(label)
    nb.page.wait_for_function(
        "([el, before]) => !el.innerText.includes(before)",
        arg=[explorer.locator(".widget-output").element_handle(), f"{all_errors} error"], timeout=10000)
    some_errors, expected = shown()
    assert 0 < some_errors < all_errors and set(expected) == {label}

    # The figures (the confusion matrix is the widget above, shown once), and every other image on the page, drawn and loaded.
    for code in ("as_image(plot_out_of_scope(", "as_image(plot_per_class_f1(", "as_image(plot_checkpoints("):
        widths = nb.images_loaded(nb.output_of(code))
        assert widths and all(w > 300 for w in widths), (code, widths)
    widths = nb.images_loaded(nb.page.locator(".jp-Notebook"))
    assert len(widths) >= 3 and all(w > 300 for w in widths), widths
    assert nb.widget_problems() == []
    assert nb.layout_problems() == []
    assert nb.console_errors == []
