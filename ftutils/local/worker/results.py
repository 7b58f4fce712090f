"""A job's result file, as OpenAI serves it: its step metrics as CSV, base64-encoded.

`ftutils.train.metrics` reads it (and plain CSV). The full-validation pair is filled at epoch
ends only; a resumed job repeats the steps after its checkpoint, so the last record of a step wins.
"""
from __future__ import annotations

import base64
import csv
import io
import math

FILENAME = "step_metrics.csv"
COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
           "full_valid_loss", "full_valid_mean_token_accuracy"]
DECIMALS = 5  # as OpenAI writes them (1.52347)


def finite(record: dict) -> dict:
    """A metrics record without NaN/inf (not JSON): a diverged loss is reported as missing."""
    return {k: v for k, v in record.items()
            if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


def result_csv(records: list[dict]) -> str:
    """OpenAI's step-metrics CSV from a job's metrics records, in the order they were written."""
    rows = {}
    for data in records:
        rows[int(data["step"])] = {"step": int(data["step"]), "train_loss": data.get("train_loss"),
                                   "train_accuracy": data.get("train_mean_token_accuracy"),
                                   **{k: data.get(k) for k in COLUMNS[3:]}}
    out = io.StringIO()
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for step in sorted(rows):
        writer.writerow({k: "" if v is None else round(v, DECIMALS) if isinstance(v, float) else v
                         for k, v in rows[step].items()})
    return out.getvalue()


def result_file(records: list[dict]) -> bytes:
    """The result file's content: the CSV base64-encoded (readers written for OpenAI b64decode it)."""
    return base64.b64encode(result_csv(records).encode())
