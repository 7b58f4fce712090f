"""ftutils.data.split: stratified when it can be, seeded random otherwise, always deterministic."""
from __future__ import annotations

from collections import Counter

import pytest

from ftutils.data.split import split_dataset


def _examples(counts: dict[str, int]):
    out = []
    for label, n in counts.items():
        out += [{"messages": [{"role": "user", "content": f"{label} {i}"}, {"role": "assistant", "content": label}],
                 "id": f"{label}-{i}", "label": label} for i in range(n)]
    return out


def _ids(part):
    return [e["id"] for e in part]


def test_stratified_split_keeps_class_shares_in_every_part():
    examples = _examples({"billing": 60, "shipping": 40, "refund": 20})
    split = split_dataset(examples)
    train, validation, test = split
    assert split.stratified and split.note is None
    assert (len(train), len(validation), len(test)) == (84, 18, 18)
    for part, n in ((validation, 18), (test, 18)):
        shares = Counter(e["label"] for e in part)
        assert shares == Counter({"billing": n // 2, "shipping": n * 2 // 6, "refund": n // 6})
    assert sorted(_ids(train) + _ids(validation) + _ids(test)) == sorted(_ids(examples))  # a partition


def test_same_seed_same_split_other_seed_other_split():
    examples = _examples({"a": 30, "b": 30})
    first, again, other = split_dataset(examples, seed=7), split_dataset(examples, seed=7), split_dataset(examples, seed=8)
    assert [_ids(p) for p in first] == [_ids(p) for p in again]
    assert _ids(first.test) != _ids(other.test)


def test_a_class_too_small_for_every_part_falls_back_to_random_with_a_note():
    examples = _examples({"common": 40, "rare": 2})
    split = split_dataset(examples)
    assert not split.stratified
    assert "random split" in split.note and "'rare'" in split.note
    assert sum(map(len, split)) == 42


def test_missing_labels_fall_back_to_random():
    examples = _examples({"a": 10, "b": 10})
    for e in examples[:3]:
        del e["label"]
    split = split_dataset(examples, validation=0.2, test=0.2)
    assert not split.stratified and "3 example(s) have no label" in split.note
    assert (len(split.train), len(split.validation), len(split.test)) == (12, 4, 4)


def test_other_label_key_and_no_test_part():
    examples = [{"messages": [], "intent": "x" if i % 3 else "y", "id": str(i)} for i in range(30)]
    train, validation, test = split_dataset(examples, label_key="intent", validation=0.2, test=0)
    assert test == [] and len(validation) == 6 and len(train) == 24
    assert Counter(e["intent"] for e in validation) == Counter({"x": 4, "y": 2})


@pytest.mark.parametrize("kwargs, needle", [
    ({"validation": 0.6, "test": 0.4}, "must leave something to train on"),
    ({"validation": -0.1}, "validation must be a fraction"),
    ({"test": 1.5}, "test must be a fraction"),
])
def test_bad_fractions_are_refused(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        split_dataset(_examples({"a": 10}), **kwargs)


def test_too_few_examples_to_split():
    with pytest.raises(ValueError, match="too few to split"):
        split_dataset(_examples({"a": 2}), validation=0.4, test=0.4)
