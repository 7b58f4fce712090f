"""Models: the base models, every fine-tuned model and every kept checkpoint.

`resolve` turns any model id the API accepts into (base model, adapter folder or None);
chat completions use it too, so listing and serving can never disagree.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from fastapi import APIRouter, Request

from ftutils import openai_rules
from ftutils.local import errors, schemas

router = APIRouter(prefix="/models")


def _base_models(state) -> list:
    from ftutils.local import base_models
    return base_models.list_models(state.settings.data_dir, state.settings.extra_models,
                                   state.settings.model_aliases)


def resolve(state, model_id: str) -> tuple[str, Path | None]:
    """(local base model id, adapter folder) for a base, alias, fine-tuned or checkpoint model id."""
    from ftutils.local.base_models import local_base

    aliases = state.settings.model_aliases
    if any(m.id == model_id for m in _base_models(state)):
        return local_base(model_id, aliases), None
    if openai_rules.is_fine_tuned(model_id):
        row = state.db.get("models", model_id)
        if row is not None:
            return local_base(row["base_model"], aliases), Path(row["path"])
        ckpt = state.jobs.checkpoint_by_model(model_id)
        if ckpt is not None:
            return local_base(openai_rules.base_of(model_id), aliases), Path(ckpt["path"])
    raise errors.model_not_found(model_id)


def _all(state) -> list[schemas.Model]:
    out = [schemas.Model(id=m.id, created=m.created, owned_by=m.owned_by) for m in _base_models(state)]
    out += [schemas.Model(id=r["id"], created=r["created"], owned_by=r["owned_by"]) for r in state.db.all("models")]
    out += [schemas.Model(id=r["fine_tuned_model_checkpoint"], created=r["created_at"], owned_by=state.settings.org)
            for r in state.db.all("checkpoints")]
    return out


@router.get("")
def list_models(request: Request):
    return {"object": "list", "data": [m.dump() for m in _all(request.app.state)]}


@router.get("/{model_id}")
def retrieve_model(request: Request, model_id: str):
    for model in _all(request.app.state):
        if model.id == model_id:
            return model.dump()
    raise errors.model_not_found(model_id)


@router.delete("/{model_id}")
def delete_model(request: Request, model_id: str):
    state = request.app.state
    row = state.db.get("models", model_id)
    if row is None:
        if any(m.id == model_id for m in _all(state)):
            raise errors.APIError(403, f"You cannot delete {model_id}: only fine-tuned models can be deleted.",
                                  param="model", code="model_not_deletable")
        raise errors.model_not_found(model_id)
    state.db.delete("models", model_id)
    path = Path(row["path"]).resolve()
    if path.is_relative_to(state.settings.jobs_dir):  # never follow a row outside our own tree
        shutil.rmtree(path, ignore_errors=True)
    return schemas.ModelDeleted(id=model_id, deleted=True).dump()
