"""A job's checkpoints as a table: what to call (the model id) and the losses there, one line
each, with losses to 3 decimals. The job monitor shows it live; 03 shows it once the job is done."""

from __future__ import annotations

import html

import pandas as pd

CHECKPOINT_COLUMNS = {"step": "step", "model": "model", "train_loss": "train loss (batch)",
                      "valid_loss": "valid loss (batch)", "full_valid_loss": "valid loss (full set)"}


def checkpoints_table(df: pd.DataFrame):
    """A job's checkpoints (jobs.checkpoints) as the monitor shows them, for a notebook cell:
    what to call and the losses there, one line each."""
    from IPython.display import HTML

    return HTML(checkpoints_html(df)) if len(df) else "no checkpoints"


def checkpoints_html(df: pd.DataFrame) -> str:
    """Checkpoints as a compact table: losses to 3 decimals, model ids on one line; the
    widget scrolls it sideways rather than letting it run off the notebook."""
    shown = df[[c for c in CHECKPOINT_COLUMNS if c in df]].rename(columns=CHECKPOINT_COLUMNS)
    shown = shown.dropna(axis=1, how="all")
    head = "".join(f"<th style='text-align:{'left' if c == 'model' else 'right'};padding:2px 8px'>{html.escape(c)}</th>"
                   for c in shown.columns)
    rows = []
    for record in shown.itertuples(index=False):
        cells = []
        for column, value in zip(shown.columns, record):
            text = "" if pd.isna(value) else f"{value:.3f}" if isinstance(value, float) else str(value)
            style = "padding:2px 8px;white-space:nowrap;" + ("text-align:left;font-family:monospace;font-size:90%"
                                                             if column == "model" else "text-align:right")
            cells.append(f"<td style='{style}'>{html.escape(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<table style='border-collapse:collapse;font-size:90%'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
