"""DatasetBrowser without a browser: its data methods, its static form, and its live UI
driven the way a click would drive it."""
from __future__ import annotations

import pandas as pd
import pytest

from ftutils.data.findings import Finding, ValidationReport
from ftutils.data.tokens import token_stats
from ftutils.widgets.browser import DatasetBrowser


def example(i: int, label: str, text: str) -> dict:
    return {"messages": [{"role": "system", "content": "Classify the ticket."},
                         {"role": "user", "content": text},
                         {"role": "assistant", "content": label}],
            "id": f"t{i:03d}", "label": label}


LABELS = ["billing", "refund", "shipping"]
EXAMPLES = [example(i, LABELS[i % 3], "word " * (1 + i)) for i in range(25)]  # lengths grow with i
FINDINGS = [Finding("exact_duplicate", "warning", 3, "messages", "same as line 1"),
            Finding("exact_duplicate", "warning", 4, "messages", "same as line 1"),
            Finding("empty_content", "error", 4, "messages[1].content", "empty"),
            Finding("too_few_examples", "warning", None, "", "whole file")]


@pytest.fixture()
def browser():
    return DatasetBrowser(EXAMPLES, findings=FINDINGS, stats=token_stats(EXAMPLES), page_size=10)


def test_filters_by_label_tokens_and_code_combined(browser):
    lengths = token_stats(EXAMPLES)["n_tokens"].tolist()
    assert browser.filter() == list(range(25))
    assert browser.filter(label="refund") == [i for i in range(25) if i % 3 == 1]
    assert browser.filter(min_tokens=lengths[10]) == list(range(10, 25))
    assert browser.filter(max_tokens=lengths[4]) == list(range(5))
    assert browser.filter(label="billing", min_tokens=lengths[5], max_tokens=lengths[20]) == [6, 9, 12, 15, 18]
    # Finding lines are 1-based positions; a whole-file finding (line None) marks nothing.
    assert browser.filter(code="exact_duplicate") == [2, 3]
    assert browser.filter(code="empty_content") == [3]
    assert browser.filter(code="too_few_examples") == []
    assert browser.filter(label="nope") == []
    assert browser.labels == LABELS
    assert browser.codes == ["empty_content", "exact_duplicate"]


def test_pages_follow_the_selection(browser):
    assert browser.n_pages == 3
    first = browser.page(0)
    assert isinstance(first, pd.DataFrame)
    assert list(first.index) == list(range(10))
    assert list(first.columns) == ["id", "label", "user", "assistant", "n_messages", "n_tokens", "findings"]
    assert first.loc[3, "findings"] == "exact_duplicate, empty_content"
    assert first.loc[1, "assistant"] == "refund" and first.loc[1, "id"] == "t001"
    assert list(browser.page(2).index) == list(range(20, 25))
    with pytest.raises(IndexError, match="page 3 does not exist"):
        browser.page(3)

    assert browser.select(label="shipping") == [2, 5, 8, 11, 14, 17, 20, 23]
    assert browser.n_pages == 1 and list(browser.page(0).index) == [2, 5, 8, 11, 14, 17, 20, 23]
    browser.select(label="nope")
    assert browser.page(0).empty and browser.n_pages == 1


def test_static_is_the_first_page_and_shows_without_a_kernel(browser, monkeypatch, capsys):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    pd.testing.assert_frame_equal(browser.static(), browser.page(0))
    browser._ipython_display_()
    shown = capsys.readouterr().out
    assert "t000" in shown and "billing" in shown and browser.widget is None


def test_long_text_is_shortened_in_the_table_but_not_in_the_html():
    text = "a long complaint " * 40 + "<script>x</script>"
    b = DatasetBrowser([example(0, "refund", text)])
    cell = b.page(0).loc[0, "user"]
    assert len(cell) == 160 and cell.endswith("…")
    page = b.render_html(0)
    assert "&lt;script&gt;" in page and "<script>" not in page  # escaped, never run
    assert page.count("a long complaint") == 40


def test_accepts_a_report_and_computes_stats_itself():
    report = ValidationReport(findings=FINDINGS[:2], n_examples=25)
    b = DatasetBrowser(EXAMPLES, findings=report)
    assert b.filter(code="exact_duplicate") == [2, 3]
    assert b.n_tokens == token_stats(EXAMPLES)["n_tokens"].tolist()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="page_size"):
        DatasetBrowser(EXAMPLES, page_size=0)
    with pytest.raises(ValueError, match="stats has 2 rows but there are 25 examples"):
        DatasetBrowser(EXAMPLES, stats=token_stats(EXAMPLES[:2]))
    with pytest.raises(TypeError, match="example 1 is a list"):
        DatasetBrowser([EXAMPLES[0], ["not", "an", "example"]])


def test_render_copes_with_unusual_messages():
    odd = {"messages": [{"role": "narrator", "content": "hm"}, "not a message",
                        {"role": "user", "content": [{"type": "text", "text": "parts"}]}]}
    page = DatasetBrowser([odd, {"messages": []}]).render_html(0)
    assert "narrator" in page and "parts" in page and "not a message" in page
    assert "(no messages)" in page


def test_live_ui_filters_and_pages_through_its_output_widget(browser):
    ui = browser.build()
    c = browser.controls
    out = c["output"]

    def shown() -> str:
        assert len(out.outputs) == 1  # replaced, never piled up
        return out.outputs[0]["data"]["text/html"]

    assert "page 1 of 3" in shown() and "#0<" in shown() and "#10<" not in shown()
    assert c["prev"].disabled and not c["next"].disabled
    c["next"].click()
    assert "page 2 of 3" in shown() and "#10<" in shown() and "#9<" not in shown()
    c["next"].click()
    c["next"].click()  # past the end stays on the last page
    assert browser.current_page == 2 and c["next"].disabled
    c["label"].value = "refund"
    assert browser.current_page == 0 and browser.selection == browser.filter(label="refund")
    assert "8 of 25 examples" in shown()
    c["code"].value = "exact_duplicate"
    assert browser.selection == [] and "0 of 25 examples" in shown()
    c["label"].value = "(all)"
    assert browser.selection == [2, 3] and "exact_duplicate" in shown()
    assert 'title="exact_duplicate: same as line 1&#10;empty_content: empty"' in shown().replace("\n", "&#10;")
    c["code"].value = "(all)"
    lo, _ = c["tokens"].value
    c["tokens"].value = (lo, browser.n_tokens[4])
    assert browser.selection == [0, 1, 2, 3, 4]
    assert ui.children[-1] is out
