"""A small constructed evaluation shared by the report, epoch, plot and widget tests: 40 test
items of three classes, candidates right everywhere except where a test says otherwise."""
from __future__ import annotations

from ftutils.evaluate.candidates import Candidate, TestExample
from ftutils.evaluate.classify import Classification, Prediction
from ftutils.evaluate.suite import CandidateResult, Evaluation, score_classification

LABELS = ["billing", "refund", "shipping"]
TRUTH = ["billing"] * 14 + ["refund"] * 13 + ["shipping"] * 13
EXAMPLES = [TestExample(f"t{i:02d}", lab, [{"role": "user", "content": f"ticket {i} about {lab}"}])
            for i, lab in enumerate(TRUTH)]
# 03's diagnosis of a 2-epoch run of 20 steps whose lowest validation loss was the final model's.
MANIFEST = {"hyperparameters": {"n_epochs": 2}, "final_metrics": {"step": 20},
            "diagnosis": {"verdict": "good", "findings": ["loss levelled off"], "best_checkpoint_step": 20}}


def preds(wrong: dict | None = None, unparseable: set = frozenset(), method="score", raw="x") -> Classification:
    """Right everywhere except `wrong` (index -> predicted label) and `unparseable` indices."""
    wrong = wrong or {}
    out = []
    for i, ex in enumerate(EXAMPLES):
        pred = None if i in unparseable else wrong.get(i, ex.label)
        out.append(Prediction(ex.id, ex.label, pred, raw if pred is None else pred, "score", 0.01, 50, 1))
    return Classification("m", method, out, "score")


def evaluation(specs: dict, manifest: dict | None = None) -> Evaluation:
    results = {}
    for name, (kind, step, classification) in specs.items():
        results[name] = CandidateResult(Candidate(name, f"model-{name}", kind, step), classification,
                                        score_classification(classification, LABELS, 300, 0))
    return Evaluation(LABELS, EXAMPLES, results, [], manifest or {}, "score", LABELS).pair_and_advise(300, 0)
