"""The one reader of training metrics, whether they come from a finished job's result
file or, while it runs, from its `metrics` events.

Every function returns the same columns (COLUMNS), one row per step, sorted by step, NaN
where a value was not measured at that step (OpenAI measures validation loss only every
few steps, and the full validation set only at epoch ends).
"""
from __future__ import annotations

import base64
import binascii
import io
import math

import pandas as pd

# OpenAI's result-file columns first, then what its metrics events and checkpoints add.
COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
           "full_valid_loss", "full_valid_mean_token_accuracy"]

# Result files have changed names over the API's life (the legacy /fine-tunes files used
# the long names); events use `train_mean_token_accuracy` where the CSV says `train_accuracy`.
_ALIASES = {
    "training_loss": "train_loss",
    "train_mean_token_accuracy": "train_accuracy",
    "training_token_accuracy": "train_accuracy",
    "validation_loss": "valid_loss",
    "valid_accuracy": "valid_mean_token_accuracy",
    "validation_token_accuracy": "valid_mean_token_accuracy",
    "full_validation_loss": "full_valid_loss",
    "full_valid_accuracy": "full_valid_mean_token_accuracy",
}


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    df = df.rename(columns={c: _ALIASES.get(c.strip(), c.strip()) for c in df.columns})
    df = df.loc[:, ~df.columns.duplicated()]
    for column in COLUMNS:
        if column not in df.columns:
            df[column] = math.nan
    df = df[COLUMNS].apply(pd.to_numeric, errors="coerce")
    df = df.dropna(subset=["step"])
    df["step"] = df["step"].astype(int)
    # Events may repeat a step (re-sent after a retry): the last word wins.
    df = df.drop_duplicates(subset="step", keep="last").sort_values("step")
    return df.reset_index(drop=True)


def empty() -> pd.DataFrame:
    return _frame(pd.DataFrame(columns=COLUMNS))


def _decode(raw: bytes) -> str:
    """The result file's text: OpenAI serves it base64-encoded, the local backend plain."""
    text = raw.decode("utf-8-sig", errors="replace").strip()
    # base64 has no commas, so a comma in the header line means plain CSV.
    if not text or "," in text.splitlines()[0]:
        return text
    try:
        decoded = base64.b64decode("".join(text.split()), validate=True).decode("utf-8-sig")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the result file is neither CSV nor base64-encoded CSV") from exc
    return decoded.strip()


def read_result_file(client_or_bytes, file_id: str | None = None) -> pd.DataFrame:
    """Metrics from a job's result file: pass the raw bytes, or a client and the file id."""
    if isinstance(client_or_bytes, (bytes, bytearray)):
        raw = bytes(client_or_bytes)
    elif isinstance(client_or_bytes, str):
        raw = client_or_bytes.encode()
    else:
        if not file_id:
            raise ValueError("read_result_file(client, file_id): the file id is missing")
        raw = client_or_bytes.files.content(file_id).read()
    text = _decode(raw)
    if not text:
        return empty()
    return _frame(pd.read_csv(io.StringIO(text)))


def metrics_from_events(events) -> pd.DataFrame:
    """Metrics from `metrics` events (openai types, dicts, or an events DataFrame with `data`)."""
    if isinstance(events, pd.DataFrame):
        events = events.to_dict("records")
    rows = []
    for event in events:
        get = event.get if isinstance(event, dict) else lambda k, e=event: getattr(e, k, None)
        if get("type") != "metrics" or not isinstance(get("data"), dict):
            continue
        rows.append(get("data"))
    return _frame(pd.DataFrame(rows)) if rows else empty()


def list_all_events(client, job_id: str) -> list:
    """Every event of a job, oldest first (the API pages newest first)."""
    return list(reversed(list(client.fine_tuning.jobs.list_events(job_id, limit=100))))


def job_metrics(client, job) -> pd.DataFrame:
    """The job's metrics: its result file once there is one, else what its events say so far."""
    if isinstance(job, str):
        job = client.fine_tuning.jobs.retrieve(job)
    for file_id in job.result_files or []:
        try:
            df = read_result_file(client, file_id)
        except ValueError:
            continue  # an unreadable result file still leaves the events to fall back on
        if len(df):
            # The CSV lacks the full-validation columns; events carry them.
            full = metrics_from_events(list_all_events(client, job.id))
            if len(full):
                df = df.set_index("step").combine_first(full.set_index("step")).reset_index()
                df = _frame(df)
            return df
    return metrics_from_events(list_all_events(client, job.id))


def summary(df: pd.DataFrame) -> dict:
    """First and last values worth reporting (JSON-ready, None where unmeasured)."""
    def last(column):
        values = df[column].dropna()
        return None if values.empty else float(values.iloc[-1])

    def first(column):
        values = df[column].dropna()
        return None if values.empty else float(values.iloc[0])

    out = {"step": int(df["step"].iloc[-1]) if len(df) else None}
    for column in COLUMNS[1:]:
        out[column] = last(column)
    out["first_train_loss"] = first("train_loss")
    return out


def checkpoint_rows(checkpoints) -> list[dict]:
    """Checkpoints in any form the client meets them (`jobs.checkpoints`' table, the run
    manifest's records with nested `metrics`, or plain dicts with `step_number`) as
    `[{"step", "valid"}]` by step; `valid` is the full-set validation loss where measured,
    else the batch one, else None."""
    if checkpoints is None:
        return []
    rows = checkpoints.to_dict("records") if isinstance(checkpoints, pd.DataFrame) else list(checkpoints)
    out = []
    for row in rows:
        flat = {**(row.get("metrics") or {}), **{k: v for k, v in row.items() if v is not None}}
        valid = next((flat[k] for k in ("full_valid_loss", "valid_loss")
                      if flat.get(k) is not None and not pd.isna(flat[k])), None)
        out.append({"step": int(flat.get("step", flat.get("step_number", 0))), "valid": valid})
    return sorted(out, key=lambda r: r["step"])
