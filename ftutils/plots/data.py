"""Plots for 02_prepare: how long the examples are, and how the labels are spread.

Each function takes data and returns a matplotlib Figure. The figure is closed in pyplot
before it is returned, so a notebook shows it once (as the cell's value) and a script or
test that never displays it leaks nothing.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import matplotlib.pyplot as plt
import numpy as np

# A limit far beyond the longest example would squash every bar against the left edge;
# past this multiple of the longest example it is named in the corner instead of drawn.
LIMIT_DRAW_FACTOR = 4
# A class with fewer than this fraction of the largest class's examples is called out; the
# same rule as ftutils.data.hygiene.imbalance_findings, so the chart and the warning agree.
IMBALANCE_RATIO = 0.2
HIGHLIGHT, NORMAL = "#d62728", "#4c72b0"


def token_histogram(lengths: Iterable[int], limit: int | None = None,
                    title: str = "Tokens per training example", bins: int | str = "auto"):
    """Histogram of per-example token counts, with the training limit marked.

    `lengths` is e.g. `token_stats(examples, model)["n_tokens"]`; `limit` the longest example
    the model trains on (`df.attrs["limit"]`). Examples over the limit are truncated by
    OpenAI, so their bars are coloured and counted in the legend.
    """
    values = np.asarray(list(lengths), dtype=float)
    if values.size == 0:
        raise ValueError("token_histogram needs at least one length; got none")
    if np.isnan(values).any() or (values < 0).any():
        raise ValueError("token_histogram: lengths must be non-negative numbers")
    fig, ax = plt.subplots(figsize=(7, 3.5))
    draw_limit = limit is not None and limit <= LIMIT_DRAW_FACTOR * values.max()
    edges = np.histogram_bin_edges(np.append(values, limit) if draw_limit else values, bins=bins)
    counts, edges, patches = ax.hist(values, bins=edges, color=NORMAL, edgecolor="white")
    n_over = int((values > limit).sum()) if limit is not None else 0
    if draw_limit:
        for patch, left in zip(patches, edges[:-1]):
            if left >= limit:
                patch.set_facecolor(HIGHLIGHT)
        ax.axvline(limit, color=HIGHLIGHT, linestyle="--", linewidth=1.5,
                   label=f"limit {limit:,} tokens ({n_over} over)")
    ax.axvline(np.median(values), color="black", linewidth=1, alpha=0.6, label=f"median {np.median(values):,.0f}")
    # Above the bars (the y range leaves room), so it never hides one.
    ax.legend(loc="upper center", ncol=2, frameon=False, fontsize=9)
    far = f"  (training limit {limit:,}: far to the right, {n_over} over)" if limit is not None and not draw_limit else ""
    ax.set_xlabel("tokens per example" + far)
    ax.set_ylabel("examples")
    ax.set_title(f"{title} (n={values.size:,}, max {values.max():,.0f})")
    ax.set_ylim(0, counts.max() * 1.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _as_counts(counts) -> dict[str, int]:
    """Label -> count from a mapping, a pandas Series, or a DataFrame with label/count columns."""
    if hasattr(counts, "columns"):
        columns = list(counts.columns)
        label = "label" if "label" in columns else None
        count = "count" if "count" in columns else ("n" if "n" in columns else None)
        if count is None:
            raise ValueError(f"label_balance: a DataFrame needs a 'count' column, got {columns}")
        keys = counts[label] if label else counts.index
        return {str(k): int(v) for k, v in zip(keys, counts[count])}
    if isinstance(counts, Mapping) or hasattr(counts, "items"):
        return {str(k): int(v) for k, v in counts.items()}
    raise TypeError(f"label_balance wants label counts (dict, Series or DataFrame), got {type(counts).__name__}")


def label_balance(counts, title: str = "Examples per label", highlight: Iterable[str] | None = None):
    """Bar chart of examples per label, largest first, with under-represented labels in red.

    `counts` is a dict, a `Series.value_counts()`, or `class_balance(labels)`. By default a
    label is highlighted when it has under a fifth of the largest label's examples; pass
    `highlight` to choose the labels yourself.
    """
    data = _as_counts(counts)
    if not data:
        raise ValueError("label_balance needs at least one label; got none")
    total = sum(data.values())
    if highlight is None:
        largest = max(data.values())
        highlight = {k for k, v in data.items() if v < IMBALANCE_RATIO * largest}
    highlight = set(highlight)
    ordered = sorted(data.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = [k for k, _ in ordered]
    values = [v for _, v in ordered]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.4))
    colors = [HIGHLIGHT if k in highlight else NORMAL for k in labels]
    bars = ax.barh(labels, values, color=colors)
    ax.invert_yaxis()  # largest on top, as it reads
    for bar, value in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f" {value} ({value / total:.0%})", va="center", fontsize=9)
    ax.set_xlim(0, max(values) * 1.2)
    ax.set_xlabel("examples")
    ax.set_ylabel("label")
    subtitle = f"; under-represented: {', '.join(sorted(highlight))}" if highlight else ""
    ax.set_title(f"{title} (n={total:,}{subtitle})", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    plt.close(fig)
    return fig
