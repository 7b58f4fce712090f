"""One evaluation of a run: every candidate on the same held-out items, their metrics with
confidence intervals, paired tests of the kept fine-tune (the checkpoint chosen by validation,
`policy.kept_name`) against the final model and every alternative, and the advice that follows.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from ftutils.evaluate.baseline import classify_baseline
from ftutils.evaluate.candidates import (Candidate, TestExample, candidates_from_manifest, labels_of,
                                         load_examples, read_manifest)
from ftutils.evaluate.classify import Classification, Prediction, classify
from ftutils.evaluate.prompting import prompted
from ftutils.evaluate.advice import Advice, Recommendation
from ftutils.evaluate.policy import advise, kept_name
from ftutils.evaluate.scores import OUT_OF_SCOPE, bootstrap_ci, classification_metrics, compare_pair, confusion_frame

TEXT_CHARS = 300  # enough of an input to recognise it in a report, short enough for evaluation.json


@dataclass
class CandidateResult:
    candidate: Candidate
    classification: Classification
    metrics: dict
    """classification_metrics plus accuracy_ci and macro_f1_ci, latency and tokens."""


@dataclass
class Evaluation:
    labels: list
    examples: list
    """The TestExamples evaluated, in file order."""
    results: dict
    """Candidate name -> CandidateResult, in candidate order."""
    paired: list = field(default_factory=list)
    manifest: dict = field(default_factory=dict)
    method: str = "score"
    trained_labels: list = field(default_factory=list)
    """The labels the training split shows: a class outside them is one no fine-tune was taught."""
    advice: Advice | None = None

    @property
    def recommendations(self) -> list:
        return self.advice.recommendations if self.advice else []

    @property
    def kept(self) -> str | None:
        """The candidate the advice keeps (chosen by validation), when it was evaluated."""
        name = kept_name(self.manifest) if self.manifest else None
        return name if name in self.results else ("fine-tuned" if "fine-tuned" in self.results else None)

    def ceiling(self) -> dict:
        """What a model that answers only the trained labels can reach on these items at best:
        {"accuracy", "macro_f1", "untrained": {label: n}}."""
        untrained = {}
        for ex in self.examples:
            if self.trained_labels and ex.label not in self.trained_labels:
                untrained[ex.label] = untrained.get(ex.label, 0) + 1
        n = len(self.examples)
        present = {ex.label for ex in self.examples}
        return {"accuracy": (n - sum(untrained.values())) / n if n else float("nan"),
                "macro_f1": (len(present) - len(untrained)) / len(present) if present else float("nan"),
                "untrained": untrained}

    def pair_and_advise(self, bootstrap_samples: int = 1000, seed: int = 42) -> "Evaluation":
        """The paired tests of the kept fine-tune against the final model (when they differ) and
        against everything you could use instead of it, on the same items; then the advice."""
        kept, self.paired = self.kept, []
        if kept:
            others = ["fine-tuned"] if kept != "fine-tuned" and "fine-tuned" in self.results else []
            others += [n for n, r in self.results.items() if r.candidate.kind in ("base", "prompted", "baseline")]
            self.paired = [compare_pair(self.results[o].classification.frame(), self.results[kept].classification.frame(),
                                        self.labels, o, kept, bootstrap_samples, seed) for o in others]
        self.advice = advise(self.manifest or {}, self.to_dict())
        return self

    def predictions(self, name: str) -> pd.DataFrame:
        """One candidate's predictions with the input text beside them."""
        frame = self.results[name].classification.frame()
        text = {ex.id: ex.text for ex in self.examples}
        frame.insert(3, "text", frame["id"].map(text))
        return frame

    def metrics(self, name: str) -> dict:
        return self.results[name].metrics

    def confusion(self, name: str) -> pd.DataFrame:
        return confusion_frame(self.results[name].metrics)

    def summary(self) -> pd.DataFrame:
        rows = []
        for name, r in self.results.items():
            m = r.metrics
            rows.append({"candidate": name, "kind": r.candidate.kind, "step": r.candidate.step,
                         "method": r.classification.method, "accuracy": m["accuracy"],
                         "accuracy_lo": m["accuracy_ci"][0], "accuracy_hi": m["accuracy_ci"][1],
                         "macro_f1": m["macro_f1"], "macro_f1_lo": m["macro_f1_ci"][0], "macro_f1_hi": m["macro_f1_ci"][1],
                         "unparseable": m["unparseable"], "latency_ms": 1000 * m["latency"]["mean_s"],
                         "tokens_per_request": m["tokens"]["per_request"], "model": r.candidate.model})
        return pd.DataFrame(rows).set_index("candidate")

    def paired_frame(self) -> pd.DataFrame:
        """One row per paired comparison: the fine-tune ("model") against another on the same items."""
        return pd.DataFrame([{"model": p["b"], "against": p["a"], "n": p["mcnemar"]["n"],
                              "accuracy": p["mcnemar"]["accuracy_b"], "accuracy_against": p["mcnemar"]["accuracy_a"],
                              "only_model_right": p["mcnemar"]["only_b_correct"],
                              "only_against_right": p["mcnemar"]["only_a_correct"],
                              "mcnemar_p": p["mcnemar"]["p_value"], "macro_f1_diff": p["bootstrap"]["macro_f1_diff"],
                              "macro_f1_diff_lo": p["bootstrap"]["macro_f1_diff_ci"][0],
                              "macro_f1_diff_hi": p["bootstrap"]["macro_f1_diff_ci"][1]} for p in self.paired])

    def per_class_f1(self) -> pd.DataFrame:
        """Rows: labels; columns: candidates."""
        return pd.DataFrame({name: {lab: v["f1"] for lab, v in r.metrics["per_class"].items()}
                             for name, r in self.results.items()})

    def checkpoints(self) -> pd.DataFrame:
        """Fine-tuned models with a known step, by step: the metric-vs-step curve."""
        frame = self.summary().reset_index()
        frame = frame[frame["kind"].isin(["checkpoint", "fine_tuned"]) & frame["step"].notna()]
        return frame.sort_values("step", ignore_index=True)

    def to_dict(self, with_predictions: bool = True) -> dict:
        """The evaluation as JSON-ready data (what evaluation.json holds)."""
        out = {"n_test": len(self.examples), "labels": list(self.labels), "method": self.method,
               "trained_labels": list(self.trained_labels), "ceiling": self.ceiling(), "kept": self.kept,
               "candidates": [{"name": name, "model": r.candidate.model, "kind": r.candidate.kind,
                               "step": r.candidate.step, "shots": r.candidate.shots, "method": r.classification.method,
                               "requested": r.classification.requested, "note": r.classification.note,
                               "metrics": r.metrics} for name, r in self.results.items()],
               "paired": self.paired,
               "recommendations": [rec.to_dict() for rec in self.recommendations],
               "next_run": self.advice.next_run if self.advice else {"params": {}, "why": []}}
        if with_predictions:
            out["predictions"] = {name: _records(self.predictions(name)) for name in self.results}
        return out


def _records(frame: pd.DataFrame) -> list[dict]:
    frame = frame.copy()
    frame["text"] = frame["text"].fillna("").str.slice(0, TEXT_CHARS)
    frame = frame.astype(object).where(frame.notna(), None)
    return frame.to_dict("records")


def _cost(classification: Classification) -> dict:
    frame = classification.frame()
    latency = frame["latency_s"].to_numpy(dtype=float)
    prompt = pd.to_numeric(frame.get("prompt_tokens"), errors="coerce").fillna(0)
    completion = pd.to_numeric(frame.get("completion_tokens"), errors="coerce").fillna(0)
    n = max(len(frame), 1)
    return {"latency": {"mean_s": float(latency.mean()) if len(latency) else 0.0,
                        "p50_s": float(np.percentile(latency, 50)) if len(latency) else 0.0,
                        "p95_s": float(np.percentile(latency, 95)) if len(latency) else 0.0,
                        "total_s": float(latency.sum())},
            "tokens": {"prompt": int(prompt.sum()), "completion": int(completion.sum()),
                       "per_request": float((prompt.sum() + completion.sum()) / n)}}


def score_classification(classification: Classification, labels: list, bootstrap_samples: int = 1000,
                         seed: int = 42) -> dict:
    predictions = classification.frame()
    metrics = classification_metrics(predictions, labels)
    metrics.update(bootstrap_ci(predictions, labels, bootstrap_samples, seed))
    metrics.update(_cost(classification))
    return metrics


def _reused(previous: dict | None, cand: Candidate) -> Classification | None:
    """A candidate's classification from an earlier evaluation of the same test items, when the
    same model was asked the same prompts there (the base model, zero-shot): its answers are the same."""
    if not previous or cand.kind not in ("base", "prompted") or (cand.shots or 0):
        return None
    earlier = next((c for c in previous.get("candidates", []) if c["name"] == cand.name and c["model"] == cand.model), None)
    rows = (previous.get("predictions") or {}).get(cand.name)
    if earlier is None or not rows:
        return None
    keys = {f.name for f in fields(Prediction)}
    predictions = [Prediction(**{k: v for k, v in row.items() if k in keys}) for row in rows]
    return Classification(cand.model, earlier["method"], predictions, earlier.get("requested") or earlier["method"],
                          earlier.get("note"))


def evaluate_candidates(client, candidates: list[Candidate], test: list[TestExample], train: list[TestExample] | None,
                        labels: list | None = None, method: str = "score", backend: str | None = None,
                        bootstrap_samples: int = 1000, seed: int = 42, concurrency: int | None = None,
                        manifest: dict | None = None, log=print, previous: dict | None = None,
                        clients: dict | None = None) -> Evaluation:
    """Classify `test` with every candidate, score each, test the kept fine-tune against the
    final model and every alternative. `previous`: an evaluation of the same test items whose
    base-model answers are taken instead of asked again (see `_reused`). `clients`: candidate
    name -> (client, backend) for a candidate another service serves (evaluate.replacement: a
    fine-tune on OpenAI and its local replacement, same items)."""
    labels = list(labels or labels_of(test))
    results: dict[str, CandidateResult] = {}
    default = (client, backend)
    for cand in candidates:
        client, backend = (clients or {}).get(cand.name, default)
        start = time.perf_counter()
        reused = _reused(previous, cand)
        if reused is not None:
            classification = reused
        elif cand.kind == "baseline":
            if not train:
                log(f"{cand.name}: skipped, no training split to learn from")
                continue
            classification = classify_baseline(train, test, seed)
        elif cand.kind == "prompted":
            if cand.shots and not train:
                log(f"{cand.name}: skipped, no training split to draw examples from")
                continue
            items = prompted(test, labels, train, cand.shots or 0, seed)
            classification = classify(client, cand.model, items, labels, method, backend, concurrency, seed=seed)
        else:
            classification = classify(client, cand.model, test, labels, method, backend, concurrency, seed=seed)
        results[cand.name] = CandidateResult(cand, classification,
                                             score_classification(classification, labels, bootstrap_samples, seed))
        m = results[cand.name].metrics
        how = "the same answers as the previous run's (same model, same prompts)" if reused is not None else \
            f"by {classification.method} in {time.perf_counter() - start:.1f} s"
        log(f"{cand.name:>14}: {len(test)} items {how}, accuracy {m['accuracy']:.3f}, macro F1 {m['macro_f1']:.3f}, "
            f"unparseable {m['unparseable']}" + (f"  [{classification.note}]" if classification.note else ""))
    evaluation = Evaluation(labels, list(test), results, [], manifest or {}, method,
                            sorted({ex.label for ex in train or []}))
    return evaluation.pair_and_advise(bootstrap_samples, seed)


def evaluate_run(run_dir: str | Path, client, backend: str | None = None, method: str = "score",
                 include_checkpoints: bool = True, max_test_examples: int | None = None,
                 bootstrap_samples: int = 1000, seed: int = 42, concurrency: int | None = None,
                 prompted_shots: tuple = (), log=print, previous_run: str | Path | None = None,
                 extra_candidates: tuple = (), clients: dict | None = None) -> Evaluation:
    """Evaluate the candidates of `run_dir`'s manifest on its test split (first `max_test_examples`);
    `prompted_shots` adds the base model prompted zero-shot (0) and with k shots (k). The kept
    checkpoint (by validation) is always evaluated. `previous_run`: a run folder evaluated on the
    same test file, whose base-model answers are reused rather than asked again. `extra_candidates`
    are added after them, served by `clients` where named there."""
    from ftutils.evaluate.policy import kept_step
    from ftutils.evaluate.report import read_evaluation
    from ftutils.train.runs import project_path

    run_dir = project_path(run_dir)
    manifest = read_manifest(run_dir)
    test_path = run_dir / "data" / "test.jsonl"
    test = load_examples(test_path, max_test_examples)
    train_path = run_dir / "data" / "train.jsonl"
    train = load_examples(train_path) if train_path.is_file() else None
    # Labels from train and test together, so a class the test sample happens to miss
    # still counts as a possible (wrong) answer.
    labels = sorted({ex.label for ex in test} | {ex.label for ex in train or []})
    candidates = candidates_from_manifest(manifest, include_checkpoints, prompted_shots=tuple(prompted_shots),
                                          keep_step=kept_step(manifest))
    previous = None
    if previous_run is not None:
        earlier = project_path(previous_run)
        same_items = (earlier / "data" / "test.jsonl").is_file() and \
            (earlier / "data" / "test.jsonl").read_bytes() == test_path.read_bytes()
        previous = read_evaluation(earlier) if same_items and (earlier / "evaluation.json").is_file() else None
        if previous and previous.get("n_test") != len(test):
            previous = None
    return evaluate_candidates(client, candidates + list(extra_candidates), test, train, labels, method,
                               backend or manifest.get("backend"), bootstrap_samples, seed, concurrency, manifest, log,
                               previous, clients)


__all__ = ["Evaluation", "CandidateResult", "evaluate_run", "evaluate_candidates", "score_classification", "Recommendation",
           "OUT_OF_SCOPE"]
