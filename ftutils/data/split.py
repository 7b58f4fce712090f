"""Train / validation / test splits that keep every class in every part when possible.

Stratified (scikit-learn) when each example has a label and every class is big enough to
appear in each part; otherwise a seeded random split, with `note` saying why. The same
seed and data always give the same split, so a re-run notebook trains on the same files.
"""
from __future__ import annotations

from collections import Counter


class Split(tuple):
    """(train, validation, test), unpackable as a tuple, plus how it was made."""

    def __new__(cls, train, validation, test, stratified: bool, note: str | None):
        self = super().__new__(cls, (train, validation, test))
        self.stratified, self.note = stratified, note
        return self

    train = property(lambda self: self[0])
    validation = property(lambda self: self[1])
    test = property(lambda self: self[2])

    def __repr__(self) -> str:
        how = "stratified" if self.stratified else "random"
        return f"<Split {how}: train {len(self[0])}, validation {len(self[1])}, test {len(self[2])}>"


def _sizes(n: int, validation: float, test: float) -> tuple[int, int]:
    for name, value in (("validation", validation), ("test", test)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            raise ValueError(f"{name} must be a fraction in [0, 1), got {value!r}")
    if validation + test >= 1:
        raise ValueError(f"validation + test must leave something to train on, got {validation} + {test}")
    n_test, n_val = round(n * test), round(n * validation)
    if n - n_test - n_val < 1:
        raise ValueError(f"{n} example(s) are too few to split {validation:.0%} / {test:.0%} and keep a training set")
    return n_val, n_test


def _why_not_stratified(labels, n_val: int, n_test: int) -> str | None:
    if any(label is None for label in labels):
        missing = sum(label is None for label in labels)
        return f"{missing} example(s) have no label"
    counts = Counter(labels)
    parts = 1 + (n_val > 0) + (n_test > 0)
    small = sorted(label for label, c in counts.items() if c < parts)
    if small:
        return f"class(es) {', '.join(map(repr, small[:5]))} have fewer than {parts} examples, one for each part"
    for name, size in (("validation", n_val), ("test", n_test)):
        if 0 < size < len(counts):
            return f"the {name} part ({size}) is smaller than the number of classes ({len(counts)})"
    if len(counts) < 2:
        return "there is only one class"
    return None


def split_dataset(examples, label_key: str = "label", validation: float = 0.15, test: float = 0.15,
                  seed: int = 42) -> Split:
    """Split examples into (train, validation, test) lists; fractions are of the whole set."""
    from sklearn.model_selection import train_test_split

    examples = list(examples)
    n_val, n_test = _sizes(len(examples), validation, test)
    labels = [ex.get(label_key) if isinstance(ex, dict) else None for ex in examples]
    note = _why_not_stratified(labels, n_val, n_test)
    stratified = note is None
    index = list(range(len(examples)))

    def cut(idx, size, seed_offset):
        if size == 0:
            return idx, []
        strat = [labels[i] for i in idx] if stratified else None
        return train_test_split(idx, test_size=size, random_state=seed + seed_offset, stratify=strat)

    rest, test_idx = cut(index, n_test, 0)
    train_idx, val_idx = cut(rest, n_val, 1)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    if note:
        note = f"random split (not stratified): {note}"
    return Split(pick(train_idx), pick(val_idx), pick(test_idx), stratified, note)
