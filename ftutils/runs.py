"""Run folders: `runs/<name>/` holds one run's data, manifest, evaluation and the values
each notebook records for tests (`results/<notebook>.json`)."""
from __future__ import annotations

import json
from pathlib import Path


def run_path(run_dir: str | Path) -> Path:
    path = Path(run_dir)
    path.mkdir(parents=True, exist_ok=True)
    return path


def record(run_dir: str | Path, notebook: str, **values) -> dict:
    """Store the figures a notebook's tests assert on (merged into results/<notebook>.json).

    Values must be JSON-serialisable; tests read these, never printed text."""
    path = run_path(run_dir) / "results" / f"{notebook}.json"
    path.parent.mkdir(exist_ok=True)
    merged = {**load_record(run_dir, notebook), **values}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=2, default=str))
    tmp.replace(path)
    return merged


def load_record(run_dir: str | Path, notebook: str) -> dict:
    path = Path(run_dir) / "results" / f"{notebook}.json"
    return json.loads(path.read_text()) if path.exists() else {}
