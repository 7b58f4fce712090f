"""Run folders: `runs/<name>/` holds one run's data, manifest, evaluation and the values
each notebook records for tests (`results/<notebook>.json`)."""
from __future__ import annotations

import json
import os
from pathlib import Path


def project_root() -> Path:
    """The repository the notebooks live in: relative paths in notebook parameters
    (`runs/demo`, `data/samples/...`) mean the same from JupyterLab (whose kernel starts in
    notebooks/) as from papermill or the CLI (which start at the top)."""
    env = os.environ.get("FTUTILS_PROJECT_ROOT")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parents[2]  # ftutils/train/runs.py -> the repository
    return here if (here / "notebooks").is_dir() else Path.cwd()


def project_path(path: str | Path) -> Path:
    """An absolute path as is; a relative one against the project root."""
    path = Path(path)
    return path if path.is_absolute() else project_root() / path


def run_path(run_dir: str | Path) -> Path:
    path = project_path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _plain(value):
    """A value as JSON-ready data: dataclasses (a Connection, a Diagnosis) as dicts, objects with
    `to_dict()` (an Evaluation, an Advice, a DataFrame as records) through it."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        return value.to_dict("records")
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def record(run_dir: str | Path, notebook: str, **values) -> None:
    """Store what a notebook's tests assert on (merged into results/<notebook>.json): one short
    call at the end of each notebook, so the tests read values, never printed text.

    Values are JSON-ready data, dataclasses or objects with `to_dict()`; nothing is returned, so the
    cell shows nothing."""
    path = run_path(run_dir) / "results" / f"{notebook}.json"
    path.parent.mkdir(exist_ok=True)
    merged = {**load_record(run_dir, notebook), **{k: _plain(v) for k, v in values.items()}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, default=str))
    tmp.replace(path)


def load_record(run_dir: str | Path, notebook: str) -> dict:
    path = project_path(run_dir) / "results" / f"{notebook}.json"
    return json.loads(path.read_text()) if path.exists() else {}


MANIFEST = "run.json"
# Whatever looks like a credential is refused outright: the manifest is meant to be shared.
_SECRET_WORDS = ("api_key", "apikey", "secret", "password", "authorization")


def write_manifest(run_dir: str | Path, **fields) -> dict:
    """Merge `fields` into `run_dir/run.json`, the record of one fine-tuning run.

    04_evaluate and `ftutils watch` read it; the keys are stable:

    - backend: "openai" | "local"; base_url: the API's URL (no key)
    - base_model: the model fine-tuned, as the job names it (a local base id, or an OpenAI model id)
    - files: {"train": {"id", "path"}, "validation": {"id", "path"} | None, "test": {"path"}}
    - hyperparameters: {"n_epochs", "batch_size", "learning_rate_multiplier"} as the job resolved them
    - job_id, status ("succeeded" | "failed" | "cancelled" | ...), error ({"code", "message", "param"} | None)
    - fine_tuned_model: "ft:..." or None; trained_tokens: int or None
    - checkpoints: [{"id", "step", "model", "metrics": {train_loss, valid_loss, ...}}], by step
    - final_metrics: {"step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
      "full_valid_loss", "full_valid_mean_token_accuracy", "first_train_loss"}
    - diagnosis: {"verdict", "findings", "best_checkpoint_step", "looks_like", "cause", "epochs", "comparison"}
      (`diagnose.Diagnosis`: the verdict with the per-item comparison it rests on, each epoch's validation losses)

    Other keys are kept as given. A key that looks like a credential raises ValueError.
    """
    for key in _walk_keys(fields):
        if any(word in key.lower() for word in _SECRET_WORDS):
            raise ValueError(f"refusing to write {key!r} into the run manifest: keys and secrets never go on disk")
    path = run_path(run_dir) / MANIFEST
    merged = {**read_manifest(run_dir), **fields}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, default=str))
    tmp.replace(path)
    return merged


def manifest_from_job(conn, job, data_dir: str | Path, metrics_df, checkpoints, diagnosis=None) -> dict:
    """The manifest's fields for a fine-tuning `job` run on `conn` (a `connect.Connection`):
    pass them to `write_manifest(run_dir, **fields)`.

    `data_dir` holds the run's train/validation/test.jsonl; `metrics_df` is the job's
    metrics (`metrics.job_metrics`), `checkpoints` its `jobs.checkpoints` table, `diagnosis`
    a `diagnose.Diagnosis` (or None). The base model and file ids are the job's own."""
    from ftutils.train import jobs, metrics  # pandas and the openai types; the rest of runs needs neither

    data_dir = Path(data_dir)
    return {
        "backend": conn.backend, "base_url": conn.base_url, "base_model": job.model,
        "files": {"train": {"id": job.training_file, "path": str(data_dir / "train.jsonl")},
                  "validation": ({"id": job.validation_file, "path": str(data_dir / "validation.jsonl")}
                                 if job.validation_file else None),
                  "test": {"path": str(data_dir / "test.jsonl")}},
        "hyperparameters": jobs.resolved_hyperparameters(job), "job_id": job.id, "status": job.status,
        "error": job.error.model_dump() if job.error else None, "fine_tuned_model": job.fine_tuned_model,
        "trained_tokens": job.trained_tokens, "checkpoints": jobs.checkpoint_records(checkpoints),
        "final_metrics": metrics.summary(metrics_df), "diagnosis": diagnosis.to_dict() if diagnosis else None,
    }


def read_manifest(run_dir: str | Path) -> dict:
    """The manifest written by `write_manifest` ({} when there is none yet)."""
    path = project_path(run_dir) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _walk_keys(value):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _walk_keys(inner)
    elif isinstance(value, (list, tuple)):
        for inner in value:
            yield from _walk_keys(inner)
