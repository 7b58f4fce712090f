"""The base model, prompted: what you had before fine-tuning, done honestly.

A fine-tune is worth its cost only if it beats the base model *told what to do*. Two
prompts, both built from the run's own data and nothing else:

- zero-shot: the system prompt lists every label and asks for exactly one of them;
- few-shot: the same, plus `k` solved examples from the training split as earlier turns
  (one per label first, so every label is shown, then round-robin), the same for every item.
"""
from __future__ import annotations

import dataclasses
import random

from ftutils.evaluate.candidates import TestExample


def label_instruction(labels: list[str]) -> str:
    return ("Classify the user's message. Answer with exactly one of these labels and nothing else: "
            + ", ".join(labels) + ".")


def _with_system(example: TestExample, system: str, shots: list[dict]) -> TestExample:
    # The original system prompt (the one the fine-tune was trained with) is replaced, not
    # kept: it may not name the labels, and two instructions would blur what is measured.
    rest = [m for m in example.prompt if m.get("role") != "system"]
    return dataclasses.replace(example, prompt=[{"role": "system", "content": system}, *shots, *rest])


def choose_shots(train: list[TestExample], labels: list[str], k: int, seed: int = 0) -> list[TestExample]:
    """`k` training examples: one per label (in label order) before any label gets a second."""
    rng = random.Random(seed)
    by_label = {lab: [ex for ex in train if ex.label == lab] for lab in labels}
    for pool in by_label.values():
        rng.shuffle(pool)
    chosen: list[TestExample] = []
    while len(chosen) < k and any(by_label.values()):
        for lab in labels:
            if by_label[lab] and len(chosen) < k:
                chosen.append(by_label[lab].pop())
    return chosen


def shot_messages(shots: list[TestExample]) -> list[dict]:
    turns = []
    for ex in shots:
        turns += [{"role": "user", "content": ex.text}, {"role": "assistant", "content": ex.label}]
    return turns


def prompted(examples: list[TestExample], labels: list[str], train: list[TestExample] | None = None,
             k: int = 0, seed: int = 0) -> list[TestExample]:
    """`examples` re-prompted zero-shot (k=0) or with `k` shots from `train`; ids and labels unchanged."""
    if k and not train:
        raise ValueError("few-shot prompting needs the training split to draw its examples from")
    turns = shot_messages(choose_shots(train, labels, k, seed)) if k else []
    system = label_instruction(labels)
    return [_with_system(ex, system, turns) for ex in examples]
