"""A job's `integrations`, as OpenAI takes them: `[{"type": "wandb", "wandb": {"project", ...}}]`.

OpenAI streams a job's metrics to Weights & Biases. Here the route checks and keeps the
list (the job echoes it), and the worker, when the `wandb` package is importable, writes
the metrics to an *offline* W&B run in the job's folder (nothing leaves the machine;
`wandb sync <dir>` uploads it later). Without the package a job event says it was
ignored. An integration never fails a job: any error it raises becomes a warning event.
"""
from __future__ import annotations

import importlib.util
import logging

WANDB_KEYS = {"project", "name", "entity", "tags"}  # FineTuningJobWandbIntegration's fields
log = logging.getLogger("ftutils.local.integrations")


class IntegrationError(ValueError):
    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def check(integrations) -> list[dict] | None:
    """The list as it will be echoed, or IntegrationError naming the param as OpenAI would."""
    if integrations is None:
        return None
    if not isinstance(integrations, list):
        raise IntegrationError("integrations", "Invalid value for 'integrations': expected an array.")
    for i, item in enumerate(integrations):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind != "wandb":
            raise IntegrationError(f"integrations[{i}].type", f"Invalid value for 'integrations[{i}].type': "
                                   f"{kind!r}; the only integration type is 'wandb'.")
        wandb = item.get("wandb")
        if not isinstance(wandb, dict) or not isinstance(wandb.get("project"), str) or not wandb["project"]:
            raise IntegrationError(f"integrations[{i}].wandb.project",
                                   f"Missing required parameter: 'integrations[{i}].wandb.project'.")
        unknown = sorted(set(wandb) - WANDB_KEYS)
        if unknown:
            raise IntegrationError(f"integrations[{i}].wandb.{unknown[0]}",
                                   f"Unrecognized argument: 'integrations[{i}].wandb.{unknown[0]}'.")
        tags = wandb.get("tags")
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            raise IntegrationError(f"integrations[{i}].wandb.tags",
                                   f"Invalid value for 'integrations[{i}].wandb.tags': expected an array of strings.")
    return integrations


class _WandbRun:
    """One offline W&B run that takes the job's metrics records."""

    def __init__(self, run, warn):
        self.run, self.warn = run, warn

    def log(self, record: dict) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in record.items() if k not in ("step", "total_steps")},
                         step=int(record["step"]))
        except Exception as exc:  # a broken integration must not break the job
            self.warn(f"The wandb integration stopped logging: {type(exc).__name__}: {exc}")
            self.run = None

    def close(self) -> None:
        if self.run is not None:
            try:
                self.run.finish()
            except Exception as exc:
                self.warn(f"The wandb run did not close cleanly: {type(exc).__name__}: {exc}")


def start(job: dict, event, job_dir) -> list:
    """What receives the job's metrics (`.log(record)`, `.close()`), one per integration;
    `event(message, level)` writes a job event."""
    reporters = []
    for item in job.get("integrations") or []:
        settings = item["wandb"]
        if importlib.util.find_spec("wandb") is None:
            if not job.get("resume_from"):  # said once, not again on every resume
                event(f"The wandb integration (project {settings['project']!r}) was ignored: the wandb package is "
                      "not installed where the local backend runs; pip install wandb and restart ftutils serve to "
                      "get an offline run.", "warn")
            continue
        try:
            import wandb

            job_dir.mkdir(parents=True, exist_ok=True)
            run = wandb.init(mode="offline", dir=str(job_dir), project=settings["project"],
                             entity=settings.get("entity"), name=settings.get("name") or job["id"],
                             tags=settings.get("tags"), id=job["id"].removeprefix("ftjob-"), resume="allow",
                             config={"model": job["model"], **(job.get("hyperparameters") or {})}, reinit=True)
        except Exception as exc:
            event(f"The wandb integration could not start and is skipped: {type(exc).__name__}: {exc}", "warn")
            continue
        event(f"Metrics go to an offline W&B run in {run.dir}; upload it with `wandb sync {job_dir / 'wandb'}`.",
              "info")
        reporters.append(_WandbRun(run, lambda message: event(message, "warn")))
    return reporters
