"""Plots for 04_evaluate. Each takes data (DataFrames or dicts from ftutils.evaluate) and
returns a matplotlib Figure; none fetches anything."""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ftutils.plots.palette import candidate_colours

ZERO_BAR = 0.012  # a bar of 0 is drawn this tall (hatched), so "scored 0" never looks like "missing"


def _bars(ax, x, values, width, colour, label):
    """Bars where a 0 stays visible: a thin hatched stub in the same colour."""
    values = np.nan_to_num(np.asarray(values, dtype=float))
    ax.bar(x, values, width, color=colour, label=label)
    _zero_stubs(ax, x, values, width, colour)


def _zero_stubs(ax, x, values, width, colour):
    """A thin hatched stub where a bar is 0, so a zero reads as a measured 0, not a missing bar."""
    zero = np.nan_to_num(np.asarray(values, dtype=float)) == 0
    if zero.any():
        ax.bar(np.asarray(x)[zero], ZERO_BAR * ax.get_ylim()[1] if ax.get_ylim()[1] > 1.5 else ZERO_BAR,
               width, color="white", edgecolor=colour, hatch="////", linewidth=0.8)


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
    """Grouped bars: one group per label, one bar per candidate (Evaluation.per_class_f1()),
    each candidate in its palette colour; an F1 of 0 shows as a hatched stub."""
    labels, cands = list(per_class_f1.index), list(per_class_f1.columns)
    palette = candidate_colours(cands)
    fig = Figure(figsize=(min(12, max(7, 0.22 * len(labels) * max(1, len(cands)))), 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_ylim(0, 1.05)
    width = 0.8 / max(len(cands), 1)
    x = np.arange(len(labels))
    for k, cand in enumerate(cands):
        _bars(ax, x + (k - (len(cands) - 1) / 2) * width, per_class_f1[cand].fillna(0).to_numpy(), width,
              palette[str(cand)], str(cand))
    ax.set_xticks(x, labels, rotation=25, ha="right")
    ax.set_xlabel("true class")
    ax.set_ylabel("F1 (hatched stub: 0)")
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(len(cands), 5), loc="lower left", bbox_to_anchor=(0, 1.08))
    return fig


def plot_out_of_scope(forced: dict, title: str = "Out-of-scope messages forced into an intent") -> Figure:
    """Bars per candidate: {name: (forced, n)}; a candidate that forced none shows a hatched stub."""
    names = list(forced)
    palette = candidate_colours(names)
    fig = Figure(figsize=(max(6, 0.8 * len(names) + 2), 3.4), layout="constrained")
    ax = fig.add_subplot()
    n = max((total for _, total in forced.values()), default=1) or 1
    ax.set_ylim(0, n * 1.1)
    for k, name in enumerate(names):
        _bars(ax, [k], [forced[name][0]], 0.7, palette[name], name)
        ax.text(k, forced[name][0] + n * 0.02, f"{forced[name][0]}/{forced[name][1]}", ha="center", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right")
    ax.set_xlabel("candidate")
    ax.set_ylabel("out-of-scope items answered\nwith an intent")
    ax.set_title(title)
    return fig


def plot_checkpoints(checkpoints: pd.DataFrame, reference: dict | None = None,
                     title: str = "Test scores by training step", valid_loss: dict | None = None,
                     kept_step: int | None = None) -> Figure:
    """Macro F1 and accuracy on the test set against step with their confidence intervals
    (Evaluation.checkpoints()), each point in its candidate's colour; `reference` draws flat
    lines, e.g. {"base": 0.31, "tfidf-logreg": 0.8}; `valid_loss` ({step: loss}) the
    validation loss on a second axis, to see whether it picks the step the test set prefers;
    `kept_step` marks the checkpoint kept by validation."""
    fig = Figure(figsize=(8, 4.0), layout="constrained")
    ax = fig.add_subplot()
    frame = checkpoints.sort_values("step")
    names = list(frame["candidate"]) if "candidate" in frame else []
    palette = candidate_colours(names + list(reference or {}))
    for metric, marker, style in (("macro_f1", "o", "-"), ("accuracy", "s", ":")):
        if metric not in frame or frame[metric].isna().all():
            continue
        steps, values = frame["step"].to_numpy(dtype=float), frame[metric].to_numpy(dtype=float)
        ax.plot(steps, values, style, color="#444444", linewidth=1, label=f"{metric.replace('_', ' ')} (test)")
        if names:
            ax.scatter(steps, values, c=[palette[n] for n in names], marker=marker, s=40, zorder=3, edgecolors="black",
                       linewidths=0.5)
        lo, hi = f"{metric}_lo", f"{metric}_hi"
        if metric == "macro_f1" and lo in frame and hi in frame:
            ax.fill_between(steps, frame[lo].to_numpy(dtype=float), frame[hi].to_numpy(dtype=float),
                            color="#444444", alpha=0.12, label="macro F1 95% CI")
    for name, value in (reference or {}).items():
        ax.axhline(value, linestyle="--", linewidth=1.2, color=palette[name], label=f"{name} (macro F1)")
    if kept_step is not None:
        ax.axvline(kept_step, linestyle="--", linewidth=1.5, color="#2ca02c", label=f"kept by validation (step {kept_step})")
    ax.set_xlabel("training step (one point per epoch's checkpoint; the last is the final model)")
    ax.set_ylabel("test score")
    ax.set_ylim(0, 1.05)
    ax.set_title(title)
    handles, labels = ax.get_legend_handles_labels()
    if valid_loss:
        twin = ax.twinx()
        xs = sorted(valid_loss)
        line, = twin.plot(xs, [valid_loss[x] for x in xs], "^-", color="#c0392b", label="validation loss (right)")
        twin.set_ylabel("validation loss (whole file)", color="#c0392b")
        handles, labels = handles + [line], labels + [line.get_label()]
    ax.legend(handles, labels, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.08), ncols=3)
    return fig


RUN_METRICS = {"ft_macro_f1": ("fine-tuned", "kept fine-tune macro F1", None),
               "ft_accuracy": ("fine-tuned", "kept fine-tune accuracy", "..."),
               "baseline_macro_f1": ("tfidf-logreg", "tfidf-logreg macro F1", None),
               "base_macro_f1": ("base", "base macro F1", None)}


def plot_runs(runs: pd.DataFrame, metrics=tuple(RUN_METRICS), title: str = "Runs compared") -> Figure:
    """Bars per run (compare_runs' frame) for each metric present, in the candidates' colours;
    the fine-tune's macro-F1 CI as error bars."""
    metrics = [m for m in metrics if m in runs and runs[m].notna().any()]
    palette = candidate_colours([RUN_METRICS.get(m, (m,))[0] for m in metrics])
    fig = Figure(figsize=(max(6, 1.2 * len(runs) * max(1, len(metrics)) / 2), 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.set_ylim(0, 1.05)
    x = np.arange(len(runs))
    width = 0.8 / max(len(metrics), 1)
    for k, metric in enumerate(metrics):
        cand, label, hatch = RUN_METRICS.get(metric, (metric, metric.replace("_", " "), None))
        values = pd.to_numeric(runs[metric], errors="coerce").to_numpy(dtype=float)
        err = None
        if metric == "ft_macro_f1" and {"ft_macro_f1_lo", "ft_macro_f1_hi"} <= set(runs.columns):
            lo = pd.to_numeric(runs["ft_macro_f1_lo"], errors="coerce").to_numpy(dtype=float)
            hi = pd.to_numeric(runs["ft_macro_f1_hi"], errors="coerce").to_numpy(dtype=float)
            err = np.nan_to_num(np.vstack([values - lo, hi - values]).clip(min=0))
        at = x + (k - (len(metrics) - 1) / 2) * width
        ax.bar(at, np.nan_to_num(values), width, yerr=err, capsize=3,
               label=label, color=palette[cand], hatch=hatch, edgecolor="white" if hatch else None)
        _zero_stubs(ax, at[~np.isnan(values)], values[~np.isnan(values)], width, palette[cand])
    ax.set_xticks(x, [str(r) for r in runs.index], rotation=20, ha="right")
    ax.set_xlabel("run")
    ax.set_ylabel("test score (fine-tune: 95% CI)")
    if metrics:  # above the axes, under the title (the title is the figure's, so they cannot overlap)
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0, 1.02), ncols=2, frameon=False)
    fig.suptitle(title)
    return fig
