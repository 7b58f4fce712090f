"""The honest question before paying for fine-tuning: do you even need an LLM?

A TF-IDF bag of words and n-grams with logistic regression, trained on exactly the
training split the LLM saw, takes a second on a laptop and answers in microseconds. When it
matches the fine-tuned model, the fine-tune is not paying for itself on this task.
"""
from __future__ import annotations

import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline, make_union
from threadpoolctl import threadpool_limits

from ftutils.evaluate.candidates import BASELINE_NAME, TestExample
from ftutils.evaluate.classify import Classification, Prediction


def make_baseline(seed: int = 0):
    # Words and word pairs catch phrases ("log in", "charged twice"); character n-grams
    # within word boundaries survive the typos real tickets have. sublinear_tf keeps a word
    # repeated in one long message from dominating it.
    features = make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2),
    )
    return make_pipeline(features, LogisticRegression(max_iter=2000, C=10.0, random_state=seed))


def train_baseline(train: list[TestExample], seed: int = 0):
    """Fit the baseline on the training split's user messages and answers."""
    labels = {ex.label for ex in train}
    if len(labels) < 2:
        raise ValueError(f"the baseline needs at least two labels in the training split, got {sorted(labels)}")
    model = make_baseline(seed)
    # A few hundred short texts are far too small for threaded BLAS to help; on shared or
    # busy cores its threads only fight each other (measured: 0.3 s on one thread, 7 s on all).
    with threadpool_limits(1):
        model.fit([ex.text for ex in train], [ex.label for ex in train])
    return model


def _predict_one(model, ex: TestExample) -> Prediction:
    start = time.perf_counter()
    pred = str(model.predict([ex.text])[0])
    return Prediction(ex.id, ex.label, pred, pred, "baseline", time.perf_counter() - start, 0, 0)


def classify_baseline(train: list[TestExample], test: list[TestExample], seed: int = 0) -> Classification:
    """Train on `train`, predict `test`. Latency is measured per example, as a request would be."""
    model = train_baseline(train, seed)
    known = set(model.classes_)
    with threadpool_limits(1):
        predictions = [_predict_one(model, ex) for ex in test]
    unseen = sorted({ex.label for ex in test} - known)
    note = (f"labels {unseen} never appear in the training split, so the baseline cannot predict them"
            if unseen else None)
    return Classification(BASELINE_NAME, "baseline", predictions, "baseline", note)
