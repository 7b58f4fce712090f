"""The TF-IDF + logistic-regression baseline on the project's sample data (CLINC150's real
queries for eight card and account intents, which share most of their words)."""
from __future__ import annotations

import csv

import pytest

from ftutils.evaluate.baseline import classify_baseline
from ftutils.evaluate.candidates import split_example
from ftutils.evaluate.scores import classification_metrics
from tests.conftest import ROOT


def queries(split: str) -> list:
    """The in-scope rows of one part of the sample (its own CLINC-based split)."""
    with open(ROOT / "data" / "samples" / "clinc150_subset.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == split and r["label"] != "out_of_scope"]
    return [split_example({"id": r["id"], "label": r["label"], "messages": [
        {"role": "system", "content": "Classify the banking message."},
        {"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}]}, i)
        for i, r in enumerate(rows, 1)]


def test_baseline_learns_the_intents_far_above_chance():
    train, test = queries("train"), queries("test")
    result = classify_baseline(train, test, seed=0)
    labels = sorted({ex.label for ex in train})
    m = classification_metrics(result.frame(), labels)
    assert len(labels) == 8 and result.method == "baseline" and result.note is None
    assert [p.id for p in result.predictions] == [ex.id for ex in test]
    # Eight classes of equal size: a model that learnt nothing scores about 0.125;
    # data/samples/README.md quotes this split's figure, 73 of 80.
    assert m["accuracy"] == pytest.approx(73 / 80) and m["macro_f1"] > 0.7
    assert all(p.latency_s > 0 and p.pred in labels for p in result.predictions)


def test_baseline_is_deterministic_and_says_which_labels_it_never_saw():
    train = [ex for ex in queries("train") if ex.label != "new_card"]
    test = queries("validation")
    one, two = classify_baseline(train, test, seed=0), classify_baseline(train, test, seed=0)
    assert [p.pred for p in one.predictions] == [p.pred for p in two.predictions]
    assert "new_card" not in {p.pred for p in one.predictions}
    assert any(ex.label == "new_card" for ex in test)
    assert one.note == "labels ['new_card'] never appear in the training split, so the baseline cannot predict them"


def test_baseline_needs_two_labels():
    examples = [ex for ex in queries("train") if ex.label == "card_declined"][:10]
    with pytest.raises(ValueError, match=r"at least two labels in the training split, got \['card_declined'\]"):
        classify_baseline(examples, examples)
