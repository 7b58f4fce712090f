"""The advice policy on constructed runs: which model to keep (by validation, never by test),
what data to add (never test items), how many epochs, what the prompt says; at most five
recommendations, each with its number and interval, none contradicting another, and an
over/underfitting verdict only where its comparison cleared its noise.

`policy.violations` checks those rules; each is also fed advice built to break it, so a
check that cannot fail would fail here."""
from __future__ import annotations

import pytest

from ftutils.evaluate import policy
from ftutils.evaluate.candidates import Candidate, TestExample
from ftutils.evaluate.classify import Classification, Prediction
from ftutils.evaluate.advice import Advice, Recommendation
from ftutils.evaluate.policy import advise
from ftutils.evaluate.policy_rules import violations
from ftutils.evaluate.scores import OUT_OF_SCOPE
from ftutils.evaluate.suite import CandidateResult, Evaluation, score_classification

LABELS = ["billing", OUT_OF_SCOPE, "refund", "shipping"]
TRUTH = ["billing"] * 14 + ["refund"] * 13 + ["shipping"] * 13 + [OUT_OF_SCOPE] * 12
EXAMPLES = [TestExample(f"t{i:02d}", lab, [{"role": "user", "content": f"ticket number {i} about {lab}"}])
            for i, lab in enumerate(TRUTH)]
OOS = [i for i, lab in enumerate(TRUTH) if lab == OUT_OF_SCOPE]


def preds(wrong: dict | None = None, unparseable=frozenset(), method="score") -> Classification:
    """Right everywhere except `wrong` (index -> label) and `unparseable` indices; out-of-scope
    items are answered as given in `wrong` (or right)."""
    wrong = wrong or {}
    out = [Prediction(ex.id, ex.label, None if i in unparseable else wrong.get(i, ex.label),
                      "x" if i in unparseable else wrong.get(i, ex.label), "score", 0.01, 50, 1)
           for i, ex in enumerate(EXAMPLES)]
    return Classification("m", method, out, "score")


def diagnosis(verdict="can't tell", best=20, clears=False, diff=0.004, ci=(-0.02, 0.03), looks_like="overfitting",
              n_epochs=4, final=40):
    epochs = [{"epoch": e, "step": 10 * e, "full_valid_loss": 0.5 - 0.1 * min(e, best // 10) + (0.01 if 10 * e > best else 0),
               "train_loss_smoothed": 0.1, "item_loss": 0.2, "item_loss_lo": 0.1, "item_loss_hi": 0.3}
              for e in range(1, n_epochs + 1)]
    comparison = {"what": "validation loss, lowest epoch to last", "from_step": best, "to_step": final, "n": 40,
                  "mean_from": 0.2, "mean_to": 0.2 + diff, "diff": diff, "ci": list(ci), "clears_noise": clears}
    return {"hyperparameters": {"n_epochs": n_epochs, "learning_rate_multiplier": 2.0}, "final_metrics": {"step": final},
            "fine_tuned_model": "ft:m:local:x:abc", "checkpoints": [{"step": s, "model": f"ft:m:local:x:abc:ckpt-step-{s}"}
                                                                     for s in range(10, final + 1, 10)],
            "diagnosis": {"verdict": verdict, "looks_like": looks_like, "best_checkpoint_step": best, "epochs": epochs,
                          "comparison": comparison, "findings": ["..."], "cause": None}}


def evaluation(specs: dict, manifest: dict, trained=("billing", "refund", "shipping")) -> Evaluation:
    results = {}
    for name, (kind, step, classification) in specs.items():
        results[name] = CandidateResult(Candidate(name, f"model-{name}", kind, step), classification,
                                        score_classification(classification, LABELS, 300, 0))
    return Evaluation(LABELS, EXAMPLES, results, [], manifest, "score", list(trained)).pair_and_advise(300, 0)


def kinds(advice):
    return {r.kind: r for r in advice.recommendations}


FORCED = {i: "billing" for i in OOS[:8]}  # 8 of the 12 out-of-scope messages answered as billing


def standard(manifest, final_wrong=None, kept_wrong=None, tfidf_wrong=None):
    return evaluation({
        "base": ("base", None, preds(unparseable=set(range(52)))),
        "fine-tuned": ("fine_tuned", 40, preds(final_wrong if final_wrong is not None else {**FORCED, 0: "refund"},
                                               unparseable=set(OOS[8:]))),
        "step-20": ("checkpoint", 20, preds(kept_wrong if kept_wrong is not None else {**FORCED, 0: "refund", 1: "refund"},
                                            unparseable=set(OOS[8:]))),
        "tfidf-logreg": ("baseline", None, preds(tfidf_wrong if tfidf_wrong is not None else
                                                 {**{i: "billing" for i in OOS}, 20: "billing"}, method="baseline")),
    }, manifest)


def test_the_kept_model_is_chosen_by_validation_even_when_the_test_set_prefers_another():
    manifest = diagnosis(best=20)
    ev = standard(manifest)
    assert ev.kept == "step-20" and ev.metrics("fine-tuned")["macro_f1"] > ev.metrics("step-20")["macro_f1"]
    keep = kinds(ev.advice)["keep"]
    assert keep.evidence == {"name": "step-20", "step": 20, "epoch": 2}
    assert keep.message.startswith("Keep the checkpoint at step 20 (epoch 2 of 4): it has the lowest validation loss")
    assert "never by the test set" in keep.message and "cannot tell the two apart" in keep.message
    assert keep.number == 0.2 and keep.interval == [0.1, 0.3]
    assert ev.advice.kept == {"name": "step-20", "model": "ft:m:local:x:abc:ckpt-step-20", "step": 20, "epoch": 2}
    # Every paired test is of the kept model.
    assert {p["b"] for p in ev.paired} == {"step-20"} and [p["a"] for p in ev.paired] == ["fine-tuned", "base", "tfidf-logreg"]
    assert violations(ev.advice, manifest, EXAMPLES) == []


def test_at_most_five_ranked_each_with_its_number_and_interval():
    manifest = diagnosis(best=20)
    ev = standard(manifest)
    recs = ev.advice.recommendations
    assert [r.kind for r in recs] == ["keep", "use", "data", "epochs", "prompt"]
    assert all(r.number is not None and len(r.interval) == 2 for r in recs)
    six = Advice(recs + [recs[-1]])
    assert "6 recommendations, more than 5" in violations(six, manifest)
    bare = Advice([Recommendation("data", "Add examples.", None, None)])
    assert violations(bare, manifest) == ["data: no number with a finite interval"]
    assert violations(Advice([Recommendation("data", "x", 0.5, [float("nan"), 0.7])]), manifest)


def test_the_data_advice_names_no_test_item_and_a_check_that_would_catch_one():
    manifest = diagnosis(best=20)
    ev = standard(manifest, kept_wrong={**FORCED, 0: "refund", 1: "refund", 2: "refund", 30: "refund", 31: "refund"})
    data = kinds(ev.advice)["data"]
    assert data.change == {"train_out_of_scope": True}  # never answers out_of_scope, never trained on it
    assert "8 of 12 out-of-scope test messages" in data.message and "none of them test items" in data.message
    assert "billing answered as refund 3 of 14 times" in data.message
    assert data.number == pytest.approx(8 / 12) and data.interval[0] < 8 / 12 < data.interval[1]
    for ex in EXAMPLES:
        assert ex.text not in data.message and ex.id not in data.message
    assert violations(ev.advice, manifest, EXAMPLES) == []
    # Advice that quotes a test item, as the old recommendations did ("like these: ..."), is caught,
    # by its text or by its id.
    leaky = Recommendation("data", f"Add examples like these: {EXAMPLES[3].text!r}.", 0.5, [0.4, 0.6])
    assert violations(Advice([leaky]), manifest, EXAMPLES) == ["data: names test item 't03'"]
    by_id = Recommendation("data", "Add t17 to the training data.", 0.5, [0.4, 0.6])
    assert violations(Advice([by_id]), manifest, EXAMPLES) == ["data: names test item 't17'"]


def test_confusions_between_intents_are_named_even_when_out_of_scope_ones_are_more_frequent():
    manifest = diagnosis(best=20)
    # Out-of-scope messages forced into three different intents, each more often than the one intent confusion.
    spread = {**{i: "billing" for i in OOS[:3]}, **{i: "refund" for i in OOS[3:6]}, **{i: "shipping" for i in OOS[6:8]}}
    ev = standard(manifest, kept_wrong={**spread, 27: "refund", 28: "refund"})
    assert "shipping answered as refund 2 of 13 times" in kinds(ev.advice)["data"].message


def test_a_model_already_trained_on_out_of_scope_is_told_to_collect_more_not_to_flip_the_parameter():
    manifest = diagnosis(best=40)
    answers_some = {**{i: "billing" for i in OOS[:3]}}  # answers out_of_scope for the other 9
    ev = evaluation({"fine-tuned": ("fine_tuned", 40, preds(answers_some))}, manifest,
                    trained=("billing", OUT_OF_SCOPE, "refund", "shipping"))
    data = kinds(ev.advice)["data"]
    assert data.change == {} and "still forced 3 of 12" in data.message and "the test items stay the yardstick" in data.message


def test_the_baseline_tie_is_broken_by_the_out_of_scope_items_it_forces():
    manifest = diagnosis(best=40)
    final = {**{i: "billing" for i in OOS[:2]}, 0: "refund", 14: "billing"}
    tfidf = {**{i: "billing" for i in OOS}, 30: "refund"}  # every out-of-scope message forced
    ev = evaluation({"fine-tuned": ("fine_tuned", 40, preds(final, unparseable=set(OOS[2:]))),
                     "tfidf-logreg": ("baseline", None, preds(tfidf, method="baseline"))}, manifest)
    use = kinds(ev.advice)["use"]
    pair = ev.paired[0]
    assert not policy.significant(pair)  # overall the two are a tie...
    assert use.message.startswith("Use the fine-tune (fine-tuned), not the TF-IDF + logistic-regression baseline: "
                                  "overall the two cannot be told apart")
    assert "answered 12 of 12 out-of-scope messages with an intent against the fine-tune's 2" in use.message
    assert use.number == pytest.approx(pair["bootstrap"]["macro_f1_diff"])
    # A tie with no out-of-scope difference: the cheaper one serves as well, as far as the items tell.
    same = evaluation({"fine-tuned": ("fine_tuned", 40, preds({0: "refund", 14: "billing"})),
                       "tfidf-logreg": ("baseline", None, preds({1: "refund", 15: "billing"}, method="baseline"))}, manifest)
    assert "cannot be told apart" in kinds(same.advice)["use"].message
    assert "the cheaper one serves as well" in kinds(same.advice)["use"].message


@pytest.mark.parametrize("verdict, clears, best, advised, words", [
    ("overfitting", True, 20, 2, "rose after it beyond its noise"),
    ("can't tell", False, 20, 2, "within noise (+0.010 per item, 95% interval [-0.020, +0.030], on 40 validation items)"),
    ("good", False, 40, None, "Keep 4 epochs"),
    ("underfitting", True, 40, 6, "beyond its noise"),
])
def test_the_epochs_follow_the_kept_checkpoint_unless_underfitting_cleared_its_noise(verdict, clears, best, advised, words):
    looks = {"overfitting": "overfitting", "can't tell": "overfitting", "underfitting": "underfitting"}.get(verdict)
    manifest = diagnosis(verdict, best=best, clears=clears, diff=-0.05 if verdict == "underfitting" else 0.01,
                         ci=(-0.08, -0.02) if verdict == "underfitting" else (0.005, 0.02) if clears else (-0.02, 0.03),
                         looks_like=looks)
    epochs = kinds(advise(manifest))["epochs"]
    assert epochs.change == ({"n_epochs": advised} if advised else {}) and words in epochs.message
    if verdict not in ("overfitting", "underfitting"):
        assert not any(w in epochs.message for w in ("overfit", "underfit", "memorised"))
    assert violations(advise(manifest), manifest) == []


def test_a_good_run_still_says_what_its_epochs_rest_on():
    # The canonical run's case: lowest validation loss at epoch 2 of 4, the later change within noise.
    within = diagnosis("good", best=20, diff=-0.1, ci=(-0.3, 0.05), looks_like=None)
    epochs = kinds(advise(within))["epochs"]
    assert epochs.change == {"n_epochs": 2} and epochs.number == -0.1 and epochs.interval == [-0.3, 0.05]
    assert "within noise (-0.100 per item, 95% interval [-0.300, +0.050], on 40 validation items)" in epochs.message
    assert violations(advise(within), within) == []
    # Per item the later epochs did better beyond noise: fewer epochs are not shown to be enough.
    better = diagnosis("good", best=20, diff=-0.1, ci=(-0.2, -0.03), looks_like=None)
    epochs = kinds(advise(better))["epochs"]
    assert epochs.change == {} and epochs.message.startswith("Keep 4 epochs") and "the two measures disagree" in epochs.message
    # The last epoch kept: did it still help? Said either way, with the comparison of the last two.
    last = diagnosis("good", best=40, diff=-0.2, ci=(-0.3, -0.1), looks_like=None)
    last["diagnosis"]["comparison"].update(from_step=30, what="validation loss, last two epochs", clears_noise=True)
    epochs = kinds(advise(last))["epochs"]
    assert epochs.change == {} and "still improved on the one before beyond noise (-0.200 per item" in epochs.message
    assert violations(advise(last), last) == []
    # Without a comparison the advice rests on the kept checkpoint's own validation items, with their
    # interval (the tiny test model's "can't tell" run, whose tail could not be checked, is such a case).
    alone = diagnosis("can't tell", best=40, looks_like="underfitting")
    alone["diagnosis"]["comparison"] = None
    epochs = kinds(advise(alone))["epochs"]
    assert epochs.change == {} and epochs.number == 0.2 and epochs.interval == [0.1, 0.3]
    assert "0.200 per item at the kept checkpoint, 95% interval [0.100, 0.300]" in epochs.message
    assert "the numbers can't tell" in epochs.message and violations(advise(alone), alone) == []
    # Without per-item losses either there is no number to rest on, and the rules say so.
    bare = diagnosis("good", best=20, looks_like=None)
    bare["diagnosis"]["comparison"] = None
    for row in bare["diagnosis"]["epochs"]:
        row.update(item_loss=None, item_loss_lo=None, item_loss_hi=None)
    assert "epochs: no number with a finite interval" in violations(advise(bare), bare)


def test_recommendations_that_disagree_are_caught():
    manifest = diagnosis(best=20)
    keep = Recommendation("keep", "Keep step 20.", 0.2, [0.1, 0.3], evidence={"name": "step-20", "step": 20, "epoch": 2})
    # The old advice: keep step 60 (epoch 3), and "train 5 epochs" / "the epochs can stay".
    longer = Recommendation("epochs", "Train 4 epochs.", 0.0, [-0.1, 0.1], change={"n_epochs": 4})
    assert violations(Advice([keep, longer]), manifest) == ["epochs: 4 advised, but the kept checkpoint is from epoch 2"]
    twice = [Recommendation("epochs", "Train 2 epochs.", 0.0, [-0.1, 0.1], change={"n_epochs": 2}),
             Recommendation("data", "Train 3 epochs and add data.", 0.5, [0.4, 0.6], change={"n_epochs": 3})]
    assert "n_epochs: set to 2 and to 3" in violations(Advice([keep, *twice]), manifest)
    under = diagnosis("underfitting", best=40, clears=True, ci=(-0.08, -0.02), looks_like="underfitting")
    fewer = Recommendation("epochs", "Train 3 epochs.", 0.0, [-0.1, 0.1], change={"n_epochs": 3})
    assert violations(Advice([fewer]), under) == ["underfitting, yet 3 epochs advised for a run of 4"]
    more = Recommendation("epochs", "Train 6 epochs.", 0.0, [-0.1, 0.1], change={"n_epochs": 6})
    assert violations(Advice([more]), diagnosis(best=40)) == ["more epochs (6) advised without a confirmed underfitting"]


def test_a_verdict_that_does_not_clear_its_noise_is_caught_and_so_is_advice_that_claims_one():
    claimed = diagnosis("overfitting", best=20, clears=False)  # the old 03: a 0.007 rise called overfitting
    assert "verdict 'overfitting' without a comparison that clears its noise" in violations(advise(claimed), claimed)
    cant = diagnosis("can't tell", best=20)
    says = Recommendation("epochs", "Train 2 epochs: the model overfit.", 0.01, [-0.02, 0.03], change={"n_epochs": 2})
    assert violations(Advice([says]), cant) == ["epochs: speaks of over/underfitting, but the verdict is \"can't tell\""]


def test_an_unusable_run_gets_a_learning_rate_change_instead_of_epochs():
    manifest = diagnosis("unusable", best=40, looks_like=None)
    manifest["diagnosis"]["cause"] = "diverged"
    recs = kinds(advise(manifest))
    assert "epochs" not in recs and recs["learning_rate"].change == {"learning_rate_multiplier": 1.0}
    manifest["diagnosis"]["cause"] = "flat"
    assert kinds(advise(manifest))["learning_rate"].change == {"learning_rate_multiplier": 4.0}


def test_the_next_run_is_the_union_of_the_changes_the_recommendations_make():
    manifest = diagnosis(best=20)
    ev = standard(manifest)
    proposal = ev.advice.next_run
    assert proposal["params"] == {"train_out_of_scope": True, "n_epochs": 2}
    assert len(proposal["why"]) == 2 and proposal["why"][0].startswith("train_out_of_scope=True: share of out-of-scope")
    assert ev.to_dict(with_predictions=False)["next_run"] == proposal
    assert "more than one change" in str(ev.advice)


def test_the_prompt_stays_as_trained():
    manifest = diagnosis(best=40)
    ev = standard(manifest)
    prompt = kinds(ev.advice)["prompt"]
    assert prompt.change == {} and prompt.message.startswith("Keep the system prompt as it was in training")
    named = 52 - len(OOS[8:])
    assert prompt.number == pytest.approx(named / 52) and f"names one in {named} of 52 test answers" in prompt.message
    assert "4 of the fine-tune's 4 answers that name no label are to out-of-scope messages" in prompt.message
