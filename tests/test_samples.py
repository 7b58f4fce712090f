"""The committed sample data has the properties 02_prepare and its teaching rely on, and the
validator finds every problem planted in broken_train.jsonl exactly where README.md says."""
from __future__ import annotations

import re

import pandas as pd
import pytest

from ftutils.data import advice, hygiene
from ftutils.data.convert import from_text_label
from ftutils.data.validate import validate_file
from tests.conftest import ROOT

SAMPLES = ROOT / "data" / "samples"
LABELS = {"billing", "refund", "shipping", "account_access", "technical_issue", "cancel_subscription"}
# line -> code, as planted by make_samples.broken_lines() and listed in README.md.
PLANTED = {2: "invalid_json", 3: "missing_messages", 4: "unknown_role", 5: "invalid_weight",
           6: "missing_assistant_message", 8: "empty_content", 9: "special_token", 10: "unrecognized_key",
           11: "legacy_prompt_completion", 12: "missing_role", 13: "missing_content", 14: "not_an_object",
           15: "empty_messages"}
CLEAN_LINES = {1, 7, 16, 17}
# (original id, edited copy id) of the near duplicates make_samples.py planted.
PLANTED_NEAR = [("t0194", "t0219"), ("t0159", "t0308"), ("t0096", "t0312")]


@pytest.fixture(scope="module")
def tickets() -> pd.DataFrame:
    return pd.read_csv(SAMPLES / "support_tickets.csv", dtype=str, keep_default_na=False)


def test_tickets_have_enough_rows_six_labels_and_one_rare_class(tickets):
    assert list(tickets.columns) == ["id", "text", "label"]
    assert len(tickets) >= 300
    assert tickets["id"].is_unique
    assert set(tickets["label"]) == LABELS
    assert all(re.fullmatch(r"[a-z_]+", label) for label in LABELS)  # short answers a small model can emit
    share = tickets["label"].value_counts(normalize=True)
    rare = share[share < 0.08]
    assert list(rare.index) == ["cancel_subscription"]
    assert (share.drop("cancel_subscription") > 0.15).all()
    lengths = tickets["text"].str.len()
    assert lengths.min() >= 20 and lengths.max() <= 200  # one or two sentences
    assert tickets["text"].str.contains(r"#[A-Z]\d{5}").sum() >= 20  # order numbers


def test_tickets_hold_exact_and_near_duplicates(tickets):
    texts = tickets["text"]
    assert texts.duplicated().sum() == 3
    folded = texts.str.lower().str.replace(r"[^\w\s]", "", regex=True).str.split().str.join(" ")
    assert folded.duplicated().sum() == 3 + 5  # plus the case/punctuation/spacing variants
    # duplicates keep their label: they are repeated tickets, not conflicting ones
    assert tickets.groupby(folded)["label"].nunique().max() == 1


def test_hygiene_finds_the_planted_duplicates_and_the_rare_class(tickets):
    examples = from_text_label(tickets, id="id", system_prompt="Classify the ticket.")
    pairs = hygiene.find_duplicates(examples)
    ids = tickets["id"].tolist()
    found = {(ids[a - 1], ids[b - 1]): kind for a, b, kind in zip(pairs["line_a"], pairs["line_b"], pairs["kind"])}
    assert list(found.values()).count("exact") == 8
    # the planted typo, appended phrase and inserted word (natural near duplicates come on top)
    assert {found.get(p) for p in PLANTED_NEAR} == {"near"}
    assert pairs["same_answer"].all()
    duplicate_lines = {f.line for f in advice.advise(examples).findings if f.code == "duplicate_example"}
    assert len(duplicate_lines) == 8
    [finding] = hygiene.imbalance_findings(tickets["label"])
    assert finding.code == "class_imbalance" and "cancel_subscription: 12" in finding.message


def test_a_bag_of_words_baseline_learns_but_does_not_ace_the_tickets(tickets):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline

    from threadpoolctl import threadpool_limits

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000))
    # One BLAS thread: on a busy 2-core machine lbfgs with a thread per core runs ~80x slower.
    with threadpool_limits(1):
        accuracy = cross_val_score(model, tickets["text"], tickets["label"],
                                   cv=StratifiedKFold(5, shuffle=True, random_state=0)).mean()
    assert 0.80 <= accuracy <= 0.95


def test_validator_reports_each_planted_problem_at_its_line():
    report = validate_file(SAMPLES / "broken_train.jsonl")
    by_line: dict[int, set[str]] = {}
    for f in report.findings:
        by_line.setdefault(f.line, set()).add(f.code)
    assert by_line == {line: {code} for line, code in PLANTED.items()}
    assert not CLEAN_LINES & by_line.keys()
    assert not report.ok
    assert len(report.errors) == 12 and [f.code for f in report.warnings] == ["unrecognized_key"]
    assert report.n_examples == 15 and report.format == "chat"
    fields = {f.line: f.field for f in report.findings}
    assert fields[4] == "messages[1].role" and fields[5] == "messages[2].weight" and fields[10] == "label"


def test_readme_lists_the_same_lines_and_codes():
    readme = (SAMPLES / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \|.*\| `([a-z_]+)` \| (error|warning) \|$", readme, re.M)
    assert {int(line): code for line, code, _ in rows} == PLANTED


def test_readme_label_table_matches_the_csv(tickets):
    readme = (SAMPLES / "README.md").read_text()
    rows = re.findall(r"^\| ([a-z_]+) \| (\d+) \| [\d.]+ % \|$", readme, re.M)
    assert {label: int(n) for label, n in rows} == tickets["label"].value_counts().to_dict()
    assert f"{len(tickets)} rows" in readme
