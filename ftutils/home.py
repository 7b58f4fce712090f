"""Where the local backend lives on this machine, for the client and the server alike:
the data dir, its key file and the `server.json` a running server leaves there.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

KEY_FILE = "api_key"
SERVER_FILE = "server.json"
DATA_DIR_ENV = "FTUTILS_DATA_DIR"
KEY_ENV = "FTUTILS_API_KEY"


def data_dir() -> Path:
    """FTUTILS_DATA_DIR, else ~/.ftutils/local."""
    return Path(os.environ.get(DATA_DIR_ENV) or Path.home() / ".ftutils" / "local").expanduser()


def find_key(directory: Path) -> tuple[str, str]:
    """(key, where it came from): FTUTILS_API_KEY, else DIR/api_key, else ("", "missing")."""
    if os.environ.get(KEY_ENV):
        return os.environ[KEY_ENV], f"env {KEY_ENV}"
    path = Path(directory) / KEY_FILE
    if path.exists():
        return path.read_text().strip(), "local api_key file"
    return "", "missing"


def ensure_key(directory: Path) -> str:
    """The key a server must use: found as `find_key` does, else made into DIR/api_key (0600)."""
    key, _ = find_key(directory)
    if key:
        return key
    path = Path(directory) / KEY_FILE
    key = "ftl-" + secrets.token_urlsafe(32)
    # O_EXCL: two servers starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return key


def read_server_info(directory: Path) -> dict | None:
    """What DIR/server.json says (`url`, `pid`), or None when there is none or it is unreadable."""
    try:
        info = json.loads((Path(directory) / SERVER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None
