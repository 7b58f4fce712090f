"""Recommendations on constructed result sets: each must fire when its numbers say so,
stay silent when they don't, and quote the numbers."""
from __future__ import annotations

import importlib

import pytest

from ftutils.evaluate.candidates import Candidate, TestExample
from ftutils.evaluate.classify import Classification, Prediction
from ftutils.evaluate.recommend import best_candidate, recommend
from ftutils.evaluate.scores import compare_pair
from ftutils.evaluate.suite import CandidateResult, Evaluation, score_classification

LABELS = ["billing", "refund", "shipping"]
TRUTH = ["billing"] * 14 + ["refund"] * 13 + ["shipping"] * 13
EXAMPLES = [TestExample(f"t{i:02d}", lab, [{"role": "user", "content": f"ticket {i} about {lab}"}])
            for i, lab in enumerate(TRUTH)]


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
    paired = [compare_pair(results[a].classification.frame(), results["fine-tuned"].classification.frame(),
                           LABELS, a, "fine-tuned", 300, 0) for a in ("base", "tfidf-logreg") if a in results]
    ev = Evaluation(LABELS, EXAMPLES, results, paired, manifest or {})
    ev.recommendations = recommend(ev.to_dict(), manifest)
    return ev


def by_kind(ev, kind):
    return [r for r in ev.recommendations if r.kind == kind]


MANIFEST = {"diagnosis": {"verdict": "overfitting", "findings": ["valid loss rose"],
                          "next_steps": ["Train for 2 epochs instead of 4."], "best_checkpoint_step": 10}}


def test_strong_fine_tune_with_better_checkpoint_and_confusions():
    billing_as_refund = {0: "refund", 1: "refund", 2: "refund"}
    ev = evaluation({
        "base": ("base", None, preds({i: "billing" for i in range(14, 40, 2)}, unparseable=set(range(0, 14, 2)), raw="Sure! Here")),
        "fine-tuned": ("fine_tuned", 20, preds({**billing_as_refund, 20: "shipping", 30: "billing"})),
        "step-10": ("checkpoint", 10, preds(billing_as_refund)),
        "tfidf-logreg": ("baseline", None, preds({i: "shipping" for i in range(14, 27)}, method="baseline")),
    }, MANIFEST)
    [ckpt] = by_kind(ev, "checkpoint")
    f10 = ev.metrics("step-10")["macro_f1"]
    assert f"checkpoint at step 10 has the best macro F1 ({f10:.3f}" in ckpt.message
    assert "use model-step-10" in ckpt.message and ckpt.evidence["step"] == 10
    assert ckpt.message.endswith("03's diagnosis picked step 10 by validation loss, the same.")

    [sig] = by_kind(ev, "significance")
    assert sig.message.startswith("The fine-tuned model is significantly better than the base model")
    assert sig.evidence["p_value"] < 0.05 and f"p={sig.evidence['p_value']:.3g}" in sig.message

    [base] = by_kind(ev, "baseline")
    # A +0.32 macro-F1 lead with McNemar p=0.077 is not a significant difference: the rule is p < 0.05
    # and an interval that excludes 0, both.
    pair = ev.paired[1]
    assert pair["a"] == "tfidf-logreg" and pair["mcnemar"]["p_value"] >= 0.05
    assert base.message.startswith("The fine-tuned model is not significantly different from the TF-IDF")
    assert f"McNemar p={pair['mcnemar']['p_value']:.3g}" in base.message

    [unparse] = by_kind(ev, "unparseable")
    assert unparse.evidence == {"candidates": {"base": 7}, "n": 40, "examples": ["Sure! Here"] * 3}
    assert unparse.message.startswith("Many answers name no label: base 7 of 40 (18%); e.g. 'Sure! Here'")

    # The chosen model is step-10: billing read as refund 3 times out of 14, quoted with examples.
    [conf] = by_kind(ev, "confusion")
    assert conf.evidence["true"] == "billing" and conf.evidence["pred"] == "refund" and conf.evidence["count"] == 3
    assert "(3 of 14 times)" in conf.message and "ticket 0 about billing" in conf.message
    assert [r.message for r in by_kind(ev, "training")] == ["Training diagnosis (overfitting): Train for 2 epochs instead of 4."]
    assert ev.best == "step-10" and best_candidate(ev.to_dict())["name"] == "step-10"


def test_baseline_that_matches_and_a_fine_tune_no_better_than_base():
    ev = evaluation({
        "base": ("base", None, preds({0: "refund", 15: "billing", 30: "refund"})),
        "fine-tuned": ("fine_tuned", None, preds({0: "refund", 16: "billing"})),
        "tfidf-logreg": ("baseline", None, preds({1: "refund", 17: "billing"}, method="baseline")),
    })
    [sig] = by_kind(ev, "significance")
    assert sig.message.startswith("The fine-tuned model is not significantly different from the base model")
    assert sig.evidence["p_value"] == pytest.approx(1.0)
    [base] = by_kind(ev, "baseline")
    assert base.message.startswith("The fine-tuned model is not significantly different from the TF-IDF")
    assert "the cheaper, faster one serves as well" in base.message
    assert f"McNemar p={ev.paired[1]['mcnemar']['p_value']:.3g}" in base.message
    diff = ev.metrics('fine-tuned')['macro_f1'] - ev.metrics('tfidf-logreg')['macro_f1']
    assert f"macro F1 difference {diff:+.3f}" in base.message
    better = evaluation({"fine-tuned": ("fine_tuned", None, preds({0: "refund", 16: "billing", 30: "refund"})),
                         "tfidf-logreg": ("baseline", None, preds(method="baseline"))})
    # Ahead on points (p=0.25) is still "not significantly different", never "beats".
    message = by_kind(better, "baseline")[0].message
    assert "not significantly different from the TF-IDF" in message and "beats" not in message
    assert better.best == "tfidf-logreg"
    assert not by_kind(ev, "checkpoint") and not by_kind(ev, "unparseable") and not by_kind(ev, "confusion")
    assert not by_kind(ev, "training")


def test_worse_fine_tune_weak_class_and_method_fallback():
    fallback = preds({i: "billing" for i in range(27, 40)}, method="generate")
    fallback.note = "the scoring request failed: used generation"
    ev = evaluation({"base": ("base", None, preds()), "fine-tuned": ("fine_tuned", None, fallback)})
    [sig] = by_kind(ev, "significance")
    assert "significantly WORSE" in sig.message
    [weak] = by_kind(ev, "weak_class")
    assert list(weak.evidence["classes"]) == ["shipping"]
    assert weak.message == ("fine-tuned: class 'shipping' (recall 0.00, F1 0.00, 13 items) needs more "
                            "(and more varied) training examples.")
    [method] = by_kind(ev, "method")
    assert method.message == ("fine-tuned was evaluated by generate although score was asked: "
                              "the scoring request failed: used generation.")
    assert [r.kind for r in ev.recommendations][:2] == ["significance", "confusion"]


def test_ties_go_to_the_cheaper_model():
    same = {"fine-tuned": ("fine_tuned", 20, preds({0: "refund"})), "step-10": ("checkpoint", 10, preds({1: "refund"})),
            "step-15": ("checkpoint", 15, preds({2: "refund"}))}
    ev = evaluation(same)
    assert ev.best == "fine-tuned" and by_kind(ev, "checkpoint")[0].evidence["best"] == "fine-tuned"
    assert evaluation({**same, "base": ("base", None, preds({3: "refund"}))}).best == "base"
    assert evaluation({"step-10": same["step-10"], "step-15": same["step-15"]}).best == "step-15"


def test_a_checkpoint_barely_better_than_the_final_model_is_named_and_the_final_kept(monkeypatch):
    rec = importlib.import_module("ftutils.evaluate.recommend")  # the package exports a function of that name

    specs = {"fine-tuned": ("fine_tuned", 20, preds({i: "refund" for i in range(3)})),
             "step-10": ("checkpoint", 10, preds({i: "refund" for i in range(2)}))}  # one item better
    gain = evaluation(specs).metrics("step-10")["macro_f1"] - evaluation(specs).metrics("fine-tuned")["macro_f1"]
    assert gain > 0
    monkeypatch.setattr(rec, "CHECKPOINT_MARGIN", gain * 2)  # the gain is under the margin
    ev = evaluation(specs, MANIFEST)
    [ckpt] = by_kind(ev, "checkpoint")
    assert ckpt.evidence["kept"] == "fine-tuned" and "not worth switching for; keep model-fine-tuned" in ckpt.message
    assert "checkpoint at step 10 has the best macro F1" in ckpt.message and "final model has the best" not in ckpt.message
    # The other advice is about the model kept, not the best-scoring checkpoint.
    assert rec.kept_model(ev.to_dict(with_predictions=False))["name"] == "fine-tuned"
    monkeypatch.setattr(rec, "CHECKPOINT_MARGIN", gain / 2)  # the gain clears it: switch
    [ckpt] = by_kind(evaluation(specs, MANIFEST), "checkpoint")
    assert ckpt.evidence["kept"] == "step-10" and "use model-step-10" in ckpt.message


def test_a_good_diagnosis_never_sends_the_reader_to_the_evaluation_they_are_reading():
    good = {"diagnosis": {"verdict": "good", "findings": ["loss levelled off"],
                          "next_steps": ["Evaluate the fine-tuned model on the held-out test set (04_evaluate)."]}}
    ev = evaluation({"fine-tuned": ("fine_tuned", None, preds())}, good)
    [training] = by_kind(ev, "training")
    assert "04_evaluate" not in training.message and training.message.startswith("Training diagnosis (good): the losses")


def test_the_validation_pick_is_set_against_the_test_sets_best_with_its_interval():
    # The final model scores best on test; 03 picked step 10 by validation loss.
    close = {"fine-tuned": ("fine_tuned", 20, preds({i: "refund" for i in (0, 3, 6)})),
             "step-10": ("checkpoint", 10, preds({i: "refund" for i in (0, 3, 6, 9)}))}
    [ckpt] = by_kind(evaluation(close, MANIFEST), "checkpoint")
    assert "final model has the best macro F1" in ckpt.message
    assert "picked step 10 by validation loss (" in ckpt.message and "the test set cannot tell the two apart" in ckpt.message
    far = {"fine-tuned": ("fine_tuned", 20, preds()),
           "step-10": ("checkpoint", 10, preds({i: "refund" for i in range(0, 40, 2)}))}
    [ckpt] = by_kind(evaluation(far, MANIFEST), "checkpoint")
    assert "below this interval: the test set disagrees with validation" in ckpt.message
    assert "takes its epochs from validation" in ckpt.message
