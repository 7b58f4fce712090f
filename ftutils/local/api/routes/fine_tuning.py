"""Fine-tuning jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints.

Routes check the request (`job_requests`) and call the job service (`ftutils.local.store.jobs`),
which owns every status change; the worker process does the work.
"""
from __future__ import annotations

import re
from typing import Optional

from fastapi import APIRouter, Query, Request

from ftutils.local.api import errors, job_requests, schemas
from ftutils.local.api.auth import checked_id
from ftutils.local.store.jobs import JobStateError

router = APIRouter(prefix="/fine_tuning/jobs")


def get_job_row(jobs, job_id: str) -> dict:
    row = jobs.get(checked_id("job", job_id, "fine-tuning job", "fine_tuning_job_id"))
    if row is None:
        raise errors.not_found("fine-tuning job", job_id, "fine_tuning_job_id")
    return row


@router.post("")
def create_job(request: Request, body: schemas.CreateFineTuningJobRequest):
    state = request.app.state
    row = state.store.jobs.create(**job_requests.job_fields(body, state.models, state.store.files))
    return schemas.FineTuningJob.from_row(row, state.settings.org).dump()


@router.get("")
def list_jobs(request: Request, after: Optional[str] = None, limit: int = Query(20, ge=1, le=1000)):
    state = request.app.state
    metadata = {match.group(1): value for key, value in request.query_params.multi_items()
                if (match := re.fullmatch(r"metadata\[(.+)\]", key))}
    rows, more = state.store.jobs.page(metadata=metadata, after=after, limit=limit)
    return schemas.page([schemas.FineTuningJob.from_row(r, state.settings.org) for r in rows], more)


@router.get("/{job_id}")
def retrieve_job(request: Request, job_id: str):
    state = request.app.state
    return schemas.FineTuningJob.from_row(get_job_row(state.store.jobs, job_id), state.settings.org).dump()


def _change(request: Request, job_id: str, action: str):
    """cancel, pause or resume through the job service; a job in the wrong status is a 400."""
    state = request.app.state
    row = get_job_row(state.store.jobs, job_id)
    try:
        row = getattr(state.store.jobs, action)(row["id"])
    except JobStateError as exc:
        raise errors.invalid(str(exc), "fine_tuning_job_id", "invalid_state") from None
    return schemas.FineTuningJob.from_row(row, state.settings.org).dump()


@router.post("/{job_id}/cancel")
def cancel_job(request: Request, job_id: str):
    return _change(request, job_id, "cancel")


@router.post("/{job_id}/pause")
def pause_job(request: Request, job_id: str):
    return _change(request, job_id, "pause")


@router.post("/{job_id}/resume")
def resume_job(request: Request, job_id: str):
    return _change(request, job_id, "resume")


@router.get("/{job_id}/events")
def list_events(request: Request, job_id: str, after: Optional[str] = None, limit: int = Query(20, ge=1, le=10000)):
    jobs = request.app.state.store.jobs
    rows, more = jobs.events(get_job_row(jobs, job_id)["id"], after=after, limit=limit)
    return schemas.page([schemas.FineTuningJobEvent.from_row(r) for r in rows], more)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(request: Request, job_id: str, after: Optional[str] = None,
                     limit: int = Query(10, ge=1, le=1000)):
    jobs = request.app.state.store.jobs
    rows, more = jobs.checkpoint_page(get_job_row(jobs, job_id)["id"], after=after, limit=limit)
    return schemas.page([schemas.FineTuningJobCheckpoint.from_row(r) for r in rows], more, first_last="nullable")
