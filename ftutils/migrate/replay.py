"""A saved job on the target: its files uploaded, then the same job created there.

The target job gets the source job's method and hyperparameters, suffix, seed and metadata,
plus `metadata.migrated_from` = the source job's id. That key is how a run finds a job an
earlier run created even when `migration.json` is lost or the run died before writing it.
Integrations (a W&B project of the source's) stay in job.json and are not replayed. A file
whose upload finished in a run killed before it could record it is uploaded again by the
next run: the target then keeps a spare copy, never a second job.
"""
from __future__ import annotations

from ftutils import openai_rules
from ftutils.migrate import transfer
from ftutils.train import availability

MIGRATED_FROM = "migrated_from"


class ReplayError(RuntimeError):
    pass


def find_replayed(target, source_job_id: str):
    """The target job an earlier run created for `source_job_id`, or None."""
    # The metadata filter narrows the list where the service has it; the check below is the rule.
    for job in target.fine_tuning.jobs.list(limit=100, extra_query={f"metadata[{MIGRATED_FROM}]": source_job_id}):
        if (job.metadata or {}).get(MIGRATED_FROM) == source_job_id:
            return job
    return None


def target_model(target, job, override: str | None, fine_tunes: dict) -> str:
    """`--model`, else the source's model if the target lists it (the local backend lists
    OpenAI's ids as aliases), else the target's replacement for a source fine-tune made by an
    earlier migrated job (`fine_tunes`: source fine-tuned model -> target fine-tuned model)."""
    if override:
        return override
    listed = [m.id for m in target.models.list()]
    if job.model in listed:
        return job.model
    if job.model in fine_tunes:
        return fine_tunes[job.model]
    hint = ("it is a fine-tune: migrate the job that made it first, with --wait, so its replacement exists"
            if openai_rules.is_fine_tuned(job.model) else f"the target lists {', '.join(listed[:8])}")
    raise ReplayError(f"{job.id}: the target has no model {job.model} ({hint}); pass --model BASE")


def upload_inputs(target, job, folder, saved: dict, uploads: dict, on_upload) -> dict:
    """The job's training and validation files on the target: source file id -> target file id.
    `uploads` holds those done by earlier runs; `on_upload(source_id, record)` records each new one."""
    out = {}
    for role in ("training_file", "validation_file"):
        file_id = getattr(job, role)
        if not file_id:
            continue
        if file_id in uploads:
            out[file_id] = uploads[file_id]["id"]
            continue
        info = saved[file_id]
        try:
            record = transfer.upload(target, folder / info["path"], info["filename"], f"{job.id} {info['filename']} up")
        except transfer.TransferError as exc:
            raise ReplayError(f"{job.id}: {role} {file_id} ({info['filename']}): {exc}") from None
        on_upload(file_id, record)
        out[file_id] = record["id"]
    return out


def request(job, settings: dict, inputs: dict, model: str) -> dict:
    """jobs.create's arguments for the replay of `job` (settings: collect.created_with(job))."""
    metadata = {**(settings["metadata"] or {}), MIGRATED_FROM: job.id}
    try:
        openai_rules.check_metadata(metadata)
    except openai_rules.HyperparameterError:
        raise ReplayError(f"{job.id}: its metadata has {len(metadata) - 1} pairs, and the replay needs one more "
                          f"({MIGRATED_FROM}) within OpenAI's {openai_rules.METADATA_MAX_PAIRS}") from None
    out = {"model": model, "training_file": inputs[job.training_file], "method": settings["method"],
           "metadata": metadata}
    if job.validation_file:
        out["validation_file"] = inputs[job.validation_file]
    for key in ("suffix", "seed"):
        if settings[key] is not None:
            out[key] = settings[key]
    return out


def create(target, job, arguments: dict):
    import openai

    try:
        return availability.create_job(target, **arguments)
    except availability.FineTuningUnavailable as exc:
        raise ReplayError(f"{job.id}: {exc}") from None
    except openai.APIStatusError as exc:
        raise ReplayError(f"{job.id}: the target refused the job (HTTP {exc.status_code}): {exc.message}") from None
