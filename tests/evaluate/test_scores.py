"""Metrics against values worked out by hand, the bootstrap against sklearn, and the paired
tests' alignment by id."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from ftutils.evaluate.scores import (UNPARSEABLE, _codes, _scores_of_resamples, align, as_frame, bootstrap_ci,
                                     classification_metrics, confusion_frame, mcnemar_exact, paired_bootstrap,
                                     top_confusions)

LABELS = ["cat", "dog"]
# cat: 1 right, 1 read as dog, 1 unparseable; dog: 2 right, 1 read as cat.
A = pd.DataFrame({"id": ["i1", "i2", "i3", "i4", "i5", "i6"],
                  "label": ["cat", "cat", "cat", "dog", "dog", "dog"],
                  "pred": ["cat", "dog", None, "dog", "cat", "dog"]})
# Right everywhere except i4.
B = A.assign(pred=["cat", "cat", "cat", "cat", "dog", "dog"])


def test_metrics_match_hand_computed_values():
    m = classification_metrics(A, LABELS)
    assert m["accuracy"] == pytest.approx(3 / 6)
    # cat: precision 1/2 (i1 of i1,i5), recall 1/3, F1 = 2PR/(P+R) = 0.4; dog: P = R = 2/3.
    assert m["per_class"]["cat"] == pytest.approx({"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3})
    assert m["per_class"]["dog"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "support": 3})
    assert m["macro_f1"] == pytest.approx((0.4 + 2 / 3) / 2)
    assert m["macro_precision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["macro_recall"] == pytest.approx(0.5)
    assert m["unparseable"] == 1
    assert m["confusion"]["columns"] == ["cat", "dog", UNPARSEABLE]
    assert m["confusion"]["matrix"] == [[1, 1, 1], [1, 2, 0]]
    assert confusion_frame(m).loc["dog", "cat"] == 1
    assert "cat" in m["report"] and "macro avg" in m["report"]


def test_macro_averages_only_the_labels_present_in_the_items():
    # "bird" is a possible answer (seen in training) but absent from these test items.
    m = classification_metrics(A, ["bird", "cat", "dog"])
    assert m["per_class"]["bird"]["support"] == 0
    assert m["macro_f1"] == pytest.approx((0.4 + 2 / 3) / 2)
    assert m["confusion"]["matrix"][0] == [0, 0, 0, 0]


def test_top_confusions_leave_out_unparseable():
    assert top_confusions(classification_metrics(A, LABELS)) == [("cat", "dog", 1), ("dog", "cat", 1)]


def test_vectorised_resample_scores_equal_sklearn_on_each_resample():
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c", "d"]
    truth = rng.choice(labels[:3], 80)
    preds = [t if rng.random() < 0.6 else rng.choice([*labels, None]) for t in truth]
    frame = as_frame(pd.DataFrame({"id": range(80), "label": truth, "pred": preds}))
    true, pred, k = _codes(frame, labels)
    idx = rng.integers(0, 80, size=(25, 80))
    acc, f1 = _scores_of_resamples(true, pred, k, len(labels), idx)
    for row in range(25):
        sample = frame.iloc[idx[row]]
        present = sorted(set(sample["label"]))
        assert acc[row] == pytest.approx(accuracy_score(sample["label"], sample["pred"]))
        assert f1[row] == pytest.approx(f1_score(sample["label"], sample["pred"], labels=present,
                                                 average="macro", zero_division=0))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    big = pd.concat([A.assign(id=A["id"] + f"-{k}") for k in range(20)], ignore_index=True)
    one = bootstrap_ci(big, LABELS, n_resamples=500, seed=1)
    assert one == bootstrap_ci(big, LABELS, n_resamples=500, seed=1)
    assert one != bootstrap_ci(big, LABELS, n_resamples=500, seed=2)
    m = classification_metrics(big, LABELS)
    lo, hi = one["accuracy_ci"]
    assert lo < m["accuracy"] < hi and hi - lo < 0.25
    lo, hi = one["macro_f1_ci"]
    assert lo < m["macro_f1"] < hi


def test_mcnemar_exact_by_hand():
    r = mcnemar_exact(A, B)
    # Only A right: i4. Only B right: i2, i3, i5. p = 2 * P(X <= 1), X ~ Bin(4, 1/2) = 2 * 5/16.
    assert (r["only_a_correct"], r["only_b_correct"], r["both_correct"], r["both_wrong"]) == (1, 3, 2, 0)
    assert r["p_value"] == pytest.approx(0.625)
    assert (r["accuracy_a"], r["accuracy_b"]) == (0.5, pytest.approx(5 / 6))


def test_alignment_is_by_id_not_by_row_order():
    shuffled = B.sample(frac=1, random_state=0).reset_index(drop=True)
    assert shuffled["id"].tolist() != B["id"].tolist()
    assert mcnemar_exact(A, shuffled) == mcnemar_exact(A, B)
    assert paired_bootstrap(A, shuffled, LABELS, 200, 0) == paired_bootstrap(A, B, LABELS, 200, 0)
    joined = align(A, shuffled)
    assert joined.set_index("id").loc["i4", ["pred_a", "pred_b"]].tolist() == ["dog", "cat"]


def test_alignment_errors_name_the_ids():
    with pytest.raises(ValueError, match=r"1 ids only in the first \(e.g. \['i6'\]\), 0 only in the second"):
        align(A, B[B["id"] != "i6"])
    with pytest.raises(ValueError, match=r"disagree on the true label of ids \['i1'\]"):
        align(A, B.assign(label=["dog", *B["label"][1:]]))
    with pytest.raises(ValueError, match=r"repeat ids \['i1'\]"):
        align(pd.concat([A, A.iloc[:1]]), B)
    with pytest.raises(ValueError, match="missing \\['pred'\\]"):
        align(A.drop(columns="pred"), B)


def test_paired_bootstrap_difference_and_p_value():
    r = paired_bootstrap(A, B, LABELS, 1000, 0)
    m_a, m_b = classification_metrics(A, LABELS), classification_metrics(B, LABELS)
    assert r["macro_f1_diff"] == pytest.approx(m_b["macro_f1"] - m_a["macro_f1"])
    assert r["accuracy_diff"] == pytest.approx(2 / 6)
    assert r["macro_f1_diff_ci"][0] <= r["macro_f1_diff"] <= r["macro_f1_diff_ci"][1]
    same = paired_bootstrap(A, A, LABELS, 200, 0)
    assert same["macro_f1_p_value"] == 1.0 and same["macro_f1_diff"] == 0
