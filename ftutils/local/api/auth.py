"""Who may call /v1 (the bearer key), and which ids may reach the disk."""
from __future__ import annotations

import re
import secrets

from fastapi import Request

from ftutils.local.api import errors

ID_PATTERNS = {
    "file": re.compile(r"file-[A-Za-z0-9]{1,64}"),
    "job": re.compile(r"ftjob-[A-Za-z0-9]{1,64}"),
}


def require_key(request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not key.strip():
        raise errors.missing_key()
    expected = request.app.state.settings.api_key
    if not secrets.compare_digest(key.strip().encode(), expected.encode()):
        raise errors.wrong_key()


def checked_id(kind: str, value: str, label: str, param: str | None = None) -> str:
    """Ids reach the disk as file names, so anything but our own id shape is a plain 404."""
    if not ID_PATTERNS[kind].fullmatch(value):
        raise errors.not_found(label, value, param)
    return value
