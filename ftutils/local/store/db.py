"""SQLite state shared by the API process and the worker process: the schema and generic
row access (what a job's rows mean, and how they change, is `ftutils.local.store.jobs`).

WAL lets the API read while the worker writes; every write is one statement or one
`BEGIN IMMEDIATE` transaction, so two processes never see half a change. Each thread
gets its own connection (FastAPI runs sync routes in a thread pool). Rows come back as
plain dicts with JSON columns decoded; `seq` orders rows and backs the `after` cursors.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import string
import threading
import time
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, bytes INTEGER NOT NULL,
  created_at INTEGER NOT NULL, filename TEXT NOT NULL, purpose TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL,
  model TEXT NOT NULL, training_file TEXT NOT NULL, validation_file TEXT, status TEXT NOT NULL,
  hyperparameters TEXT NOT NULL, method TEXT NOT NULL, suffix TEXT, seed INTEGER NOT NULL,
  metadata TEXT, error TEXT, fine_tuned_model TEXT, finished_at INTEGER, trained_tokens INTEGER,
  estimated_finish INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
  stop_request TEXT, resume_from TEXT, validated INTEGER NOT NULL DEFAULT 0,
  crashes INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, seq);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL,
  data TEXT);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL,
  created_at INTEGER NOT NULL, step_number INTEGER NOT NULL, metrics TEXT NOT NULL,
  fine_tuned_model_checkpoint TEXT UNIQUE NOT NULL, path TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS checkpoints_job ON checkpoints(job_id, seq);
CREATE TABLE IF NOT EXISTS models (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created INTEGER NOT NULL,
  owned_by TEXT NOT NULL, base_model TEXT NOT NULL, job_id TEXT NOT NULL, path TEXT NOT NULL);
"""
# Columns added since the first release: CREATE TABLE IF NOT EXISTS leaves an older
# db.sqlite as it was, so each is added to it on open (SQLite's ADD COLUMN is instant).
ADDED_COLUMNS = [("jobs", "crashes", "INTEGER NOT NULL DEFAULT 0"), ("jobs", "integrations", "TEXT")]
JSON_COLUMNS = {"hyperparameters", "method", "metadata", "error", "result_files", "data", "metrics", "integrations"}
ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(n))


def now() -> int:
    return int(time.time())


def _decode(cursor: sqlite3.Cursor, row: tuple) -> dict:
    out = {}
    for (name, *_), value in zip(cursor.description, row):
        out[name] = json.loads(value) if name in JSON_COLUMNS and value is not None else value
    return out


def encode(value):
    return json.dumps(value) if isinstance(value, (dict, list)) else value


class Database:
    def __init__(self, path: str | Path):
        self.path = str(path)
        self._local = threading.local()
        self.conn.executescript(SCHEMA)
        self._migrate()
        for suffix in ("", "-wal", "-shm"):  # private, also if an older version made it 0644
            with contextlib.suppress(FileNotFoundError):
                os.chmod(self.path + suffix, 0o600)

    def _migrate(self) -> None:
        with self.transaction() as conn:
            for table, column, decl in ADDED_COLUMNS:
                if column not in {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    @property
    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = _decode
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL survives a process crash
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self):
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- generic helpers ------------------------------------------------------------
    def insert(self, table: str, row: dict) -> dict:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", [encode(v) for v in row.values()])
        return self.get(table, row["id"])

    def get(self, table: str, id: str) -> dict | None:
        return self.conn.execute(f"SELECT * FROM {table} WHERE id = ?", (id,)).fetchone()

    def update(self, table: str, id: str, **fields) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", [*map(encode, fields.values()), id])

    def delete(self, table: str, id: str) -> bool:
        return self.conn.execute(f"DELETE FROM {table} WHERE id = ?", (id,)).rowcount > 0

    def page(self, table: str, *, where: str = "1", args: tuple = (), after: str | None = None,
             limit: int = 20, newest_first: bool = True) -> tuple[list[dict], bool]:
        """One page of rows after the cursor `after` (an id), and whether more follow."""
        op, order = ("<", "DESC") if newest_first else (">", "ASC")
        if after is not None:
            where += f" AND seq {op} COALESCE((SELECT seq FROM {table} WHERE id = ?), -1)"
            args = (*args, after)
        rows = self.conn.execute(f"SELECT * FROM {table} WHERE {where} ORDER BY seq {order} LIMIT ?",
                                 (*args, limit + 1)).fetchall()
        return rows[:limit], len(rows) > limit

    def all(self, table: str) -> list[dict]:
        return self.conn.execute(f"SELECT * FROM {table} ORDER BY seq").fetchall()
