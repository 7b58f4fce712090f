"""The TF-IDF + logistic-regression baseline on the project's sample tickets (a small real
dataset with typos, borrowed words and a rare class)."""
from __future__ import annotations

import csv

import pytest

from ftutils.evaluate.baseline import classify_baseline
from ftutils.evaluate.candidates import split_example
from ftutils.evaluate.scores import classification_metrics
from tests.conftest import ROOT


def tickets() -> list:
    with open(ROOT / "data" / "samples" / "support_tickets.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [split_example({"id": r["id"], "label": r["label"], "messages": [
        {"role": "system", "content": "Classify the support ticket."},
        {"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}]}, i)
        for i, r in enumerate(rows, 1)]


def test_baseline_learns_the_tickets_far_above_chance():
    examples = tickets()
    train, test = examples[:200], examples[200:]
    result = classify_baseline(train, test, seed=0)
    labels = sorted({ex.label for ex in examples})
    m = classification_metrics(result.frame(), labels)
    assert len(labels) == 6 and result.method == "baseline" and result.note is None
    assert [p.id for p in result.predictions] == [ex.id for ex in test]
    # Six classes, the largest 20 %: a model that learnt nothing scores about 0.2.
    assert m["accuracy"] > 0.75 and m["macro_f1"] > 0.6
    assert all(p.latency_s > 0 and p.pred in labels for p in result.predictions)


def test_baseline_is_deterministic_and_says_which_labels_it_never_saw():
    examples = tickets()
    train = [ex for ex in examples[:150] if ex.label != "cancel_subscription"]
    test = examples[150:200]
    one, two = classify_baseline(train, test, seed=0), classify_baseline(train, test, seed=0)
    assert [p.pred for p in one.predictions] == [p.pred for p in two.predictions]
    assert "cancel_subscription" not in {p.pred for p in one.predictions}
    if any(ex.label == "cancel_subscription" for ex in test):
        assert one.note == ("labels ['cancel_subscription'] never appear in the training split, "
                            "so the baseline cannot predict them")


def test_baseline_needs_two_labels():
    examples = [ex for ex in tickets() if ex.label == "billing"][:10]
    with pytest.raises(ValueError, match=r"at least two labels in the training split, got \['billing'\]"):
        classify_baseline(examples, examples)
