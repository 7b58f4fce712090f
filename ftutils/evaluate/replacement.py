"""Old fine-tune against its replacement, on the same test items: what a team gives up or
gains by moving a job from OpenAI (whose fine-tunes stop answering with their base, on
2027-01-14 for the last ones) to the local backend, measured before the old one is gone.

The run folder is the one 03 wrote on OpenAI (its run.json names the fine-tune, its
data/test.jsonl the items); `ftutils migrate --wait` made the replacement, and its
migration.json says which model that is. Both are candidates of one evaluation, each asked
through the service that serves it, and the replacement is compared with the original by
the notebook's one rule (recommend.significant: McNemar and the paired bootstrap).
"""
from __future__ import annotations

import json
from pathlib import Path

from ftutils.evaluate.candidates import Candidate
from ftutils.evaluate.policy import advise, significant
from ftutils.evaluate.scores import compare_pair

NAME = "replacement"
ORIGINAL = "fine-tuned"


def replacement_of(fine_tuned_model: str, migration_dir: str | Path = "runs/migration") -> str | None:
    """The model `ftutils migrate` made on the target for the job that made `fine_tuned_model`
    (None until that replay has succeeded and been followed, e.g. with --wait)."""
    from ftutils.train.runs import project_path

    path = project_path(migration_dir) / "migration.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no migration here; run `ftutils migrate --wait` first")
    for record in json.loads(path.read_text())["jobs"].values():
        if record.get("source_fine_tuned_model") == fine_tuned_model and record.get("target_fine_tuned_model"):
            return record["target_fine_tuned_model"]
    return None


def evaluate_replacement(run_dir, client, target_client, *, replacement: str | None = None,
                         migration_dir: str | Path = "runs/migration", backend: str | None = None,
                         target_backend: str = "local", log=print, **evaluate_kwargs):
    """evaluate_run on `run_dir` through `client` (the service the run was trained on), with the
    replacement (`replacement`, else found in `migration_dir`) asked through `target_client`,
    and one more paired comparison: the replacement against the original fine-tune.
    `evaluate_kwargs` go to evaluate_run (method, include_checkpoints, max_test_examples, ...)."""
    from ftutils.evaluate.candidates import read_manifest
    from ftutils.evaluate.suite import evaluate_run

    manifest = read_manifest(run_dir)
    original = manifest.get("fine_tuned_model")
    if not original:
        raise ValueError(f"{run_dir}: run.json names no fine-tuned model to compare a replacement with")
    replacement = replacement or replacement_of(original, migration_dir)
    if not replacement:
        raise LookupError(f"{migration_dir}: no finished replacement of {original} recorded; "
                          "run `ftutils migrate --wait` (or pass replacement=MODEL)")
    evaluation = evaluate_run(run_dir, client, backend=backend, log=log,
                              extra_candidates=(Candidate(NAME, replacement, "fine_tuned"),),
                              clients={NAME: (target_client, target_backend)}, **evaluate_kwargs)
    results = evaluation.results
    evaluation.paired.append(compare_pair(results[ORIGINAL].classification.frame(), results[NAME].classification.frame(),
                                          evaluation.labels, ORIGINAL, NAME,
                                          evaluate_kwargs.get("bootstrap_samples", 1000), evaluate_kwargs.get("seed", 42)))
    evaluation.advice = advise(manifest, evaluation.to_dict(with_predictions=False))
    log(verdict(evaluation.to_dict(with_predictions=False)))
    return evaluation


def verdict(evaluation: dict) -> str:
    """One sentence: is the replacement better, worse, or not distinguishable on these items."""
    pair = next((p for p in evaluation["paired"] if (p["a"], p["b"]) == (ORIGINAL, NAME)), None)
    if pair is None:
        raise ValueError("this evaluation has no replacement-against-original comparison")
    m, b = pair["mcnemar"], pair["bootstrap"]
    lo, hi = b["macro_f1_diff_ci"]
    numbers = (f"accuracy {m['accuracy_b']:.3f} vs {m['accuracy_a']:.3f} on the same {m['n']} items, McNemar "
               f"p={m['p_value']:.3g}; macro F1 {b['macro_f1_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if not significant(pair):
        return (f"The replacement is not significantly different from the original fine-tune ({numbers}): these "
                "items cannot tell them apart.")
    better = "better" if b["macro_f1_diff"] > 0 else "WORSE"
    return f"The replacement is significantly {better} than the original fine-tune ({numbers})."
