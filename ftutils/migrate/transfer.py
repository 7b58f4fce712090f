"""Files between the two services, byte for byte, with progress bars.

A download streams into `<name>.part` and is renamed once complete; a later run finds the
`.part` of an interrupted one and asks only for the rest (an HTTP Range request; a service
that answers the whole file instead is read from the start). An upload reads the saved
file as it goes (the bar follows the bytes sent), waits until the target has processed it,
and reads it back to check that the target holds the same bytes.
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from tqdm.auto import tqdm

CHUNK = 1 << 20


class TransferError(RuntimeError):
    pass


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _bar(total: int | None, initial: int, label: str):
    # disable=None: a bar on a terminal, silence in logs and CI.
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                disable=None, leave=False)


def download(client, file_id: str, dest: Path, expected_bytes: int | None, label: str) -> dict:
    """The file's content saved at `dest` exactly as the service sends it.

    Returns {"bytes", "sha256", "resumed_from"} (resumed_from: bytes already in the .part, or
    None for a fresh download or one already complete)."""
    import openai

    dest = Path(dest)
    if dest.exists() and (expected_bytes is None or dest.stat().st_size == expected_bytes):
        return {"bytes": dest.stat().st_size, "sha256": sha256(dest), "resumed_from": None}
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if expected_bytes is not None and start > expected_bytes:
        part.unlink()
        start = 0
    resumed = None
    if not (expected_bytes is not None and start == expected_bytes and start > 0):
        headers = {"Range": f"bytes={start}-"} if start else None
        try:
            with client.files.with_streaming_response.content(file_id, extra_headers=headers) as response:
                if start and response.status_code == 206:
                    resumed, mode = start, "ab"
                else:  # 200: the whole file, whatever was asked
                    start, mode = 0, "wb"
                with open(part, mode) as out, _bar(expected_bytes, start, label) as bar:
                    for block in response.iter_bytes(CHUNK):
                        out.write(block)
                        bar.update(len(block))
        except openai.APIStatusError as exc:
            raise TransferError(f"the service answered HTTP {exc.status_code}: {exc.message}") from None
        except (openai.APIConnectionError, OSError) as exc:
            raise TransferError(f"the download broke off ({type(exc).__name__}: {exc}); the "
                                f"{part.stat().st_size if part.exists() else 0} bytes received are kept in {part.name} "
                                "and the next run asks only for the rest") from None
    size = part.stat().st_size
    if expected_bytes is not None and size != expected_bytes:
        raise TransferError(f"received {size} bytes, but the service says the file has {expected_bytes}; "
                            f"kept as {part.name}, asked again from there on the next run")
    os.replace(part, dest)
    return {"bytes": size, "sha256": sha256(dest), "resumed_from": resumed}


class _Progress(io.RawIOBase):
    """The saved file as the upload reads it, moving a bar; seekable, so a retried request
    starts again from the top."""

    def __init__(self, fh, bar):
        self._fh, self._bar = fh, bar

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fh.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._fh.seek(offset, whence)
        self._bar.n = position
        self._bar.refresh()
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def read(self, size: int = -1) -> bytes:
        block = self._fh.read(size)
        self._bar.update(len(block))
        return block

    def readinto(self, buffer) -> int:
        block = self.read(len(buffer))
        buffer[:len(block)] = block
        return len(block)


def upload(client, path: Path, filename: str, label: str, purpose: str = "fine-tune") -> dict:
    """Upload `path` under its original `filename`, wait until the target has processed it and
    check the bytes it holds are the saved ones. Returns {"id", "bytes", "sha256"}."""
    import openai

    path = Path(path)
    digest, size = sha256(path), path.stat().st_size
    try:
        with open(path, "rb") as fh, _bar(size, 0, label) as bar:
            uploaded = client.files.create(file=(filename, _Progress(fh, bar)), purpose=purpose)
        uploaded = client.files.wait_for_processing(uploaded.id, poll_interval=0.5, max_wait_seconds=600)
    except openai.APIStatusError as exc:
        raise TransferError(f"the target answered HTTP {exc.status_code}: {exc.message}") from None
    except openai.APIConnectionError as exc:
        raise TransferError(f"the upload broke off ({type(exc).__name__}); the next run uploads it again") from None
    if uploaded.status == "error":
        raise TransferError(f"the target rejected it as {uploaded.id}: {uploaded.status_details or 'no details given'}")
    held = hashlib.sha256(client.files.content(uploaded.id).read()).hexdigest()
    if held != digest:
        raise TransferError(f"the target holds different bytes as {uploaded.id} (sha256 {held[:12]}…, "
                            f"saved {digest[:12]}…)")
    return {"id": uploaded.id, "bytes": size, "sha256": digest}
