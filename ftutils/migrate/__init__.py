"""`ftutils migrate`: a team's fine-tuning jobs brought from one OpenAI-compatible service
(OpenAI by default) to another (the local backend by default), before the source stops
answering.

For every succeeded job of the source: its training and validation files, result files,
events and checkpoint metrics are saved under `--out/<job id>/` with a `job.json` of what the
job was created with; the files are uploaded to the target byte for byte and the same job is
created there. `migration.json` maps each source job to its target job, so a second run
replays nothing and an interrupted one resumes where it stopped.

state: migration.json. transfer: downloads (resumed) and uploads (verified), with progress.
collect: one source job saved to disk. replay: its files and job on the target. run: the
whole migration and its table. cli: the command.

Client side only: it talks to both services through the official `openai` client and never
imports `ftutils.local`.
"""
from ftutils.migrate.run import MigrationError, Summary, migrate

__all__ = ["MigrationError", "Summary", "migrate"]
