"""The local backend's state in SQLite (WAL) and on disk: the only code that touches rows.

`db` is the schema and generic row access; `jobs` the job service (every status change, the
events, checkpoints and the model a job makes); `files` the uploaded and result files;
`fine_tunes` the fine-tuned models and checkpoints as models. `Store` holds one of each over
one database, for a process (the API, the worker, `ftutils export`). Imports nothing else of
`ftutils.local`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ftutils.local.store.db import Database
from ftutils.local.store.files import Files
from ftutils.local.store.fine_tunes import FineTunes
from ftutils.local.store.jobs import Jobs


@dataclass
class Store:
    db: Database
    jobs: Jobs
    files: Files
    fine_tunes: FineTunes

    @classmethod
    def open(cls, db_path: Path, files_dir: Path, jobs_dir: Path, org: str = "local") -> "Store":
        db = Database(db_path)
        return cls(db, Jobs(db, org), Files(db, files_dir), FineTunes(db, jobs_dir, org))

    def close(self) -> None:
        self.db.close()
