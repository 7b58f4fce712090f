"""Plots for 04_evaluate. Each takes data (DataFrames or dicts from ftutils.evaluate) and
returns a matplotlib Figure; none fetches anything."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure


def plot_confusion(confusion: pd.DataFrame, title: str = "Confusion matrix", normalize: bool = False) -> Figure:
    """Heat map of a confusion table (rows: true, columns: predicted, as Evaluation.confusion gives).

    With `normalize`, each row shows shares of that class, so a rare class's errors are as
    visible as a common one's; the counts stay written in the cells."""
    counts = confusion.to_numpy(dtype=float)
    shown = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    fig = Figure(figsize=(1.2 + 0.8 * counts.shape[1], 1.0 + 0.6 * counts.shape[0]), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else max(shown.max(), 1))
    ax.set_xticks(range(counts.shape[1]), [str(c) for c in confusion.columns], rotation=40, ha="right")
    ax.set_yticks(range(counts.shape[0]), [str(i) for i in confusion.index])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = (1 if normalize else max(shown.max(), 1)) / 2
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center",
                        color="white" if shown[i, j] > threshold else "black", fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of row" if normalize else "items")
    return fig


def plot_per_class_f1(per_class_f1: pd.DataFrame, title: str = "F1 per class") -> Figure:
    """Grouped bars: one group per label, one bar per candidate (Evaluation.per_class_f1())."""
    labels, cands = list(per_class_f1.index), list(per_class_f1.columns)
    fig = Figure(figsize=(max(6, 1.1 * len(labels) * max(1, len(cands)) / 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / max(len(cands), 1)
    x = np.arange(len(labels))
    for k, cand in enumerate(cands):
        ax.bar(x + (k - (len(cands) - 1) / 2) * width, per_class_f1[cand].fillna(0).to_numpy(), width, label=str(cand))
    ax.set_xticks(x, labels, rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1")
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(len(cands), 4), loc="upper left", bbox_to_anchor=(0, -0.25))
    return fig


def plot_checkpoints(checkpoints: pd.DataFrame, reference: dict | None = None,
                     title: str = "Metrics by training step") -> Figure:
    """Macro F1 and accuracy against step with their confidence intervals
    (Evaluation.checkpoints()); `reference` draws flat lines, e.g. {"base": 0.31, "tfidf-logreg": 0.8}."""
    fig = Figure(figsize=(7, 3.6), layout="constrained")
    ax = fig.add_subplot()
    frame = checkpoints.sort_values("step")
    for metric, marker in (("macro_f1", "o"), ("accuracy", "s")):
        if metric not in frame or frame[metric].isna().all():
            continue
        steps, values = frame["step"].to_numpy(dtype=float), frame[metric].to_numpy(dtype=float)
        line, = ax.plot(steps, values, marker=marker, label=metric.replace("_", " "))
        lo, hi = f"{metric}_lo", f"{metric}_hi"
        if lo in frame and hi in frame:
            ax.fill_between(steps, frame[lo].to_numpy(dtype=float), frame[hi].to_numpy(dtype=float),
                            color=line.get_color(), alpha=0.15)
    for k, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, linestyle="--", linewidth=1, color=f"C{k + 2}", label=f"{name} (macro F1)")
    ax.set_xlabel("training step")
    ax.set_ylabel("score (95% CI shaded)")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def plot_runs(runs: pd.DataFrame, metrics=("ft_macro_f1", "ft_accuracy", "baseline_macro_f1", "base_macro_f1"),
              title: str = "Runs compared") -> Figure:
    """Bars per run (compare_runs' frame) for each metric present; the fine-tune's macro F1 CI as error bars."""
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    fig = Figure(figsize=(max(6, 1.2 * len(runs) * max(1, len(metrics)) / 2), 3.6), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(runs))
    width = 0.8 / max(len(metrics), 1)
    for k, metric in enumerate(metrics):
        values = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float)
        err = None
        if metric == "ft_macro_f1" and {"ft_macro_f1_lo", "ft_macro_f1_hi"} <= set(runs.columns):
            lo = pd.to_numeric(runs["ft_macro_f1_lo"], errors="coerce").to_numpy(dtype=float)
            hi = pd.to_numeric(runs["ft_macro_f1_hi"], errors="coerce").to_numpy(dtype=float)
            err = np.nan_to_num(np.vstack([values - lo, hi - values]).clip(min=0))
        ax.bar(x + (k - (len(metrics) - 1) / 2) * width, np.nan_to_num(values), width, yerr=err,
               capsize=3, label=metric.replace("_", " "))
    ax.set_xticks(x, [str(r) for r in runs.index], rotation=20, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    if metrics:
        ax.legend(fontsize=8)
    return fig
