"""Both classification methods and a whole run's evaluation against the real local server,
through the real `openai` client, with a tiny model fine-tuned once for this module."""
from __future__ import annotations

import csv
import json
import time

import pytest

from ftutils.evaluate.candidates import candidates_from_manifest, load_examples
from ftutils.evaluate.classify import classify, score_depth
from ftutils.evaluate.report import read_evaluation, write_evaluation
from ftutils.evaluate.scores import mcnemar_exact
from ftutils.evaluate.suite import evaluate_run
from ftutils.train.runs import write_manifest
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
SYSTEM = "Classify the banking message."


def chat(row: dict) -> dict:
    return {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": row["text"]},
                         {"role": "assistant", "content": row["label"]}]}


@pytest.fixture(scope="module")
def run_dir(local_server, tmp_path_factory):
    """A run folder as 02_prepare and 03_train leave it: splits, and a manifest naming a
    model really fine-tuned (a few steps of tiny-smollm2) with its checkpoints."""
    with open(ROOT / "data" / "samples" / "clinc150_subset.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label"] != "out_of_scope"]
    # Every intent in both: the rows come grouped by split and intent (20 train, 10 test each).
    train, test = [r for r in rows if r["split"] == "train"][::7], [r for r in rows if r["split"] == "test"][::8]
    folder = tmp_path_factory.mktemp("eval-run")
    (folder / "data").mkdir()
    (folder / "data" / "train.jsonl").write_text("".join(json.dumps(chat(r)) + "\n" for r in train))
    (folder / "data" / "test.jsonl").write_text(
        "".join(json.dumps({"id": r["id"], "label": r["label"], **chat(r)}) + "\n" for r in test))
    client = local_server.client(max_retries=0)
    with open(folder / "data" / "train.jsonl", "rb") as fh:
        upload = client.files.create(file=fh, purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=upload.id, seed=0, suffix="eval",
                                         method={"type": "supervised", "supervised": {"hyperparameters": {
                                             "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 8}}})
    deadline = time.monotonic() + 300
    while job.status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"{job.id} still {job.status}"
        time.sleep(0.5)
        job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job.error
    ckpts = client.fine_tuning.jobs.checkpoints.list(job.id).data
    write_manifest(folder, backend="local", base_model="tiny-smollm2", job_id=job.id,
                   fine_tuned_model=job.fine_tuned_model, hyperparameters={"n_epochs": 2, "batch_size": 8},
                   checkpoints=sorted(({"id": c.id, "step": c.step_number, "model": c.fine_tuned_model_checkpoint,
                                        "metrics": {"train_loss": c.metrics.train_loss}} for c in ckpts),
                                      key=lambda c: c["step"]),
                   # The last checkpoint is the final step (what `manifest_from_job` records).
                   final_metrics={"step": max(c.step_number for c in ckpts)},
                   diagnosis={"verdict": "good", "findings": []})
    return folder


def test_candidates_from_a_real_manifest(run_dir):
    from ftutils.train.runs import read_manifest

    manifest = read_manifest(run_dir)
    cands = candidates_from_manifest(manifest)
    # The last checkpoint is the final model's weights under another id: not scored twice.
    steps = [c["step"] for c in manifest["checkpoints"]][:-1]
    assert steps and manifest["checkpoints"][-1]["step"] == manifest["final_metrics"]["step"]
    assert [c.kind for c in cands] == ["base", "fine_tuned", *["checkpoint"] * len(steps), "baseline"]
    assert cands[1].model == manifest["fine_tuned_model"]
    assert [c.step for c in cands if c.kind == "checkpoint"] == steps == sorted(steps)
    assert len(candidates_from_manifest(manifest, include_checkpoints=False)) == 3


def test_score_and_generate_on_the_fine_tuned_tiny_model(run_dir, client):
    from ftutils.train.runs import read_manifest

    model = read_manifest(run_dir)["fine_tuned_model"]
    test = load_examples(run_dir / "data" / "test.jsonl")
    labels = sorted({ex.label for ex in load_examples(run_dir / "data" / "train.jsonl")})
    scored = classify(client, model, test, labels, "score", backend="local")
    generated = classify(client, model, test, labels, "generate", backend="local", max_tokens=6)
    for result in (scored, generated):
        assert [p.id for p in result.predictions] == [ex.id for ex in test]
        assert all(p.pred in labels or p.pred is None for p in result.predictions)
        assert all(p.latency_s > 0 and p.prompt_tokens > 10 for p in result.predictions)
    # Scoring reads a few answer tokens (one when the labels begin differently) and, for the
    # items it cannot separate that way, generates; the note says how many.
    depth = score_depth(model, labels)
    assert scored.method == "score"
    by_score = [p for p in scored.predictions if p.how in ("score", "no_label", "no_label_token")]
    generated_instead = len(scored.predictions) - len(by_score)
    assert all(1 <= p.completion_tokens <= depth for p in by_score)
    assert all(set(p.scores) <= set(labels) and (p.pred is None or p.scores[p.pred] == max(p.scores.values()))
               for p in by_score)
    assert (f"{generated_instead} of {len(test)} answers could not be scored" in scored.note) if generated_instead \
        else (scored.note is None or "could not be scored" not in scored.note)
    assert generated.method == "generate" and all(1 <= p.completion_tokens <= 6 for p in generated.predictions)
    assert all(p.how in ("exact", "case", "contained", "fuzzy", "unparseable") for p in generated.predictions)
    # Same items both ways: the paired test lines them up by id however they are ordered.
    assert mcnemar_exact(scored.frame(), generated.frame().iloc[::-1])["n"] == len(test)


def test_evaluate_run_end_to_end(run_dir, client):
    lines = []
    # Checkpoints are covered above and by 04_evaluate's run; each is one more model to load.
    ev = evaluate_run(run_dir, client, backend="local", method="score", include_checkpoints=False,
                      bootstrap_samples=200, log=lines.append)
    names = list(ev.results)
    assert names[0] == "base" and names[1] == "fine-tuned" and names[-1] == "tfidf-logreg" and len(lines) == len(names)
    assert ev.summary().loc["tfidf-logreg", "method"] == "baseline"
    for name in names:
        m = ev.metrics(name)
        assert m["n"] == 10 and m["accuracy_ci"][0] <= m["accuracy"] <= m["accuracy_ci"][1]
        assert sum(map(sum, m["confusion"]["matrix"])) == 10
    assert [p["a"] for p in ev.paired] == ["base", "tfidf-logreg"] and {p["b"] for p in ev.paired} == {ev.kept}
    assert [r.kind for r in ev.recommendations][:2] == ["keep", "use"]
    write_evaluation(run_dir, ev)
    data = read_evaluation(run_dir)
    assert len(data["predictions"]["fine-tuned"]) == 10 and (run_dir / "report.md").is_file()
