"""Models: the base models, OpenAI's ids aliased to them, every fine-tuned model and every kept
checkpoint, as the model registry lists them (`ftutils.local.models.registry`). Each carries
`shutdown_date` as OpenAI's do: OpenAI's date for an alias of one of its ids, null for the
server's own models."""
from __future__ import annotations

from fastapi import APIRouter, Request

from ftutils.local.api import errors, schemas
from ftutils.local.models.registry import ModelNotFound

router = APIRouter(prefix="/models")


def _listed(state) -> list[schemas.Model]:
    return [schemas.Model(id=m.id, created=m.created, owned_by=m.owned_by, shutdown_date=m.shutdown_date)
            for m in state.models.listed()]


@router.get("")
def list_models(request: Request):
    return {"object": "list", "data": [m.dump() for m in _listed(request.app.state)]}


@router.get("/{model_id}")
def retrieve_model(request: Request, model_id: str):
    for model in _listed(request.app.state):
        if model.id == model_id:
            return model.dump()
    raise ModelNotFound(model_id)


@router.delete("/{model_id}")
def delete_model(request: Request, model_id: str):
    state = request.app.state
    if not state.store.fine_tunes.delete(model_id):
        if any(m.id == model_id for m in _listed(state)):
            raise errors.APIError(403, f"You cannot delete {model_id}: only fine-tuned models can be deleted.",
                                  param="model", code="model_not_deletable")
        raise ModelNotFound(model_id)
    return schemas.ModelDeleted(id=model_id, deleted=True).dump()
