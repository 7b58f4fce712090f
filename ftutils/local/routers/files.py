"""Files: upload (streamed to disk, size-limited), list, retrieve, content, delete.

An upload is written to a hidden temporary file beside its final place and only renamed
to `files/<file-id>` once complete and accepted; the row is added after the rename. So a
rejected or broken upload leaves neither a file nor a row, and start-up sweeps away any
temporary file a crash left (`sweep_orphans`).
"""
from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from starlette.requests import ClientDisconnect
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ftutils.local import errors, schemas
from ftutils.local.db import new_id, now
from ftutils.local.routers import checked_id

router = APIRouter()
log = logging.getLogger("ftutils.local")
UPLOAD_PURPOSES = set(schemas.UploadPurpose.__args__)
FORM_SLACK = 64 * 1024        # multipart boundaries and the purpose field around the file
MAX_DRAIN = 64 * 1024 * 1024  # read (and drop) this much past the limit so the client sees the 413


def file_object(row: dict) -> schemas.FileObject:
    return schemas.FileObject(id=row["id"], bytes=row["bytes"], created_at=row["created_at"],
                              filename=row["filename"], purpose=row["purpose"], status=row["status"])


def get_file_row(db, file_id: str, param: str | None = None) -> dict:
    row = db.get("files", checked_id("file", file_id, "File object", param))
    if row is None:
        raise errors.not_found("File object", file_id, param)
    return row


class _Upload:
    """Callbacks for python-multipart: the `file` part goes to disk, other fields to memory."""

    def __init__(self, tmp_path: Path, limit: int):
        self.tmp_path, self.limit = tmp_path, limit
        self.fields: dict[str, bytes] = {}
        self.filename: str | None = None
        self.size = 0
        self.too_large = False
        self._out = None
        self._name = None
        self._header = [b"", b""]
        self._headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict:
        return {"on_part_begin": self._part_begin, "on_header_field": self._field, "on_header_value": self._value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._part_end}

    def _part_begin(self):
        self._headers, self._header, self._name = {}, [b"", b""], None

    def _field(self, data, start, end):
        self._header[0] += data[start:end]

    def _value(self, data, start, end):
        self._header[1] += data[start:end]

    def _header_end(self):
        self._headers[self._header[0].strip().lower()] = self._header[1].strip()
        self._header = [b"", b""]

    def _headers_done(self):
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == "file":
            raw = options.get(b"filename", b"upload").decode("utf-8", "replace")
            self.filename = os.path.basename(raw.replace("\\", "/")) or "upload"
            self._out = os.fdopen(os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
        else:
            self.fields[self._name] = b""

    def _data(self, data, start, end):
        if self._name != "file":
            if len(self.fields.get(self._name, b"")) < FORM_SLACK:
                self.fields[self._name] += data[start:end]
            return
        self.size += end - start
        if self.size > self.limit:
            self.too_large = True
        if not self.too_large:
            self._out.write(data[start:end])

    def _part_end(self):
        if self._out is not None:
            self._out.close()
            self._out = None

    def close(self):
        self._part_end()


async def _receive(request: Request, upload: _Upload, parser: MultipartParser, limit: int) -> None:
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if upload.too_large:
                if received > limit + MAX_DRAIN:
                    break
                continue
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise errors.invalid(f"Could not parse the multipart body: {exc}", "file", "invalid_multipart") from None
    except ClientDisconnect:
        # The client gave up (Ctrl-C, a dropped connection): one line, not a traceback; the
        # caller removes the partial file. Nobody is left to read the answer.
        log.warning("upload aborted by the client after %d bytes; nothing was kept", received)
        raise errors.invalid("The upload was aborted by the client.", "file", "upload_aborted") from None


@router.post("/files")
async def create_file(request: Request):
    settings, db = request.app.state.settings, request.app.state.db
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in options:
        raise errors.invalid("Uploads must be multipart/form-data with a 'file' and a 'purpose'.", "file")
    declared = int(request.headers.get("content-length") or 0)
    if declared > settings.max_upload_bytes + FORM_SLACK:
        # Said up front: answer before reading any of it, rather than draining gigabytes.
        raise errors.too_large(settings.max_upload_bytes)
    tmp = settings.files_dir / f".upload-{secrets.token_hex(8)}.tmp"
    upload = _Upload(tmp, settings.max_upload_bytes)
    try:
        await _receive(request, upload, MultipartParser(options[b"boundary"], upload.callbacks()),
                       settings.max_upload_bytes)
        upload.close()
        if upload.too_large:
            raise errors.too_large(settings.max_upload_bytes)
        if upload.filename is None:
            raise errors.invalid("Missing required parameter: 'file'.", "file", "missing_required_parameter")
        purpose = upload.fields.get("purpose", b"").decode("utf-8", "replace").strip()
        if not purpose:
            raise errors.invalid("Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter")
        if purpose not in UPLOAD_PURPOSES:
            raise errors.invalid(f"Invalid value for 'purpose': '{purpose}' is not one of "
                                 f"{sorted(UPLOAD_PURPOSES)}.", "purpose", "invalid_value")
        if purpose == "fine-tune" and not upload.filename.lower().endswith(".jsonl"):
            raise errors.invalid(f"Invalid file format for Fine-Tuning API. Must be .jsonl (got '{upload.filename}').",
                                 "file", "invalid_file_format")
        row = {"id": new_id("file-"), "bytes": upload.size, "created_at": now(),
               "filename": upload.filename, "purpose": purpose, "status": "processed"}
        final = settings.files_dir / row["id"]
        os.replace(tmp, final)
        try:
            row = await run_in_threadpool(db.insert, "files", row)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        return file_object(row).dump()
    finally:
        upload.close()
        tmp.unlink(missing_ok=True)


@router.get("/files")
def list_files(request: Request, purpose: Optional[str] = None, limit: int = Query(10000, ge=1, le=10000),
               order: Literal["asc", "desc"] = "desc", after: Optional[str] = None):
    db = request.app.state.db
    where, args = ("purpose = ?", (purpose,)) if purpose else ("1", ())
    rows, more = db.page("files", where=where, args=args, after=after, limit=limit, newest_first=order == "desc")
    return schemas.page([file_object(r) for r in rows], more, first_last="string")


@router.get("/files/{file_id}")
def retrieve_file(request: Request, file_id: str):
    return file_object(get_file_row(request.app.state.db, file_id)).dump()


@router.get("/files/{file_id}/content")
def file_content(request: Request, file_id: str):
    row = get_file_row(request.app.state.db, file_id)
    path = request.app.state.settings.files_dir / row["id"]
    if not path.exists():
        raise errors.not_found("File object", file_id)
    return FileResponse(path, media_type="application/octet-stream", filename=row["filename"])


@router.delete("/files/{file_id}")
def delete_file(request: Request, file_id: str):
    db = request.app.state.db
    row = get_file_row(db, file_id)
    db.delete("files", row["id"])  # row first: a file on disk without a row is swept at start-up
    (request.app.state.settings.files_dir / row["id"]).unlink(missing_ok=True)
    return schemas.FileDeleted(id=row["id"], deleted=True).dump()


def sweep_orphans(settings, db) -> None:
    """Remove what an interrupted upload or delete left: temp files, files without a row."""
    known = {r["id"] for r in db.all("files")}
    for path in settings.files_dir.iterdir():
        if path.name.startswith(".upload-") or (path.name.startswith("file-") and path.name not in known):
            path.unlink(missing_ok=True)
        else:
            path.chmod(0o600)  # private, also if an older version stored it 0644
