"""A create-job request checked as OpenAI checks it, into the fields of a new job.

The model must be one the registry can fine-tune (a base, or an OpenAI id aliased to one); the
hyperparameters are the method's (`openai_rules.METHOD_HYPERPARAMETERS`: from `method`, or for
a supervised job the deprecated top-level field), checked against OpenAI's ranges; suffix,
metadata and integrations against its limits; the files must exist with purpose "fine-tune".
Each refusal is the 400 OpenAI answers, naming the parameter.
"""
from __future__ import annotations

from ftutils import openai_rules
from ftutils.local.api import errors, schemas
from ftutils.local.api.auth import ID_PATTERNS
from ftutils.local.worker.integrations import IntegrationError
from ftutils.local.worker.integrations import check as check_integrations

METHODS = ("supervised", "dpo", "reinforcement")


def job_fields(body: schemas.CreateFineTuningJobRequest, models, files) -> dict:
    """Keyword arguments for `Jobs.create`, from a request that passes every check."""
    if not models.can_fine_tune(body.model):
        known = [m.id for m in models.fine_tunable()]
        raise errors.invalid(f"Model {body.model} is not available for fine-tuning or does not exist. "
                             f"Models you can fine-tune here: {', '.join(known)}.", "model", "model_not_available")
    hp, kind = hyperparameters(body)
    try:
        openai_rules.check_suffix(body.suffix)
        openai_rules.check_metadata(body.metadata)
    except openai_rules.HyperparameterError as exc:
        raise errors.invalid(f"Invalid value for '{exc.param}': {exc}", exc.param, "invalid_value") from None
    try:
        integrations = check_integrations(body.integrations)
    except IntegrationError as exc:
        raise errors.invalid(str(exc), exc.param, "invalid_value") from None
    return dict(model=body.model, training_file=_training_input(files, body.training_file, "training_file"),
                validation_file=_training_input(files, body.validation_file, "validation_file"),
                hyperparameters=hp, method_type=kind, suffix=body.suffix, seed=body.seed, metadata=body.metadata,
                integrations=integrations)


def _method(body: schemas.CreateFineTuningJobRequest) -> tuple[str, dict]:
    method = body.method or {"type": "supervised"}
    kind = method.get("type")
    if kind == "reinforcement":
        raise errors.invalid("The 'reinforcement' method is not supported by the local backend yet; use 'supervised' "
                             "or 'dpo'.", "method.type", "unsupported_method")
    if kind not in tuple(openai_rules.METHOD_HYPERPARAMETERS):
        raise errors.invalid(f"Invalid value for 'method.type': {kind!r} is not one of {list(METHODS)}.",
                             "method.type", "invalid_value")
    unknown = set(method) - {"type", kind}
    if unknown:
        raise errors.invalid(f"Unrecognized argument for method: {sorted(unknown)[0]!r}.",
                             f"method.{sorted(unknown)[0]}", "unknown_parameter")
    return kind, method


def hyperparameters(body: schemas.CreateFineTuningJobRequest) -> tuple[dict, str]:
    """The method's hyperparameters, "auto" where not given, and the method."""
    kind, method = _method(body)
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
    unknown = set(given) - set(openai_rules.METHOD_HYPERPARAMETERS[kind])
    if unknown:
        name = sorted(unknown)[0]
        raise errors.invalid(f"Unrecognized hyperparameter: '{name}'.", f"{prefix}hyperparameters.{name}",
                             "unknown_parameter")
    try:
        return openai_rules.checked_hyperparameters(kind, given), kind
    except openai_rules.HyperparameterError as exc:
        raise errors.invalid(str(exc), prefix + exc.param, "invalid_value") from None


def _training_input(files, file_id: str | None, param: str) -> str | None:
    if file_id is None:
        return None
    row = files.get(file_id) if ID_PATTERNS["file"].fullmatch(file_id) else None
    if row is None:
        raise errors.invalid(f"Invalid file ID '{file_id}' for {param}: no such file.", param, "invalid_file")
    if row["purpose"] != "fine-tune":
        raise errors.invalid(f"File '{file_id}' has purpose '{row['purpose']}'; {param} needs purpose 'fine-tune'.",
                             param, "invalid_file_purpose")
    return row["id"]
