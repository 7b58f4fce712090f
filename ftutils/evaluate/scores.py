"""Metrics for classification predictions, how sure we are of them, and whether one model
beats another on the same items.

Predictions are tables (DataFrame or list of dicts) with `id`, `label` (the truth) and
`pred` (a label, or None when the answer could not be mapped to one). An unparseable
answer is wrong for every class's recall and shows as its own column in the confusion
matrix, so a model cannot look good by refusing to answer.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.stats import binomtest
from sklearn.metrics import (accuracy_score, classification_report, confusion_matrix,
                             precision_recall_fscore_support)

UNPARSEABLE = "(unparseable)"
# The label of messages that belong to no intent (CLINC150's "oos"): a model that never
# answers it forces every such message into some intent, which users see as a wrong action.
OUT_OF_SCOPE = "out_of_scope"


def as_frame(predictions) -> pd.DataFrame:
    frame = predictions.copy() if isinstance(predictions, pd.DataFrame) else pd.DataFrame(list(predictions))
    missing = {"id", "label", "pred"} - set(frame.columns)
    if missing:
        raise ValueError(f"predictions need columns id, label, pred; missing {sorted(missing)}")
    frame["id"] = frame["id"].astype(str)
    frame["pred"] = frame["pred"].map(lambda p: UNPARSEABLE if p is None or (isinstance(p, float) and np.isnan(p)) else str(p))
    frame["label"] = frame["label"].astype(str)
    return frame


def classification_metrics(predictions, labels: list[str]) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, sklearn's report and the confusion
    matrix (rows: true labels; columns: predicted labels, then unparseable).

    `labels` is every possible answer (the training split's too); macro averages run over
    the labels present in these items, so a class the test sample lacks does not count as
    a class the model failed."""
    frame = as_frame(predictions)
    y_true, y_pred = frame["label"].tolist(), frame["pred"].tolist()
    p, r, f, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    columns = list(labels) + [UNPARSEABLE]
    matrix = confusion_matrix(y_true, y_pred, labels=columns)[: len(labels)]
    present = support > 0
    return {
        "n": len(frame),
        "accuracy": float(accuracy_score(y_true, y_pred)) if len(frame) else float("nan"),
        "macro_precision": float(np.mean(p[present])) if present.any() else float("nan"),
        "macro_recall": float(np.mean(r[present])) if present.any() else float("nan"),
        "macro_f1": float(np.mean(f[present])) if present.any() else float("nan"),
        "per_class": {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
                      for i, lab in enumerate(labels)},
        "unparseable": int((frame["pred"] == UNPARSEABLE).sum()),
        "confusion": {"labels": list(labels), "columns": columns, "matrix": matrix.tolist()},
        "report": classification_report(y_true, y_pred, labels=labels, zero_division=0, digits=3),
        "out_of_scope": out_of_scope_counts(frame),
    }


def out_of_scope_counts(frame: pd.DataFrame) -> dict | None:
    """Of the out-of-scope items: how many the model forced into an intent, and which.
    None when the items hold no out-of-scope message."""
    oos = frame[frame["label"] == OUT_OF_SCOPE]
    if not len(oos):
        return None
    forced = oos[(oos["pred"] != OUT_OF_SCOPE) & (oos["pred"] != UNPARSEABLE)]
    return {"n": int(len(oos)), "forced": int(len(forced)),
            "by_intent": {str(k): int(v) for k, v in forced["pred"].value_counts().items()}}


def confusion_frame(metrics: dict) -> pd.DataFrame:
    conf = metrics["confusion"]
    frame = pd.DataFrame(conf["matrix"], index=conf["labels"], columns=conf["columns"])
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def _codes(frame: pd.DataFrame, labels: list[str]) -> tuple[np.ndarray, np.ndarray, int]:
    # Every label not in `labels` (unparseable, or a stray class) shares the last code: it
    # can only ever be a wrong prediction, which is all macro F1 needs to know.
    index = {lab: i for i, lab in enumerate(labels)}
    k = len(labels) + 1
    true = frame["label"].map(lambda x: index.get(x, k - 1)).to_numpy()
    pred = frame["pred"].map(lambda x: index.get(x, k - 1)).to_numpy()
    return true, pred, k


def _scores_of_resamples(true: np.ndarray, pred: np.ndarray, k: int, n_labels: int, idx: np.ndarray):
    """Accuracy and macro F1 (as classification_metrics: over the labels present) for each
    row of resampled indices, from confusion counts built with one bincount for all rows."""
    b = idx.shape[0]
    codes = true[idx] * k + pred[idx] + (np.arange(b) * k * k)[:, None]
    counts = np.bincount(codes.ravel(), minlength=b * k * k).reshape(b, k, k)
    tp = np.diagonal(counts, axis1=1, axis2=2)[:, :n_labels].astype(float)
    predicted = counts.sum(axis=1)[:, :n_labels]
    actual = counts.sum(axis=2)[:, :n_labels]
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(predicted + actual > 0, 2 * tp / (predicted + actual), 0.0)
        macro = (f1 * (actual > 0)).sum(axis=1) / (actual > 0).sum(axis=1)
    accuracy = tp.sum(axis=1) / idx.shape[1]
    return accuracy, macro


def bootstrap_ci(predictions, labels: list[str], n_resamples: int = 1000, seed: int = 42,
                 level: float = 0.95) -> dict:
    """Percentile bootstrap intervals for accuracy and macro F1 (resampling test items)."""
    frame = as_frame(predictions)
    if len(frame) == 0:
        return {"accuracy_ci": [float("nan")] * 2, "macro_f1_ci": [float("nan")] * 2, "n_resamples": 0}
    true, pred, k = _codes(frame, labels)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(frame), size=(n_resamples, len(frame)))
    acc, f1 = _scores_of_resamples(true, pred, k, len(labels), idx)
    tail = (1 - level) / 2 * 100
    return {"accuracy_ci": np.percentile(acc, [tail, 100 - tail]).tolist(),
            "macro_f1_ci": np.percentile(f1, [tail, 100 - tail]).tolist(),
            "n_resamples": n_resamples, "level": level}


def align(a, b) -> pd.DataFrame:
    """Join two prediction tables on `id` (never on row order). Every id must be on both
    sides with the same true label; otherwise a ValueError names the offending ids."""
    fa, fb = as_frame(a), as_frame(b)
    for name, frame in (("first", fa), ("second", fb)):
        dup = frame["id"][frame["id"].duplicated()].unique().tolist()
        if dup:
            raise ValueError(f"{name} predictions repeat ids {dup[:5]}")
    only_a = sorted(set(fa["id"]) - set(fb["id"]))
    only_b = sorted(set(fb["id"]) - set(fa["id"]))
    if only_a or only_b:
        raise ValueError(f"predictions cover different test items: {len(only_a)} ids only in the first "
                         f"(e.g. {only_a[:5]}), {len(only_b)} only in the second (e.g. {only_b[:5]})")
    joined = fa[["id", "label", "pred"]].merge(fb[["id", "label", "pred"]], on="id", suffixes=("_a", "_b"))
    clash = joined.loc[joined["label_a"] != joined["label_b"], "id"].tolist()
    if clash:
        raise ValueError(f"the two sides disagree on the true label of ids {clash[:5]}")
    return joined.rename(columns={"label_a": "label"}).drop(columns="label_b").sort_values("id", ignore_index=True)


def mcnemar_exact(a, b) -> dict:
    """Exact McNemar test on paired correctness: only items where exactly one model is
    right carry information; under "no difference" each such item goes either way with p=1/2."""
    joined = align(a, b)
    ok_a, ok_b = joined["pred_a"] == joined["label"], joined["pred_b"] == joined["label"]
    only_a, only_b = int((ok_a & ~ok_b).sum()), int((~ok_a & ok_b).sum())
    n = only_a + only_b
    p = binomtest(min(only_a, only_b), n, 0.5).pvalue if n else 1.0
    return {"n": len(joined), "only_a_correct": only_a, "only_b_correct": only_b,
            "both_correct": int((ok_a & ok_b).sum()), "both_wrong": int((~ok_a & ~ok_b).sum()),
            "accuracy_a": float(ok_a.mean()), "accuracy_b": float(ok_b.mean()), "p_value": float(p)}


def paired_bootstrap(a, b, labels: list[str], n_resamples: int = 1000, seed: int = 42) -> dict:
    """Difference in macro F1 and accuracy (b minus a) with the same resampled items on
    both sides; the p-value is twice the share of resamples on the other side of zero."""
    joined = align(a, b)
    frame_a = joined.rename(columns={"pred_a": "pred"})[["id", "label", "pred"]]
    frame_b = joined.rename(columns={"pred_b": "pred"})[["id", "label", "pred"]]
    true, pred_a, k = _codes(frame_a, labels)
    _, pred_b, _ = _codes(frame_b, labels)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(joined), size=(n_resamples, len(joined)))
    acc_a, f1_a = _scores_of_resamples(true, pred_a, k, len(labels), idx)
    acc_b, f1_b = _scores_of_resamples(true, pred_b, k, len(labels), idx)
    full = np.arange(len(joined))[None, :]
    point = [_scores_of_resamples(true, p, k, len(labels), full) for p in (pred_a, pred_b)]
    diff_f1, diff_acc = f1_b - f1_a, acc_b - acc_a

    def p_value(diff):
        if np.all(diff == 0):
            return 1.0
        return float(min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())))

    return {"n": len(joined), "macro_f1_diff": float(point[1][1][0] - point[0][1][0]),
            "macro_f1_diff_ci": np.percentile(diff_f1, [2.5, 97.5]).tolist(), "macro_f1_p_value": p_value(diff_f1),
            "accuracy_diff": float(point[1][0][0] - point[0][0][0]),
            "accuracy_diff_ci": np.percentile(diff_acc, [2.5, 97.5]).tolist(), "accuracy_p_value": p_value(diff_acc)}


def compare_pair(a, b, labels: list[str], name_a: str, name_b: str, n_resamples: int = 1000, seed: int = 42) -> dict:
    """Both paired tests of `b` against `a`, labelled, for the report and recommendations."""
    return {"a": name_a, "b": name_b, "mcnemar": mcnemar_exact(a, b),
            "bootstrap": paired_bootstrap(a, b, labels, n_resamples, seed)}


def out_of_scope_pair(a, b) -> dict | None:
    """The out-of-scope items of two prediction tables, paired by id: how many each model alone
    forced into an intent, and McNemar's exact p on those. None when there are none."""
    fa, fb = as_frame(a), as_frame(b)
    forced = lambda f: {i: p not in (OUT_OF_SCOPE, UNPARSEABLE)  # noqa: E731
                        for i, lab, p in zip(f["id"], f["label"], f["pred"]) if lab == OUT_OF_SCOPE}
    xa, xb = forced(fa), forced(fb)
    ids = sorted(set(xa) & set(xb))
    if not ids:
        return None
    only_a, only_b = sum(xa[i] and not xb[i] for i in ids), sum(xb[i] and not xa[i] for i in ids)
    n = only_a + only_b
    return {"n": len(ids), "forced_a": sum(xa[i] for i in ids), "forced_b": sum(xb[i] for i in ids),
            "only_a_forced": only_a, "only_b_forced": only_b,
            "p_value": float(binomtest(min(only_a, only_b), n, 0.5).pvalue) if n else 1.0}


def wilson(k: int, n: int, z: float = 1.959964) -> list[float]:
    """Wilson score interval (95%) of a proportion k/n: unlike k/n +- 2 standard errors it stays
    inside [0, 1] and is not zero-width at 0 of n or n of n."""
    if not n:
        return [math.nan, math.nan]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [max(0.0, centre - half), min(1.0, centre + half)]


def top_confusions(metrics: dict, k: int = 3, min_count: int = 1) -> list[tuple[str, str, int]]:
    """The most frequent (true, predicted) mistakes, unparseable answers excluded."""
    conf = metrics["confusion"]
    pairs = [(t, p, conf["matrix"][i][j]) for i, t in enumerate(conf["labels"])
             for j, p in enumerate(conf["columns"]) if t != p and p != UNPARSEABLE and conf["matrix"][i][j] >= min_count]
    return sorted(pairs, key=lambda x: -x[2])[:k]
