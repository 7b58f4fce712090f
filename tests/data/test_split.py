"""ftutils.data.split: stratified when it can be, seeded random otherwise, always deterministic."""
from __future__ import annotations

import random
from collections import Counter

import pytest

from ftutils.data import hygiene
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


def _families(seed: int = 4):
    """Queries in families of paraphrases (one to five members, a word swapped each time),
    four labels; members of a family share a label and most of their words."""
    rng = random.Random(seed)
    vocabulary = [f"w{k}" for k in range(400)]
    out = []
    for label in ("block", "lost", "fraud", "declined"):
        for family in range(14):
            words = rng.sample(vocabulary, 9)
            for member in range(rng.choice([1, 1, 2, 3, 5])):
                variant = list(words)
                variant[member % 9] = f"{label}{family}x{member}"
                out.append({"messages": [{"role": "user", "content": " ".join(variant)},
                                         {"role": "assistant", "content": label}],
                            "id": f"{label}-{family}-{member}", "label": label, "family": f"{label}-{family}"})
    rng.shuffle(out)
    return out


def _sides(split, key="family"):
    side = {}
    for name, part in zip(("train", "validation", "test"), split):
        for e in part:
            side.setdefault(e[key], set()).add(name)
    return side


def test_group_aware_split_never_puts_one_group_on_two_sides():
    examples = _families()
    assert len({e["family"] for e in examples}) < len(examples)  # real groups to keep together
    plain = split_dataset(examples, seed=3)
    assert any(len(s) > 1 for s in _sides(plain).values())  # what the option prevents
    grouped = split_dataset(examples, seed=3, keep_similar_together=True)
    assert grouped.grouped and "similar examples kept together" in repr(grouped)
    assert all(len(s) == 1 for s in _sides(grouped).values())
    # the groups it found are the planted families, no more, no less
    found = dict(zip((e["id"] for e in examples), hygiene.similar_groups(examples)))
    assert len(set(found.values())) == len({e["family"] for e in examples})
    assert sorted(_ids(grouped.train) + _ids(grouped.validation) + _ids(grouped.test)) == sorted(_ids(examples))
    assert hygiene.siblings(*grouped).empty and not hygiene.siblings(*plain).empty


def test_group_aware_split_stays_stratified_and_deterministic():
    examples = _families()
    split = split_dataset(examples, validation=0.2, test=0.2, seed=5, keep_similar_together=True)
    assert split.stratified and split.note is None
    counts = Counter(e["label"] for e in examples)
    biggest = 5  # a part can miss its share by at most about one group
    for part, share in zip(split, (0.6, 0.2, 0.2)):
        got = Counter(e["label"] for e in part)
        assert all(abs(got[label] - share * n) <= biggest for label, n in counts.items()), (got, share)
    assert abs(len(split.test) - 0.2 * len(examples)) <= biggest
    again = split_dataset(examples, validation=0.2, test=0.2, seed=5, keep_similar_together=True)
    assert [_ids(p) for p in split] == [_ids(p) for p in again]
    other = split_dataset(examples, validation=0.2, test=0.2, seed=6, keep_similar_together=True)
    assert _ids(other.test) != _ids(split.test)


def test_singletons_split_by_groups_get_exact_stratified_counts():
    examples = _examples({"billing": 60, "shipping": 40, "refund": 20})
    split = split_dataset(examples, groups=range(len(examples)))
    assert split.grouped and split.stratified
    for part, n in ((split.validation, 18), (split.test, 18)):
        expected = Counter({"billing": n // 2, "shipping": n * 2 // 6, "refund": n // 6})
        assert Counter(e["label"] for e in part) == expected


def test_own_groups_are_honoured_and_must_be_one_per_example():
    examples = _examples({"a": 30, "b": 30})
    customer = [i // 4 for i in range(60)]  # e.g. the four messages of one customer
    split = split_dataset(examples, groups=customer, seed=1)
    side = {}
    for name, part in zip("tvs", split):
        for e in part:
            side.setdefault(customer[examples.index(e)], set()).add(name)
    assert all(len(s) == 1 for s in side.values())
    with pytest.raises(ValueError, match="groups has 3 keys for 60 examples"):
        split_dataset(examples, groups=[1, 2, 3])


def test_groups_too_big_for_every_class_in_every_part_say_so():
    examples = _examples({"a": 30, "b": 6})
    groups = [e["label"] if e["label"] == "b" else e["id"] for e in examples]  # all of "b" is one group
    split = split_dataset(examples, groups=groups)
    assert Counter(e["label"] for e in split.train)["b"] == 6  # the group stays whole, in train
    assert {e["label"] for e in split.validation + split.test} == {"a"}
    assert split.note == ("groups too few or too big to give every part every class: "
                          "'b' not in validation, 'b' not in test")
