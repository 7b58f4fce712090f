"""Fine-tuning jobs: create, list, retrieve, cancel, pause, resume, events, checkpoints.

Routes check the request and call the job service (`app.state.jobs`, ftutils.local.jobs),
which owns every status change; the worker process does the work.
"""
from __future__ import annotations

import re
from typing import Optional

from fastapi import APIRouter, Query, Request

from ftutils import openai_rules
from ftutils.local import errors, schemas
from ftutils.local.integrations import IntegrationError
from ftutils.local.integrations import check as check_integrations
from ftutils.local.jobs import JobStateError
from ftutils.local.routers import checked_id
from ftutils.local.routers.files import get_file_row

router = APIRouter(prefix="/fine_tuning/jobs")


def job_object(row: dict, org: str) -> schemas.FineTuningJob:
    return schemas.FineTuningJob(
        id=row["id"], created_at=row["created_at"], error=row["error"], fine_tuned_model=row["fine_tuned_model"],
        finished_at=row["finished_at"], hyperparameters=row["hyperparameters"], model=row["model"],
        organization_id=org, result_files=row["result_files"], seed=row["seed"], status=row["status"],
        trained_tokens=row["trained_tokens"], training_file=row["training_file"],
        validation_file=row["validation_file"],
        estimated_finish=row["estimated_finish"] if row["status"] == "running" else None,
        metadata=row["metadata"], method=row["method"], integrations=row.get("integrations"))


def event_object(row: dict) -> schemas.FineTuningJobEvent:
    return schemas.FineTuningJobEvent(id=row["id"], created_at=row["created_at"], level=row["level"],
                                      message=row["message"], data=row["data"] or {}, type=row["type"])


def checkpoint_object(row: dict) -> schemas.FineTuningJobCheckpoint:
    return schemas.FineTuningJobCheckpoint(
        id=row["id"], created_at=row["created_at"], fine_tuned_model_checkpoint=row["fine_tuned_model_checkpoint"],
        fine_tuning_job_id=row["job_id"], metrics=row["metrics"], step_number=row["step_number"])


def get_job_row(db, job_id: str) -> dict:
    row = db.get("jobs", checked_id("job", job_id, "fine-tuning job", "fine_tuning_job_id"))
    if row is None:
        raise errors.not_found("fine-tuning job", job_id, "fine_tuning_job_id")
    return row


def _hyperparameters(body: schemas.CreateFineTuningJobRequest) -> tuple[dict, str]:
    """The method's hyperparameters (supervised: from `method` or the deprecated top-level
    field; dpo: from `method.dpo`, with `beta`)."""
    method = body.method or {"type": "supervised"}
    kind = method.get("type")
    if kind == "reinforcement":
        raise errors.invalid("The 'reinforcement' method is not supported by the local backend yet; use 'supervised' "
                             "or 'dpo'.", "method.type", "unsupported_method")
    if kind not in ("supervised", "dpo"):
        raise errors.invalid(f"Invalid value for 'method.type': {kind!r} is not one of "
                             "['supervised', 'dpo', 'reinforcement'].", "method.type", "invalid_value")
    unknown = set(method) - {"type", kind}
    if unknown:
        raise errors.invalid(f"Unrecognized argument for method: {sorted(unknown)[0]!r}.",
                             f"method.{sorted(unknown)[0]}", "unknown_parameter")
    nested = (method.get(kind) or {}).get("hyperparameters")
    if kind == "dpo" and body.hyperparameters is not None:
        raise errors.invalid("Top-level 'hyperparameters' are for supervised jobs; give a DPO job's in "
                             "'method.dpo.hyperparameters'.", "hyperparameters", "invalid_value")
    if nested is not None and body.hyperparameters is not None and nested != body.hyperparameters:
        raise errors.invalid("Give hyperparameters either in 'method' or at the top level, not both.",
                             "hyperparameters", "conflicting_parameters")
    given, prefix = (nested, f"method.{kind}.") if nested is not None else (body.hyperparameters or {}, "")
    if not isinstance(given, dict):
        raise errors.invalid("Invalid value for 'hyperparameters': expected an object.", prefix + "hyperparameters")
    unknown = set(given) - {"n_epochs", "batch_size", "learning_rate_multiplier"} - ({"beta"} if kind == "dpo" else set())
    if unknown:
        name = sorted(unknown)[0]
        raise errors.invalid(f"Unrecognized hyperparameter: '{name}'.", f"{prefix}hyperparameters.{name}",
                             "unknown_parameter")
    values = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto", **given}
    beta = values.pop("beta", "auto")
    try:
        openai_rules.check(**values)
        openai_rules.check_beta(beta)
    except openai_rules.HyperparameterError as exc:
        raise errors.invalid(str(exc), prefix + exc.param, "invalid_value") from None
    hp = {k: values[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
    return ({"beta": beta, **hp} if kind == "dpo" else hp), kind


def _training_input(db, file_id: Optional[str], param: str) -> Optional[str]:
    if file_id is None:
        return None
    try:
        row = get_file_row(db, file_id, param)
    except errors.APIError:
        raise errors.invalid(f"Invalid file ID '{file_id}' for {param}: no such file.", param, "invalid_file") from None
    if row["purpose"] != "fine-tune":
        raise errors.invalid(f"File '{file_id}' has purpose '{row['purpose']}'; {param} needs purpose 'fine-tune'.",
                             param, "invalid_file_purpose")
    return row["id"]


@router.post("")
def create_job(request: Request, body: schemas.CreateFineTuningJobRequest):
    state = request.app.state
    from ftutils.local import base_models
    settings = state.settings
    if not base_models.can_fine_tune(body.model, settings.extra_models, settings.model_aliases):
        known = [m.id for m in base_models.list_models(settings.data_dir, settings.extra_models,
                                                       settings.model_aliases)]
        raise errors.invalid(f"Model {body.model} is not available for fine-tuning or does not exist. "
                             f"Models you can fine-tune here: {', '.join(known)}.", "model", "model_not_available")
    hp, kind = _hyperparameters(body)
    try:
        openai_rules.check_suffix(body.suffix)
        openai_rules.check_metadata(body.metadata)
    except openai_rules.HyperparameterError as exc:
        raise errors.invalid(f"Invalid value for '{exc.param}': {exc}", exc.param, "invalid_value") from None
    try:
        integrations = check_integrations(body.integrations)
    except IntegrationError as exc:
        raise errors.invalid(str(exc), exc.param, "invalid_value") from None
    training = _training_input(state.db, body.training_file, "training_file")
    validation = _training_input(state.db, body.validation_file, "validation_file")
    row = state.jobs.create(model=body.model, training_file=training, validation_file=validation,
                            hyperparameters=hp, method_type=kind, suffix=body.suffix, seed=body.seed,
                            metadata=body.metadata, integrations=integrations)
    return job_object(row, state.settings.org).dump()


@router.get("")
def list_jobs(request: Request, after: Optional[str] = None, limit: int = Query(20, ge=1, le=1000)):
    state = request.app.state
    metadata = {}
    for key, value in request.query_params.multi_items():
        match = re.fullmatch(r"metadata\[(.+)\]", key)
        if match:
            metadata[match.group(1)] = value
    rows, more = state.jobs.page(metadata=metadata, after=after, limit=limit)
    return schemas.page([job_object(r, state.settings.org) for r in rows], more)


@router.get("/{job_id}")
def retrieve_job(request: Request, job_id: str):
    return job_object(get_job_row(request.app.state.db, job_id), request.app.state.settings.org).dump()


def _change(request: Request, job_id: str, action: str):
    """cancel, pause or resume through the job service; a job in the wrong status is a 400."""
    state = request.app.state
    row = get_job_row(state.db, job_id)
    try:
        row = getattr(state.jobs, action)(row["id"])
    except JobStateError as exc:
        raise errors.invalid(str(exc), "fine_tuning_job_id", "invalid_state") from None
    return job_object(row, state.settings.org).dump()


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
    state = request.app.state
    row = get_job_row(state.db, job_id)
    rows, more = state.jobs.events(row["id"], after=after, limit=limit)
    return schemas.page([event_object(r) for r in rows], more)


@router.get("/{job_id}/checkpoints")
def list_checkpoints(request: Request, job_id: str, after: Optional[str] = None,
                     limit: int = Query(10, ge=1, le=1000)):
    state = request.app.state
    row = get_job_row(state.db, job_id)
    rows, more = state.jobs.checkpoint_page(row["id"], after=after, limit=limit)
    return schemas.page([checkpoint_object(r) for r in rows], more, first_last="nullable")
