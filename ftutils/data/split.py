"""Train / validation / test splits that keep every class in every part when possible.

Stratified (scikit-learn) when each example has a label and every class is big enough to
appear in each part; otherwise a seeded random split, with `note` saying why. The same
seed and data always give the same split, so a re-run notebook trains on the same files.

Group-aware: with `keep_similar_together=True` (or explicit `groups`), examples linked by
near duplicates or word-set siblings (`hygiene.similar_groups`) land in the same part, so a
paraphrase seen in training cannot score a test item from memory. Groups are placed largest
first, each in the part whose per-label counts it brings closest to the target shares
(least squares), so the parts stay stratified up to the size of the groups.
"""
from __future__ import annotations

import random
from collections import Counter, defaultdict


class Split(tuple):
    """(train, validation, test), unpackable as a tuple, plus how it was made."""

    def __new__(cls, train, validation, test, stratified: bool, note: str | None, grouped: bool = False):
        self = super().__new__(cls, (train, validation, test))
        self.stratified, self.note, self.grouped = stratified, note, grouped
        return self

    train = property(lambda self: self[0])
    validation = property(lambda self: self[1])
    test = property(lambda self: self[2])

    def to_dict(self) -> dict:
        """Sizes and how it was made (what a run records)."""
        return {"train": len(self[0]), "validation": len(self[1]), "test": len(self[2]),
                "stratified": self.stratified, "grouped": self.grouped, "note": self.note}

    def __repr__(self) -> str:
        how = "stratified" if self.stratified else "random"
        how += ", similar examples kept together" if self.grouped else ""
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


def _group_split(labels, groups, n_val: int, n_test: int, stratified: bool, seed: int) -> list[list[int]]:
    """Indices of (train, validation, test), every group whole in one part."""
    members: dict = defaultdict(list)
    for i, g in enumerate(groups):
        members[g].append(i)
    order = list(members.values())
    random.Random(seed).shuffle(order)
    order.sort(key=len, reverse=True)  # big groups first, while every part still has room
    keys = [label if stratified else None for label in labels]
    n = len(labels)
    counts = Counter(keys)
    share = (1 - (n_val + n_test) / n, n_val / n, n_test / n)
    target = [{k: c * f for k, c in counts.items()} for f in share]
    have = [Counter(), Counter(), Counter()]
    parts: list[list[int]] = [[], [], []]
    for group in order:
        add = Counter(keys[i] for i in group)
        # Rise in squared distance from the target counts if the group joins part p; a part
        # meant to stay empty (share 0) never takes one. Ties go to train, then validation.
        cost = [sum((have[p][k] + c - target[p][k]) ** 2 - (have[p][k] - target[p][k]) ** 2 for k, c in add.items())
                if share[p] > 0 else float("inf") for p in range(3)]
        p = cost.index(min(cost))
        parts[p] += group
        have[p].update(add)
    rng = random.Random(seed + 1)
    for part in parts:  # members of a group sit together; training should not see them in a row
        rng.shuffle(part)
    return parts


def split_dataset(examples, label_key: str = "label", validation: float = 0.15, test: float = 0.15,
                  seed: int = 42, keep_similar_together: bool = False, groups=None) -> Split:
    """Split examples into (train, validation, test) lists; fractions are of the whole set.

    `keep_similar_together=True` puts each group of `hygiene.similar_groups` (near
    duplicates and word-set siblings, linked in chains) in one part; `groups` gives your own
    group key per example instead (e.g. a customer id). Part sizes then follow the fractions
    as closely as the groups allow."""
    from sklearn.model_selection import train_test_split

    examples = list(examples)
    n_val, n_test = _sizes(len(examples), validation, test)
    labels = [ex.get(label_key) if isinstance(ex, dict) else None for ex in examples]
    note = _why_not_stratified(labels, n_val, n_test)
    stratified = note is None
    if keep_similar_together and groups is None:
        from ftutils.data.hygiene import similar_groups

        groups = similar_groups(examples)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    if groups is not None:
        groups = list(groups)
        if len(groups) != len(examples):
            raise ValueError(f"groups has {len(groups)} keys for {len(examples)} examples; give one per example")
        train_idx, val_idx, test_idx = _group_split(labels, groups, n_val, n_test, stratified, seed)
        notes = [f"random split (not stratified): {note}"] if note else []
        if stratified:
            missing = [f"{label!r} not in {name}" for label in sorted(set(labels), key=str)
                       for name, idx, size in (("validation", val_idx, n_val), ("test", test_idx, n_test))
                       if size and label not in {labels[i] for i in idx}]
            if missing:
                notes.append("groups too few or too big to give every part every class: " + ", ".join(missing[:5]))
        return Split(pick(train_idx), pick(val_idx), pick(test_idx), stratified, "; ".join(notes) or None,
                     grouped=True)
    index = list(range(len(examples)))

    def cut(idx, size, seed_offset):
        if size == 0:
            return idx, []
        strat = [labels[i] for i in idx] if stratified else None
        return train_test_split(idx, test_size=size, random_state=seed + seed_offset, stratify=strat)

    rest, test_idx = cut(index, n_test, 0)
    train_idx, val_idx = cut(rest, n_val, 1)
    if note:
        note = f"random split (not stratified): {note}"
    return Split(pick(train_idx), pick(val_idx), pick(test_idx), stratified, note)


def add_pool(train: list, validation: list, pool: list, seed: int = 42, label_key: str = "label") -> tuple[list, list]:
    """`pool` (rows set aside for a later run, e.g. out-of-scope queries) joined to train and
    validation in the proportion those two already have, stratified and seeded: 02_prepare's
    `train_out_of_scope=True`, and 05_iterate's second run from the first run's files."""
    if not pool:
        return list(train), list(validation)
    share = len(validation) / max(len(train) + len(validation), 1)
    pool_train, pool_validation, _ = split_dataset(pool, label_key=label_key, validation=share, test=0.0, seed=seed)
    return list(train) + list(pool_train), list(validation) + list(pool_validation)


def with_pool(first_data, second_data, seed: int = 42) -> dict:
    """A second run's data folder from a first run's: the same test file (byte for byte, so the
    two runs are tested on the same items) and the first run's train and validation files with
    its `pool.jsonl` added by `add_pool`. Returns {"train", "validation", "test"}: paths."""
    import shutil
    from pathlib import Path

    from ftutils.data.convert import write_jsonl
    from ftutils.data.load import read_jsonl

    first, second = Path(first_data), Path(second_data)
    pool_path = first / "pool.jsonl"
    if not pool_path.is_file():
        raise FileNotFoundError(f"{pool_path}: the first run set no pool aside (02_prepare writes it)")
    train, validation = add_pool(read_jsonl(first / "train.jsonl"), read_jsonl(first / "validation.jsonl"),
                                 read_jsonl(pool_path), seed)
    second.mkdir(parents=True, exist_ok=True)
    paths = {"train": write_jsonl(train, second / "train.jsonl"),
             "validation": write_jsonl(validation, second / "validation.jsonl"),
             "test": second / "test.jsonl"}
    shutil.copyfile(first / "test.jsonl", paths["test"])
    return paths
