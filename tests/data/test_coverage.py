"""Representativeness and diversity, measured: labels and lengths of each part against train,
and groups of similar phrasing within each class."""
from __future__ import annotations

import math

from ftutils.data import coverage


def ex(text: str, label: str) -> dict:
    return {"label": label, "messages": [{"role": "system", "content": "Classify."}, {"role": "user", "content": text},
                                         {"role": "assistant", "content": label}]}


TRAIN = [ex("my card was declined at the shop", "declined"), ex("my card was declined at the store", "declined"),
         ex("why was my card declined yesterday", "declined"), ex("please freeze my account now", "freeze"),
         ex("can you freeze my bank account", "freeze"), ex("lock down my savings", "freeze")]
TEST = [ex("card declined again", "declined"), ex("what is the weather like in paris this weekend then", "other"),
        ex("freeze it", "freeze")]


def test_label_coverage_counts_every_label_and_flags_the_ones_train_never_shows():
    table = coverage.label_coverage({"train": TRAIN, "test": TEST})
    assert list(table.index) == ["declined", "freeze", "other"]
    assert table.loc["other", "test"] == 1 and table.loc["other", "train"] == 0 and not table.loc["other", "in_train"]
    assert table["in_train"].tolist() == [True, True, False]
    assert math.isclose(table.loc["declined", "train_share"], 0.5) and math.isclose(table["test_share"].sum(), 1.0, abs_tol=0.002)


def test_length_coverage_counts_test_items_outside_the_training_lengths():
    lengths = coverage.length_coverage({"train": TRAIN, "test": TEST})
    assert lengths.loc["train", "min"] == 4 and lengths.loc["train", "max"] == 7
    # "card declined again" (3 words), "freeze it" (2) and the 11-word weather question: all outside 4..7.
    assert lengths.loc["test", "outside_train"] == 1.0 and math.isnan(lengths.loc["train", "outside_train"])


def test_clusters_count_groups_of_similar_phrasing_per_class():
    table = coverage.clusters(TRAIN)
    # The two "my card was declined at the ..." are one way of asking; the third is another.
    assert table.loc["declined"].tolist() == [3, 2, 2, 0.667]
    assert table.loc["freeze", "examples"] == 3 and table.loc["freeze", "largest"] <= 2


def test_largest_cluster_reads_the_group_of_the_class_asked_for():
    assert sorted(coverage.largest_cluster(TRAIN)) == ["my card was declined at the shop", "my card was declined at the store"]
    assert coverage.largest_cluster(TRAIN, label="declined") == coverage.largest_cluster(TRAIN)
    freeze = coverage.largest_cluster(TRAIN, label="freeze")
    assert freeze and all("declined" not in text for text in freeze)
    assert coverage.largest_cluster(TRAIN, label="absent") == [] and coverage.largest_cluster([]) == []
