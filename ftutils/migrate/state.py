"""`migration.json`: which source job became which target job, and how far each got.

Written after every step, to a temporary file renamed over the old one, so a run killed at
any moment leaves the last complete state; the next run reads it and goes on from there.
"""
from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path

FILE = "migration.json"
VERSION = 1


class StateError(RuntimeError):
    pass


class State:
    """The migration's record: `source`, `target` (base URLs) and `jobs` (source job id ->
    its record: status, source_status, target_job, target_model, uploads, downloads, error)."""

    def __init__(self, out: Path, source: str, target: str):
        self.path = Path(out) / FILE
        self.data = {"version": VERSION, "source": source, "target": target, "jobs": {}}
        if self.path.exists():
            try:
                found = json.loads(self.path.read_text())
            except ValueError as exc:
                raise StateError(f"{self.path}: not valid JSON ({exc}); move it away to start over") from None
            if (found.get("source"), found.get("target")) != (source, target):
                raise StateError(f"{self.path} records a migration from {found.get('source')} to {found.get('target')}, "
                                 f"not from {source} to {target}: give this one another --out")
            self.data = found

    def job(self, job_id: str) -> dict:
        return self.data["jobs"].setdefault(job_id, {})

    def update(self, job_id: str, **values) -> dict:
        record = self.job(job_id)
        record.update(values)
        self.save()
        return record

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{FILE}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)


@contextmanager
def locked(out: Path):
    """One migration at a time per --out: a second one would replay what the first is doing."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"another ftutils migrate is writing to {out}; wait for it to end") from None
        yield
