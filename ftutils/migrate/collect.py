"""One source job saved to disk, everything it is made of, before the source stops answering:

    <out>/<job id>/job.json                      the job as the source returns it, and what it was created with
    <out>/<job id>/files/<file id>/<filename>    its training and validation files, byte for byte
    <out>/<job id>/results/<file id>/<filename>  its result files (OpenAI's: base64 of a metrics CSV)
    <out>/<job id>/events.jsonl                  every event, oldest first
    <out>/<job id>/checkpoints.json              its checkpoints and their metrics

A part that cannot be read is reported with the job and the file, and the rest is still saved.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from ftutils import openai_rules
from ftutils.migrate import transfer

INPUTS = ("training_file", "validation_file")


def created_with(job) -> dict:
    """Everything the job was created with, as jobs.create takes it (the hyperparameters as
    the source resolved them, so the replay trains the same way)."""
    if job.method is not None:
        method = job.method.model_dump(exclude_none=True)
    else:  # a job from before `method`: supervised, with the top-level hyperparameters
        method = {"type": "supervised",
                  "supervised": {"hyperparameters": job.hyperparameters.model_dump(exclude_none=True)}}
    return {"model": job.model, "method": method, "suffix": openai_rules.suffix_of(job.fine_tuned_model),
            "seed": job.seed, "metadata": job.metadata,
            "integrations": [i.model_dump(exclude_none=True) for i in job.integrations or []],
            "training_file": job.training_file, "validation_file": job.validation_file}


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _filename(name: str | None, file_id: str) -> str:
    name = os.path.basename((name or "").replace("\\", "/")).strip()
    return name if name not in ("", ".", "..") else file_id


def collect(client, job, folder: Path, source_url: str) -> tuple[dict, list[str]]:
    """Save `job` under `folder`. Returns (the files saved: source file id -> {role, filename,
    path, bytes, sha256, resumed_from}, one message per part that could not be saved)."""
    import openai

    from ftutils.train.metrics import list_all_events

    folder.mkdir(parents=True, exist_ok=True)
    _write(folder / "job.json", json.dumps({"source": {"base_url": source_url, "job": job.model_dump()},
                                            "created_with": created_with(job)}, indent=2) + "\n")
    wanted = [(role, getattr(job, role)) for role in INPUTS if getattr(job, role)]
    wanted += [("result_file", file_id) for file_id in job.result_files or []]
    files, errors = {}, []
    for role, file_id in wanted:
        try:
            meta = client.files.retrieve(file_id)
        except openai.APIError as exc:
            errors.append(f"{job.id}: {role} {file_id}: the source could not say what it is "
                          f"({getattr(exc, 'status_code', type(exc).__name__)}: {exc.message})")
            continue
        name = _filename(meta.filename, file_id)
        dest = folder / ("results" if role == "result_file" else "files") / file_id / name
        try:
            info = transfer.download(client, file_id, dest, meta.bytes, f"{job.id} {name}")
        except transfer.TransferError as exc:
            errors.append(f"{job.id}: {role} {file_id} ({name}): {exc}")
            continue
        files[file_id] = {"role": role, "filename": name, "path": str(dest.relative_to(folder)), **info}
    try:
        events = list_all_events(client, job.id)
        _write(folder / "events.jsonl", "".join(json.dumps(e.model_dump()) + "\n" for e in events))
    except openai.APIError as exc:
        errors.append(f"{job.id}: events: {exc.message}")
    try:
        checkpoints = [c.model_dump() for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)]
        _write(folder / "checkpoints.json", json.dumps(checkpoints, indent=2) + "\n")
    except openai.APIError as exc:
        errors.append(f"{job.id}: checkpoints: {exc.message}")
    return files, errors
