"""The whole migration: every job of the source (or those named), oldest first, each saved,
replayed on the target and recorded; then, with `wait`, every replay followed to its end.

A job that fails to migrate (a file the source will not give, a model the target lacks) is
recorded with its error and the others go on; what was saved stays saved.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ftutils.migrate import collect, replay, state as state_mod

DEFAULT_OUT = Path("runs/migration")
COLUMNS = ("source job", "status", "target job", "model", "target status", "fine-tuned model")


class MigrationError(RuntimeError):
    pass


@dataclass
class Summary:
    rows: list = field(default_factory=list)
    """One dict per source job, keyed by COLUMNS, plus "error"."""
    out: Path = DEFAULT_OUT

    @property
    def failed(self) -> list:
        return [r for r in self.rows if r["status"] == "failed"]

    @property
    def ok(self) -> bool:
        """Nothing failed, and no replay that was followed ended other than succeeded."""
        return not self.failed and all(r["target status"] == "succeeded" for r in self.rows if r["followed"])

    def table(self) -> str:
        cells = [[str(r[c] or "-") for c in COLUMNS] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(line.rstrip() for line in lines)


def _source_jobs(source, job_ids):
    if job_ids:
        return [source.fine_tuning.jobs.retrieve(job_id) for job_id in job_ids]
    return sorted(source.fine_tuning.jobs.list(limit=100), key=lambda j: (j.created_at, j.id))


def _url(client) -> str:
    return str(client.base_url).rstrip("/")


def migrate(source, target, out: str | Path = DEFAULT_OUT, job_ids: list | None = None, model: str | None = None,
            wait: bool = False, poll: float = 2.0, log=print) -> Summary:
    """Migrate the succeeded fine-tuning jobs of `source` to `target` (two `openai.OpenAI`
    clients). `job_ids`: only these; `model`: the target base for every replay; `wait`: follow
    each replay to its end. Returns the Summary (its table is what the command prints)."""
    import openai

    out = Path(out)
    with state_mod.locked(out):
        state = state_mod.State(out, _url(source), _url(target))
        summary = Summary(out=out)
        for job in _source_jobs(source, job_ids):
            record = state.job(job.id)
            row = {"source job": job.id, "status": "", "target job": record.get("target_job"),
                   "model": record.get("target_model"), "target status": record.get("target_status", ""),
                   "fine-tuned model": record.get("target_fine_tuned_model"), "error": None, "followed": False}
            summary.rows.append(row)
            if job.status != "succeeded":
                state.update(job.id, status="skipped", source_status=job.status)
                row.update(status="skipped", **{"target status": f"({job.status} on the source)"})
                how = {"cancelled": "was cancelled", "failed": "failed"}.get(job.status, f"is still {job.status}")
                log(f"{job.id}: skipped, it {how} on the source (only succeeded jobs are migrated)")
                continue
            if record.get("status") == "migrated":
                row["status"] = "migrated"
                log(f"{job.id}: already migrated as {record['target_job']}")
                continue
            try:
                _migrate_one(source, target, job, out, state, model, log)
            except (MigrationError, replay.ReplayError, openai.APIError) as exc:
                message = str(exc) if not isinstance(exc, openai.APIError) else f"{job.id}: {exc.message}"
                state.update(job.id, status="failed", error=message)
                row.update(status="failed", error=message)
                log(f"{job.id}: FAILED: {message}")
                continue
            record = state.job(job.id)
            row.update(status="migrated", **{"target job": record["target_job"], "model": record["target_model"],
                                             "target status": record.get("target_status", "")})
        if wait:
            _follow(target, summary, state, poll, log)
        return summary


def _migrate_one(source, target, job, out: Path, state, model: str | None, log) -> None:
    folder = out / job.id
    log(f"{job.id}: saving its files, events and checkpoints to {folder}")
    saved, errors = collect.collect(source, job, folder, _url(source))
    resumed = [f"{v['filename']} from byte {v['resumed_from']}" for v in saved.values() if v["resumed_from"]]
    if resumed:
        log(f"{job.id}: resumed {', '.join(resumed)}")
    record = state.update(job.id, status="in progress", source_status=job.status, source_model=job.model,
                          source_fine_tuned_model=job.fine_tuned_model, saved=saved, error=None)
    if errors:
        raise MigrationError("; ".join(errors) + f" (everything else is saved in {folder})")
    existing = replay.find_replayed(target, job.id)
    if existing is not None:
        state.update(job.id, status="migrated", target_job=existing.id, target_model=existing.model,
                     target_status=existing.status)
        log(f"{job.id}: the target already has it, as {existing.id}")
        return
    fine_tunes = {r.get("source_fine_tuned_model"): r.get("target_fine_tuned_model")
                  for r in state.data["jobs"].values() if r.get("target_fine_tuned_model")}
    base = replay.target_model(target, job, model, fine_tunes)
    uploads = record.setdefault("uploads", {})

    def on_upload(file_id, info):
        uploads[file_id] = info
        state.save()

    inputs = replay.upload_inputs(target, job, folder, saved, uploads, on_upload)
    created = replay.create(target, job, replay.request(job, collect.created_with(job), inputs, base))
    state.update(job.id, status="migrated", target_job=created.id, target_model=created.model,
                 target_status=created.status)
    log(f"{job.id}: created {created.id} on {created.model} at the target")


def _follow(target, summary: Summary, state, poll: float, log) -> None:
    from ftutils.train.jobs import error_text, follow

    for row in summary.rows:
        if row["status"] != "migrated":
            continue
        log(f"{row['source job']}: following {row['target job']} at the target")
        job = follow(target, row["target job"], poll=poll, max_poll=max(poll, 10.0))
        state.update(row["source job"], target_status=job.status, target_fine_tuned_model=job.fine_tuned_model)
        row.update(followed=True, **{"target status": job.status, "fine-tuned model": job.fine_tuned_model})
        if job.status != "succeeded":
            row["error"] = error_text(job)
