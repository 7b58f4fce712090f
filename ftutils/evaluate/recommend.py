"""What to do next, read from the evaluation and the training diagnosis.

Each recommendation says what the numbers are, not just what to do, so a reader can
disagree with it. Input is the evaluation as a plain dict (what `report.py` writes to
evaluation.json) and the run's manifest; nothing here calls a model.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ftutils.evaluate.scores import OUT_OF_SCOPE

SIGNIFICANCE = 0.05
SMALL_CLASS = 5            # fewer test items than this: a class's F1 is too coarse to judge
CHECKPOINT_MARGIN = 0.01    # a checkpoint must beat the final model by this to be worth switching
UNPARSEABLE_SHARE = 0.10
LLM_KINDS = ("base", "prompted", "fine_tuned", "checkpoint")


@dataclass
class Recommendation:
    kind: str
    """checkpoint | significance | out_of_scope | small_class | unparseable | confusion | weak_class | method | training."""
    message: str
    evidence: dict = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict:
        return asdict(self)


def _ci(values) -> str:
    return f"[{values[0]:.2f}, {values[1]:.2f}]" if values else ""


def _by_kind(evaluation: dict, *kinds) -> list[dict]:
    return [c for c in evaluation.get("candidates", []) if c["kind"] in kinds]


def _paired(evaluation: dict, a: str, b: str) -> dict | None:
    return next((p for p in evaluation.get("paired", []) if p["a"] == a and p["b"] == b), None)


# On a tie the cheaper model wins: no model at all, then no fine-tune (bare prompt, then a
# longer prompt), then the final model, then the latest checkpoint.
_TIE_ORDER = {"baseline": 0, "base": 1, "prompted": 2, "fine_tuned": 3, "checkpoint": 4}


def _rank(candidate: dict):
    return (candidate["metrics"]["macro_f1"], -_TIE_ORDER[candidate["kind"]], candidate.get("step") or 0)


def best_candidate(evaluation: dict, kinds=LLM_KINDS + ("baseline",)) -> dict | None:
    """Highest macro F1 among `kinds`; ties go to the cheaper model (see _TIE_ORDER)."""
    return max(_by_kind(evaluation, *kinds), key=_rank, default=None)


def kept_model(evaluation: dict) -> dict | None:
    """The fine-tuned model to use: the checkpoint with the best macro F1 when it beats the
    final model by CHECKPOINT_MARGIN or more, else the final model (no need to switch for less)."""
    final = next(iter(_by_kind(evaluation, "fine_tuned")), None)
    tuned = _by_kind(evaluation, "fine_tuned", "checkpoint")
    if final is None:
        return max(tuned, key=_rank, default=None)
    best = max(tuned, key=_rank)
    return best if best["metrics"]["macro_f1"] - final["metrics"]["macro_f1"] >= CHECKPOINT_MARGIN else final


def _checkpoint(evaluation: dict, manifest: dict | None) -> list[Recommendation]:
    final = next(iter(_by_kind(evaluation, "fine_tuned")), None)
    tuned = _by_kind(evaluation, "fine_tuned", "checkpoint")
    if final is None or len(tuned) < 2:
        return []
    best, kept = max(tuned, key=_rank), kept_model(evaluation)
    f_best, f_final = best["metrics"]["macro_f1"], final["metrics"]["macro_f1"]
    diag_step = ((manifest or {}).get("diagnosis") or {}).get("best_checkpoint_step")
    evidence = {"best": best["name"], "best_macro_f1": f_best, "final_macro_f1": f_final, "step": best.get("step"),
                "diagnosis_step": diag_step, "kept": kept["name"]}
    agree = _validation_pick(tuned, best, diag_step)
    if best is final:
        return [Recommendation("checkpoint", f"The final model has the best macro F1 of the fine-tuned models "
                               f"({f_final:.3f} {_ci(final['metrics'].get('macro_f1_ci'))}): keep {final['model']}.{agree}", evidence)]
    if kept is final:
        return [Recommendation("checkpoint", f"The checkpoint at step {best.get('step')} has the best macro F1 of the "
                               f"fine-tuned models ({f_best:.3f} {_ci(best['metrics'].get('macro_f1_ci'))}), the final "
                               f"model {f_final:.3f} {_ci(final['metrics'].get('macro_f1_ci'))}: less than "
                               f"{CHECKPOINT_MARGIN} apart, not worth switching for; keep {final['model']}.{agree}",
                               evidence)]
    overlap = ""
    lo_best, hi_final = (best["metrics"].get("macro_f1_ci") or [None])[0], (final["metrics"].get("macro_f1_ci") or [None, None])[1]
    if lo_best is not None and hi_final is not None and lo_best <= hi_final:
        overlap = " Their confidence intervals overlap, so the gain may be noise; confirm on more test data."
    return [Recommendation("checkpoint", f"The checkpoint at step {best.get('step')} has the best macro F1 "
                           f"({f_best:.3f} {_ci(best['metrics'].get('macro_f1_ci'))}) vs {f_final:.3f} for the final "
                           f"model: use {best['model']}.{overlap}{agree}", evidence)]


def _validation_pick(tuned: list[dict], best: dict, diag_step) -> str:
    """How 03's pick by validation loss stands against the test set's best, said rather than picked silently."""
    if diag_step is None:
        return ""
    said = f" 03's diagnosis picked step {diag_step} by validation loss"
    if diag_step == best.get("step"):
        return said + ", the same."
    picked = next((c for c in tuned if c.get("step") == diag_step), None)
    lo = (best["metrics"].get("macro_f1_ci") or [None])[0]
    why = "; the next run takes its epochs from validation, since choosing by the test set would make its score optimistic."
    if picked is None or lo is None:
        return said + why
    f_picked = picked["metrics"]["macro_f1"]
    verdict = ("inside this interval: the test set cannot tell the two apart" if f_picked >= lo
               else "below this interval: the test set disagrees with validation")
    return f"{said} ({f_picked:.3f} {_ci(picked['metrics'].get('macro_f1_ci'))}), {verdict}{why}"


def significant(pair: dict) -> bool:
    """The notebook's one rule: a difference counts when McNemar's p < 0.05 AND the paired
    bootstrap interval of the macro-F1 difference excludes 0; otherwise the two are not
    significantly different, whatever their point estimates say."""
    lo, hi = pair["bootstrap"]["macro_f1_diff_ci"]
    return pair["mcnemar"]["p_value"] < SIGNIFICANCE and not lo <= 0 <= hi


def describe(candidate: dict) -> str:
    """How a recommendation names a candidate, once."""
    if candidate["kind"] == "prompted":
        shots = candidate.get("shots") or 0
        return "the base model prompted with the label list" + (f" and {shots} examples" if shots else "")
    return {"base": "the base model", "baseline": "the TF-IDF + logistic-regression baseline"}.get(
        candidate["kind"], candidate["name"])


def _versus(evaluation: dict, other: dict) -> list[Recommendation]:
    """The fine-tuned model against one alternative, on the same items."""
    pair = _paired(evaluation, other["name"], "fine-tuned")
    if pair is None:
        return []
    m, b = pair["mcnemar"], pair["bootstrap"]
    evidence = {"against": other["name"], **m, "macro_f1_diff": b["macro_f1_diff"], "macro_f1_diff_ci": b["macro_f1_diff_ci"]}
    numbers = (f"accuracy {m['accuracy_b']:.3f} vs {m['accuracy_a']:.3f} on {m['n']} items, McNemar p={m['p_value']:.3g} "
               f"({m['only_b_correct']} items only the fine-tune got right, {m['only_a_correct']} only {other['name']}); "
               f"macro F1 difference {b['macro_f1_diff']:+.3f} {_ci(b['macro_f1_diff_ci'])}")
    who = describe(other)
    kind = "baseline" if other["kind"] == "baseline" else "significance"
    if not significant(pair):
        cheaper = (" As far as these items can tell, the cheaper, faster one serves as well; more test items would be "
                   "needed to tell them apart."
                   if other["kind"] in ("baseline", "prompted") else " More (or more varied) training data, or more epochs "
                   "if training underfit, before paying for the fine-tune.")
        return [Recommendation(kind, f"The fine-tuned model is not significantly different from {who}: "
                               f"{numbers}.{cheaper}", evidence)]
    if b["macro_f1_diff"] > 0:
        return [Recommendation(kind, f"The fine-tuned model is significantly better than {who}: {numbers}.", evidence)]
    return [Recommendation(kind, f"The fine-tuned model is significantly WORSE than {who}: {numbers}. "
                           "Check the training data's answers and the diagnosis before using it.", evidence)]


def _alternatives(evaluation: dict) -> list[Recommendation]:
    return [rec for other in _by_kind(evaluation, "base", "prompted", "baseline") for rec in _versus(evaluation, other)]


def answers_out_of_scope(metrics: dict) -> bool:
    """Whether the model answered out_of_scope for any item (its confusion-matrix column)."""
    conf = metrics["confusion"]
    if OUT_OF_SCOPE not in conf["columns"]:
        return False
    column = conf["columns"].index(OUT_OF_SCOPE)
    return any(row[column] for row in conf["matrix"])


def _out_of_scope(evaluation: dict, chosen: dict) -> list[Recommendation]:
    oos = chosen["metrics"].get("out_of_scope")
    if not oos or not oos["forced"]:
        return []
    intents = ", ".join(f"{k} {v}" for k, v in oos["by_intent"].items())
    # A model that answers out_of_scope at times has learnt the class, just not well enough.
    fix = ("add more, and more varied, out-of-scope messages to training" if answers_out_of_scope(chosen["metrics"]) else
           f"it never answers {OUT_OF_SCOPE!r}; add out-of-scope messages with that label to the training data "
           "(02_prepare), so the model has an answer for them")
    return [Recommendation("out_of_scope", f"{chosen['name']} forced {oos['forced']} of {oos['n']} out-of-scope messages "
                           f"into an intent ({intents}): {fix}.", {"candidate": chosen["name"], **oos})]


def _small_classes(evaluation: dict, chosen: dict) -> list[Recommendation]:
    small = {lab: v["support"] for lab, v in chosen["metrics"]["per_class"].items() if 0 < v["support"] < SMALL_CLASS}
    if not small:
        return []
    listed = ", ".join(f"{lab!r} ({n} item{'s' if n != 1 else ''})" for lab, n in small.items())
    return [Recommendation("small_class", f"Too few test items to judge {listed}: one item more or less right moves "
                           f"such a class's F1 by a large step, which also widens every macro-F1 interval. Judge them "
                           f"on more test data (at least {SMALL_CLASS} each).", {"classes": small})]


def _unparseable(evaluation: dict) -> list[Recommendation]:
    labels = evaluation.get("labels", [])
    many = [c for c in _by_kind(evaluation, *LLM_KINDS)
            if c["metrics"]["n"] and c["metrics"]["unparseable"] / c["metrics"]["n"] > UNPARSEABLE_SHARE]
    if not many:
        return []
    counts = ", ".join(f"{c['name']} {c['metrics']['unparseable']} of {c['metrics']['n']} "
                       f"({c['metrics']['unparseable'] / c['metrics']['n']:.0%})" for c in many)
    samples = [p["raw"] for c in many for p in evaluation.get("predictions", {}).get(c["name"], [])
               if p.get("pred") is None][:3]
    shown = "; ".join(repr(s[:60]) for s in samples)
    fixes = (["score labels by log-probability (method='score')"] if any(c.get("method") == "generate" for c in many) else [])
    fixes += [f"say 'Answer with exactly one of: {', '.join(labels)}' in the system prompt",
              "train longer so the format is learnt"]
    fix = ", ".join(fixes[:-1]) + " or " + fixes[-1]
    return [Recommendation("unparseable", f"Many answers name no label: {counts}{'; e.g. ' + shown if shown else ''}. "
                           f"{fix[0].upper() + fix[1:]}.",
                           {"candidates": {c["name"]: c["metrics"]["unparseable"] for c in many},
                            "n": many[0]["metrics"]["n"], "examples": samples})]


def _confusions(evaluation: dict, chosen: dict, k: int = 3) -> list[Recommendation]:
    from ftutils.evaluate.scores import top_confusions

    out = []
    predictions = evaluation.get("predictions", {}).get(chosen["name"], [])
    support = {lab: v["support"] for lab, v in chosen["metrics"]["per_class"].items()}
    for true, pred, count in top_confusions(chosen["metrics"], k=k, min_count=2):
        texts = [p.get("text", "") for p in predictions if p["label"] == true and p.get("pred") == pred][:2]
        shown = "; ".join(repr(t[:80]) for t in texts if t)
        out.append(Recommendation("confusion", f"{chosen['name']}: class {true!r} is confused with {pred!r} "
                                  f"({count} of {support.get(true, '?')} times): add training examples that tell them apart"
                                  f"{', like these: ' + shown if shown else ''}.",
                                  {"candidate": chosen["name"], "true": true, "pred": pred, "count": count, "examples": texts}))
    weak = {lab: v for lab, v in chosen["metrics"]["per_class"].items() if v["support"] and v["recall"] < 0.5}
    if weak:
        listed = ", ".join(f"{lab!r} (recall {v['recall']:.2f}, F1 {v['f1']:.2f}, {v['support']} items)"
                           for lab, v in weak.items())
        out.append(Recommendation("weak_class", f"{chosen['name']}: {'class' if len(weak) == 1 else 'classes'} {listed} "
                                  f"{'needs' if len(weak) == 1 else 'need'} more (and more varied) training examples.",
                                  {"candidate": chosen["name"], "classes": weak}))
    return out


def _methods(evaluation: dict) -> list[Recommendation]:
    return [Recommendation("method", f"{c['name']} was evaluated by {c['method']} although {c['requested']} was asked: "
                           f"{c['note']}.", {"candidate": c["name"], "method": c["method"]})
            for c in _by_kind(evaluation, *LLM_KINDS) if c.get("requested") and c["requested"] != c["method"]]


def _training(manifest: dict | None) -> list[Recommendation]:
    diagnosis = (manifest or {}).get("diagnosis") or {}
    if not diagnosis:
        return []
    verdict = diagnosis.get("verdict", "unknown")
    # "Evaluate on the test set" is done by now: this is that evaluation's advice.
    steps = [s for s in diagnosis.get("next_steps") or [] if "04_evaluate" not in s]
    out = [Recommendation("training", f"Training diagnosis ({verdict}): {step}", {"verdict": verdict}) for step in steps]
    if not out and verdict == "good":
        out.append(Recommendation("training", "Training diagnosis (good): the losses show neither under- nor "
                                              "overfitting; the epochs and learning rate can stay.", {"verdict": verdict}))
    elif not out:
        out.append(Recommendation("training", f"Training diagnosis: {verdict}; see 03_train's findings.", {"verdict": verdict}))
    return out


def recommend(evaluation: dict, manifest: dict | None = None) -> list[Recommendation]:
    """Recommendations, most decisive first: which model, whether it beats base and the
    baseline, where it fails, then what the training diagnosis suggests."""
    # The model the checkpoint advice keeps is the one the rest of the advice is about.
    chosen = kept_model(evaluation) or best_candidate(evaluation, ("base",))
    out = _checkpoint(evaluation, manifest) + _alternatives(evaluation)
    if chosen:
        out += _out_of_scope(evaluation, chosen) + _small_classes(evaluation, chosen)
    out += _unparseable(evaluation) + (_confusions(evaluation, chosen) if chosen else [])
    return out + _methods(evaluation) + _training(manifest)


def next_run(evaluation: dict, manifest: dict | None = None) -> dict:
    """The papermill parameters of the next run, as the evidence suggests: {"params", "why",
    "later"}. One change at a time, so the next comparison can say what that change did: the
    data fix first (new data changes which epoch is best, so the epochs are the new run's own
    validation loss's to choose), the epoch change when the data needs none; what waits is in
    "later", with its reason.

    Epochs come from the validation loss (03's diagnosis), never from the test set: choosing
    by test scores would make the next run's test result optimistic. The data fix comes from the
    test set's out-of-scope items, which is a question of what the data covers, not a tuned
    number. Parameter names are the notebooks' own (02's train_out_of_scope, 03's n_epochs)."""
    changes = []  # (params, why), in the order they are tried
    final = next(iter(_by_kind(evaluation, "fine_tuned")), None)
    oos = (final or {}).get("metrics", {}).get("out_of_scope")
    if oos and oos["forced"] and not answers_out_of_scope(final["metrics"]):
        changes.append(({"train_out_of_scope": True},
                        f"the fine-tuned model forced {oos['forced']} of {oos['n']} out-of-scope messages into an "
                        "intent and never answers out_of_scope: train on out-of-scope messages too"))
    manifest = manifest or {}
    diagnosis = manifest.get("diagnosis") or {}
    epochs = (manifest.get("hyperparameters") or {}).get("n_epochs")
    final_step = (manifest.get("final_metrics") or {}).get("step")
    best_step = diagnosis.get("best_checkpoint_step")
    if isinstance(epochs, int) and final_step:
        steps_per_epoch = final_step / epochs
        if diagnosis.get("verdict") == "overfitting" and best_step:
            best_epoch = max(1, round(best_step / steps_per_epoch))
            if best_epoch < epochs:
                changes.append(({"n_epochs": best_epoch},
                                f"validation loss was lowest at step {best_step} (epoch {best_epoch} of {epochs}) and "
                                f"rose after it: train {best_epoch} epochs"))
        elif diagnosis.get("verdict") == "underfitting":
            changes.append(({"n_epochs": min(50, epochs * 2)},
                            f"training loss was still falling after {epochs} epochs: train {min(50, epochs * 2)}"))
    if not changes:
        return {"params": {}, "why": [], "later": []}
    (params, why), rest = changes[0], changes[1:]
    return {"params": params, "why": [why],
            "later": [f"{reason} (one change at a time: after this run, by its own validation loss)"
                      for _, reason in rest]}
