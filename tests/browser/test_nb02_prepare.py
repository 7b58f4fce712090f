"""02_prepare in JupyterLab: the dataset browser answers its controls, the figures are there."""
from __future__ import annotations

import re


def cards(browser) -> list[tuple[int, str]]:
    """(index, label) of each example card the dataset browser shows now."""
    found = []
    for text in browser.locator(".widget-output div[style*='border']").all_inner_texts():
        match = re.match(r"#(\d+).*?label (\S+)", text.replace("\n", " "))
        found.append((int(match.group(1)), match.group(2)))
    return found


def selected(browser) -> int:
    """How many examples the browser's status line says are selected."""
    return int(re.search(r"(\d+) of \d+ examples", browser.inner_text()).group(1))


def test_dataset_browser_and_figures(run_notebook):
    nb = run_notebook("02_prepare", timeout=120)

    browser = nb.output_of("DatasetBrowser(examples")
    first = cards(browser)
    assert len(first) == 8  # page_size=8 in the notebook
    labels = sorted({label for _, label in first})
    total = selected(browser)
    # The system prompt all examples share is said once, above the cards, not on each.
    assert browser.inner_text().count("the same in every example") == 1
    assert not any("system:" in card for card in browser.locator(".widget-output div[style*='border']").all_inner_texts())

    # A label filter: every card shown now has that label, and fewer examples are selected.
    browser.locator(".widget-dropdown", has_text="label").locator("select").select_option(labels[0])
    nb.page.wait_for_timeout(500)
    filtered = cards(browser)
    assert filtered and {label for _, label in filtered} == {labels[0]}
    assert 0 < selected(browser) < total

    # The next page shows other examples of the same label.
    browser.locator("button", has_text="next").click()
    nb.page.wait_for_timeout(500)
    second = cards(browser)
    assert second and {label for _, label in second} == {labels[0]}
    assert {i for i, _ in second}.isdisjoint(i for i, _ in filtered)
    assert "page 2 of" in browser.inner_text()
    assert browser.inner_text().count(" examples · page ") == 1  # one status line, not two

    # The token histogram and the label balance, drawn (not "<Figure size ...>" text).
    for code in ("token_histogram(stats", "label_balance(hygiene"):
        widths = nb.images_loaded(nb.output_of(code))
        assert widths and all(w > 300 for w in widths), (code, widths)
    assert nb.widget_problems() == []
    assert nb.layout_problems() == []
    assert nb.console_errors == []
