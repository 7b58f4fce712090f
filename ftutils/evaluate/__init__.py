"""Is the fine-tuned model better, by how much, and what to do next (04_evaluate).

candidates: what to evaluate (from run.json) and the test split. classify: labels from a
chat model by generation or by the labels' log-probabilities along its answer. baseline: TF-IDF + logistic
regression. scores: metrics, bootstrap intervals, paired tests aligned by id. freetext:
metrics for non-classification answers and an LLM judge. validation: per-item validation
losses of each epoch (03's noise check). policy: the one home of the advice for the next run
(03, 04 and 05 quote it). suite: one evaluation of a run. report: evaluation.json and report.md.
compare: several runs side by side, on what they share.
"""
from ftutils.evaluate.baseline import classify_baseline
from ftutils.evaluate.candidates import Candidate, TestExample, candidates_from_manifest, load_examples
from ftutils.evaluate.classify import Classification, Prediction, classify, normalize_answer
from ftutils.evaluate.compare import compare_runs
from ftutils.evaluate.freetext import evaluate_freetext, exact_match, judge, normalized_match, token_f1
from ftutils.evaluate.advice import Advice, Recommendation
from ftutils.evaluate.policy import advise
from ftutils.evaluate.report import read_evaluation, write_evaluation
from ftutils.evaluate.scores import (UNPARSEABLE, align, bootstrap_ci, classification_metrics, mcnemar_exact,
                                     paired_bootstrap)
from ftutils.evaluate.suite import Evaluation, evaluate_candidates, evaluate_run

__all__ = [
    "Candidate", "TestExample", "candidates_from_manifest", "load_examples",
    "Classification", "Prediction", "classify", "normalize_answer", "classify_baseline",
    "UNPARSEABLE", "align", "bootstrap_ci", "classification_metrics", "mcnemar_exact", "paired_bootstrap",
    "evaluate_freetext", "exact_match", "normalized_match", "token_f1", "judge",
    "Advice", "Recommendation", "advise", "Evaluation", "evaluate_candidates", "evaluate_run",
    "write_evaluation", "read_evaluation", "compare_runs",
]
