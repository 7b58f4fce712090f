"""The original fine-tune (on the source standing in for OpenAI) and its replacement (made on
the target by `ftutils migrate --wait`), scored on the same test items, each asked through the
service that serves it, and compared by the notebook's paired tests."""
from __future__ import annotations

import json

import pytest

from ftutils.evaluate import replacement
from ftutils.train.runs import write_manifest
from tests.migrate.conftest import source_client, target_client
from tests.train.test_jobs import LABELS

pytestmark = pytest.mark.slow


def test_old_and_new_on_the_same_items(servers, first_run, tmp_path):
    out, done, _ = first_run
    assert done.returncode == 0
    job = servers.jobs["supervised"]
    run_dir = tmp_path / "run"
    # The run folder 03 wrote on OpenAI: its manifest and its test split.
    write_manifest(run_dir, backend="openai", base_url=servers.source.base_url, base_model=job.model,
                   fine_tuned_model=job.fine_tuned_model, job_id=job.id, status=job.status)
    rows = [{"id": f"t{i}", "label": LABELS[i % 4], "messages": [
        {"role": "system", "content": "Label the ticket."}, {"role": "user", "content": f"ticket {100 + i}"},
        {"role": "assistant", "content": LABELS[i % 4]}]} for i in range(12)]
    (run_dir / "data").mkdir()
    (run_dir / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    new = replacement.replacement_of(job.fine_tuned_model, out)
    state = json.loads((out / "migration.json").read_text())
    assert new == target_client(servers).fine_tuning.jobs.retrieve(state["jobs"][job.id]["target_job"]).fine_tuned_model
    said = []
    evaluation = replacement.evaluate_replacement(run_dir, source_client(servers), target_client(servers),
                                                  migration_dir=out, include_checkpoints=False, bootstrap_samples=200,
                                                  log=said.append)
    models = {name: r.candidate.model for name, r in evaluation.results.items()}
    assert models == {"base": job.model, "fine-tuned": job.fine_tuned_model, "replacement": new}
    # Each model exists on one server only: every answer came back, so each was asked where it lives.
    for name in ("fine-tuned", "replacement"):
        frame = evaluation.predictions(name)
        assert list(frame["id"]) == [r["id"] for r in rows] and "error" not in set(frame["how"]), frame
    pair = next(p for p in evaluation.paired if (p["a"], p["b"]) == ("fine-tuned", "replacement"))
    assert pair["mcnemar"]["n"] == 12 and len(pair["bootstrap"]["macro_f1_diff_ci"]) == 2
    sentence = replacement.verdict(evaluation.to_dict(with_predictions=False))
    assert said[-1] == sentence and sentence.startswith("The replacement is ")
    assert "on the same 12 items" in sentence
    with pytest.raises(LookupError, match="no finished replacement of ft:nonesuch"):
        write_manifest(run_dir, fine_tuned_model="ft:nonesuch:x::y")
        replacement.evaluate_replacement(run_dir, source_client(servers), target_client(servers), migration_dir=out)
