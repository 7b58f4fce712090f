"""An upload, streamed to disk as it arrives: size-limited, and accepted only whole.

The multipart body is parsed as it comes (python-multipart): the `file` part goes to a hidden
temporary file, other fields to memory, and a body over the limit is read no further than it
must be for the client to see the 413. Once complete and accepted, the store renames it into
place and adds its row (`ftutils.local.store.files.Files.add`); a rejected or broken upload
leaves neither a file nor a row.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ftutils.local.api import errors, schemas

log = logging.getLogger("ftutils.local")
UPLOAD_PURPOSES = set(schemas.UploadPurpose.__args__)
FORM_SLACK = 64 * 1024        # multipart boundaries and the purpose field around the file
MAX_DRAIN = 64 * 1024 * 1024  # read (and drop) this much past the limit so the client sees the 413


async def save(request: Request, files, limit: int) -> dict:
    """The upload of `request` as a file of the store `files` (its row), or the APIError
    OpenAI would answer with; nothing is kept unless it is accepted."""
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data" or b"boundary" not in options:
        raise errors.invalid("Uploads must be multipart/form-data with a 'file' and a 'purpose'.", "file")
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + FORM_SLACK:
        # Said up front: answer before reading any of it, rather than draining gigabytes.
        raise errors.too_large(limit)
    tmp = files.temporary()
    upload = _Upload(tmp, limit)
    try:
        await _receive(request, upload, MultipartParser(options[b"boundary"], upload.callbacks()), limit)
        upload.close()
        purpose = _accepted(upload, limit)
        return await run_in_threadpool(lambda: files.add(tmp, filename=upload.filename, purpose=purpose,
                                                         size=upload.size))
    finally:
        upload.close()
        tmp.unlink(missing_ok=True)


def _accepted(upload: "_Upload", limit: int) -> str:
    """The upload's purpose, once it passes OpenAI's checks."""
    if upload.too_large:
        raise errors.too_large(limit)
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
    return purpose


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
