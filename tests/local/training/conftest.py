"""Fixtures of the training tests: a small sentiment set and one uninterrupted run of it,
shared by the loop's tests and the two-process tests that compare against it."""
from __future__ import annotations

import json
import random

import pytest

from ftutils.local.models import loading
from ftutils.local.training import loop
from ftutils.local.training.config import TrainConfig
from ftutils.local.training.loop import train
from tests.local.sinks import RecordingSink

WORDS = {"good": "positive", "great": "positive", "lovely": "positive", "bad": "negative", "awful": "negative",
         "dull": "negative"}


@pytest.fixture(scope="module")
def tokenizer(ml_data_dir):
    return loading.load_base("tiny-smollm2", ml_data_dir)[1]


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    rng = random.Random(0)
    rows = []
    for i in range(20):
        word = rng.choice(sorted(WORDS))
        rows.append({"messages": [{"role": "system", "content": "Classify the sentiment."},
                                  {"role": "user", "content": f"Review {i}: it was {word}."},
                                  {"role": "assistant", "content": WORDS[word]}]})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:16]))
    (folder / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[16:]))
    return folder


def config(files, ml_data_dir, output_dir, **overrides):
    values = dict(base_model="tiny-smollm2", data_dir=ml_data_dir, train_file=files / "train.jsonl",
                  validation_file=files / "valid.jsonl", output_dir=output_dir, n_epochs=3, batch_size=4,
                  learning_rate_multiplier=10.0, seed=3, eval_every=2)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def full_run(files, ml_data_dir, tmp_path_factory):
    """One uninterrupted run, keeping a handle on the model the trainer trained."""
    held = {}

    def load_and_keep(*args):
        held["model"], tokenizer = loading.load_base(*args)
        return held["model"], tokenizer
    out = tmp_path_factory.mktemp("full")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop, "load_base", load_and_keep)
        sink = RecordingSink()
        result = train(config(files, ml_data_dir, out), sink)
    return result, sink, held["model"], out
