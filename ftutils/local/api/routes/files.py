"""Files: upload (streamed to disk, size-limited: `uploads`), list, retrieve, content, delete."""
from __future__ import annotations

from typing import Literal, Optional

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse

from ftutils.local.api import errors, schemas, uploads
from ftutils.local.api.auth import checked_id

router = APIRouter()


def get_file_row(files, file_id: str, param: str | None = None) -> dict:
    row = files.get(checked_id("file", file_id, "File object", param))
    if row is None:
        raise errors.not_found("File object", file_id, param)
    return row


@router.post("/files")
async def create_file(request: Request):
    state = request.app.state
    row = await uploads.save(request, state.store.files, state.settings.max_upload_bytes)
    return schemas.FileObject.from_row(row).dump()


@router.get("/files")
def list_files(request: Request, purpose: Optional[str] = None, limit: int = Query(10000, ge=1, le=10000),
               order: Literal["asc", "desc"] = "desc", after: Optional[str] = None):
    rows, more = request.app.state.store.files.page(purpose=purpose, after=after, limit=limit,
                                                    newest_first=order == "desc")
    return schemas.page([schemas.FileObject.from_row(r) for r in rows], more, first_last="string")


@router.get("/files/{file_id}")
def retrieve_file(request: Request, file_id: str):
    return schemas.FileObject.from_row(get_file_row(request.app.state.store.files, file_id)).dump()


@router.get("/files/{file_id}/content")
def file_content(request: Request, file_id: str):
    files = request.app.state.store.files
    row = get_file_row(files, file_id)
    path = files.path(row["id"])
    if not path.exists():
        raise errors.not_found("File object", file_id)
    return FileResponse(path, media_type="application/octet-stream", filename=row["filename"])


@router.delete("/files/{file_id}")
def delete_file(request: Request, file_id: str):
    files = request.app.state.store.files
    row = get_file_row(files, file_id)
    files.delete(row["id"])
    return schemas.FileDeleted(id=row["id"], deleted=True).dump()
