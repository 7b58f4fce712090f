"""Uploaded files and result files: their rows and their bytes on disk (`files/<file-id>`).

A file is written to a hidden temporary file beside its final place and only renamed to
`files/<file-id>` once complete and accepted; the row is added after the rename. So a rejected
or broken upload leaves neither a file nor a row, and start-up sweeps away any temporary file
a crash left, and any file whose row is gone (`sweep_orphans`).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from ftutils.local.store.db import Database, new_id, now


class Files:
    def __init__(self, db: Database, folder: Path):
        self.db, self.folder = db, Path(folder)

    def get(self, file_id: str) -> dict | None:
        return self.db.get("files", file_id)

    def path(self, file_id: str) -> Path:
        return self.folder / file_id

    def temporary(self) -> Path:
        """Where an upload is written until it is accepted (a crash leaves it to the sweep)."""
        return self.folder / f".upload-{secrets.token_hex(8)}.tmp"

    def add(self, tmp: Path, *, filename: str, purpose: str, size: int) -> dict:
        """The upload written to `tmp`, made file `file-…` with its row; neither if the row fails."""
        row = {"id": new_id("file-"), "bytes": size, "created_at": now(), "filename": filename,
               "purpose": purpose, "status": "processed"}
        final = self.path(row["id"])
        os.replace(tmp, final)
        try:
            return self.db.insert("files", row)
        except BaseException:
            final.unlink(missing_ok=True)
            raise

    def write_result(self, content: bytes, filename: str) -> dict:
        """A job's result file on disk; its row, for the job service to insert with the job's end."""
        file_id = new_id("file-")
        path = self.path(file_id)
        tmp = path.with_name(f".upload-{file_id}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        return {"id": file_id, "bytes": len(content), "created_at": now(), "filename": filename,
                "purpose": "fine-tune-results", "status": "processed"}

    def page(self, *, purpose: str | None = None, after: str | None = None, limit: int = 10000,
             newest_first: bool = True) -> tuple[list[dict], bool]:
        where, args = ("purpose = ?", (purpose,)) if purpose else ("1", ())
        return self.db.page("files", where=where, args=args, after=after, limit=limit, newest_first=newest_first)

    def delete(self, file_id: str) -> None:
        self.db.delete("files", file_id)  # row first: a file on disk without a row is swept at start-up
        self.path(file_id).unlink(missing_ok=True)

    def sweep_orphans(self) -> None:
        """Remove what an interrupted upload or delete left: temp files, files without a row."""
        known = {r["id"] for r in self.db.all("files")}
        for path in self.folder.iterdir():
            if path.name.startswith(".upload-") or (path.name.startswith("file-") and path.name not in known):
                path.unlink(missing_ok=True)
            else:
                path.chmod(0o600)  # private, also if an older version stored it 0644
