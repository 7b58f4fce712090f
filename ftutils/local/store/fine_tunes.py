"""Fine-tuned models and checkpoints as models: what `/v1/models` lists beyond the bases,
and where each one's adapter is (`ftutils.local.models.registry` reads them through this).

A job's model row is written by the job service when the job succeeds (`Jobs.finish`), its
checkpoint rows as training reports them (`Jobs.add_checkpoint`).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from ftutils import openai_rules
from ftutils.local.store.db import Database


class FineTunes:
    def __init__(self, db: Database, jobs_dir: Path, org: str = "local"):
        self.db, self.jobs_dir, self.org = db, Path(jobs_dir), org

    def adapter(self, model_id: str) -> tuple[str, Path] | None:
        """(the base it was trained on, its adapter folder) of a fine-tuned or checkpoint model."""
        row = self.db.get("models", model_id)
        if row is not None:
            return row["base_model"], Path(row["path"])
        ckpt = self.db.conn.execute("SELECT * FROM checkpoints WHERE fine_tuned_model_checkpoint = ?",
                                    (model_id,)).fetchone()
        if ckpt is not None:
            return openai_rules.base_of(model_id), Path(ckpt["path"])
        return None

    def listed(self) -> list[tuple[str, int, str]]:
        """(id, created, owned_by): every fine-tuned model, then every kept checkpoint."""
        models = [(r["id"], r["created"], r["owned_by"]) for r in self.db.all("models")]
        return models + [(r["fine_tuned_model_checkpoint"], r["created_at"], self.org) for r in self.db.all("checkpoints")]

    def delete(self, model_id: str) -> bool:
        """Delete a fine-tuned model and its adapter folder; False if there is no such model
        (checkpoints are not models one deletes: they go with their job's pruning)."""
        row = self.db.get("models", model_id)
        if row is None:
            return False
        self.db.delete("models", model_id)
        path = Path(row["path"]).resolve()
        if path.is_relative_to(self.jobs_dir):  # never follow a row outside our own tree
            shutil.rmtree(path, ignore_errors=True)
        return True
