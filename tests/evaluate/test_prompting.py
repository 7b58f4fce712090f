"""The prompted base model and the verdicts that compare against it: the prompts are built
from the run's own data, and no recommendation claims more than its paired test allows."""
from __future__ import annotations

import pandas as pd

from ftutils.evaluate.candidates import Candidate, TestExample, candidates_from_manifest
from ftutils.evaluate.classify import Classification, Prediction
from ftutils.evaluate.prompting import choose_shots, label_instruction, prompted
from ftutils.evaluate.policy import significant
from ftutils.evaluate.scores import OUT_OF_SCOPE, classification_metrics, compare_pair
from ftutils.evaluate.suite import CandidateResult, Evaluation, score_classification

LABELS = ["balance", "freeze_account", OUT_OF_SCOPE]


def ex(i, label, text=None):
    return TestExample(f"id{i}", label, [{"role": "system", "content": "Classify the banking query."},
                                         {"role": "user", "content": text or f"query {i}"}])


TRAIN = [ex(100 + i, LABELS[i % 2]) for i in range(10)]  # no out-of-scope in training


def test_zero_shot_replaces_the_system_prompt_with_the_label_list_and_keeps_ids():
    items = prompted([ex(1, "balance", "how much money do I have")], LABELS)
    [item] = items
    assert item.id == "id1" and item.label == "balance"
    assert item.prompt == [{"role": "system", "content": label_instruction(LABELS)},
                           {"role": "user", "content": "how much money do I have"}]
    assert all(lab in item.prompt[0]["content"] for lab in LABELS)


def test_few_shot_shows_every_label_before_repeating_one_and_the_same_shots_for_every_item():
    shots = choose_shots(TRAIN, ["balance", "freeze_account"], k=3, seed=1)
    assert [s.label for s in shots[:2]] == ["balance", "freeze_account"] and len(shots) == 3
    items = prompted([ex(1, "balance"), ex(2, "freeze_account")], LABELS, TRAIN, k=4, seed=1)
    assert items[0].prompt[:-1] == items[1].prompt[:-1]  # all but the item's own message
    turns = items[0].prompt[1:-1]
    assert [t["role"] for t in turns] == ["user", "assistant"] * 4
    assert {t["content"] for t in turns if t["role"] == "assistant"} == {"balance", "freeze_account"}


def test_candidates_list_the_prompted_base_after_the_base():
    manifest = {"base_model": "m", "fine_tuned_model": "ft:m:local::abc", "final_metrics": {"step": 9}}
    names = [(c.name, c.kind, c.shots) for c in candidates_from_manifest(manifest, prompted_shots=(0, 5))]
    assert names[:3] == [("base", "base", None), ("zero-shot", "prompted", 0), ("few-shot-5", "prompted", 5)]


def test_out_of_scope_messages_forced_into_an_intent_are_counted():
    frame = pd.DataFrame({"id": list("abcde"), "label": ["balance", OUT_OF_SCOPE, OUT_OF_SCOPE, OUT_OF_SCOPE, OUT_OF_SCOPE],
                          "pred": ["balance", "balance", "freeze_account", OUT_OF_SCOPE, None]})
    oos = classification_metrics(frame, LABELS)["out_of_scope"]
    assert oos == {"n": 4, "forced": 2, "by_intent": {"balance": 1, "freeze_account": 1}}
    assert classification_metrics(frame.iloc[:1], LABELS)["out_of_scope"] is None


def _classification(preds):
    items = [ex(i, lab) for i, lab in enumerate(TRUTH)]
    return Classification("m", "score", [Prediction(e.id, e.label, p, p or "x", "score", 0.01, 20, 1)
                                         for e, p in zip(items, preds)], "score")


TRUTH = ["balance"] * 8 + ["freeze_account"] * 8 + [OUT_OF_SCOPE] * 3
MANIFEST = {"fine_tuned_model": "ft:m:local::abc", "hyperparameters": {"n_epochs": 2}, "final_metrics": {"step": 20},
            "diagnosis": {"verdict": "good", "best_checkpoint_step": 20, "epochs": []}}


def _evaluation(specs):
    results = {name: CandidateResult(Candidate(name, "m", kind, shots=shots), c, score_classification(c, LABELS, 300, 0))
               for name, (kind, shots, c) in specs.items()}
    items = [ex(i, lab) for i, lab in enumerate(TRUTH)]
    return Evaluation(LABELS, items, results, [], MANIFEST, "score", ["balance", "freeze_account"]).pair_and_advise(300, 0)


def test_the_prompted_base_is_an_alternative_the_kept_fine_tune_is_paired_with():
    tuned = TRUTH[:16] + ["balance", "balance", "freeze_account"]
    zero = ["balance"] * 19
    ev = _evaluation({"zero-shot": ("prompted", 0, _classification(zero)),
                      "fine-tuned": ("fine_tuned", None, _classification(tuned))})
    assert [(p["a"], p["b"]) for p in ev.paired] == [("zero-shot", "fine-tuned")]
    recs = {r.kind: r for r in ev.recommendations}
    assert recs["use"].message.startswith("Use the fine-tune (fine-tuned): it is significantly better than every "
                                          "alternative") and "the base model prompted with the label list" in recs["use"].message
    # Never answers out_of_scope and was never trained on it: the data advice says so, from the test set's counts.
    assert recs["data"].change == {"train_out_of_scope": True}
    assert "forced 3 of 3 out-of-scope test messages into an intent" in recs["data"].message
    assert "Listing the labels does not rescue the base model either" in recs["prompt"].message


def test_significance_needs_both_p_and_an_interval_that_excludes_zero():
    pair = {"mcnemar": {"p_value": 0.01}, "bootstrap": {"macro_f1_diff_ci": [-0.01, 0.2]}}
    assert not significant(pair)
    assert not significant({"mcnemar": {"p_value": 0.2}, "bootstrap": {"macro_f1_diff_ci": [0.05, 0.2]}})
    assert significant({"mcnemar": {"p_value": 0.01}, "bootstrap": {"macro_f1_diff_ci": [0.05, 0.2]}})
