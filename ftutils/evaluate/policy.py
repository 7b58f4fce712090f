"""The advice for the next run, in one place: 03_train, 04_evaluate and 05_iterate all quote it.

Four questions, answered from a run's own numbers, at most five recommendations, ranked:

1. **keep**: which model to use. The checkpoint with the lowest validation loss: chosen by
   validation, never by the test set (a choice made on the test set makes its score
   optimistic). The test set only says whether it can tell that checkpoint from the final
   model, and whether the fine-tune beats what you could use instead (`use`).
2. **data**: what to add to the training data. Never test items: the test set stays the
   yardstick. Out-of-scope messages the model forces into an intent, and the classes it confuses.
3. **epochs**: how long to train: the kept checkpoint's epochs, more only when underfitting
   cleared its noise (`ftutils.train.diagnose`); the learning rate instead when the run was unusable.
4. **prompt**: what the system prompt says. The fine-tune was trained with its prompt, so it keeps it.

Every recommendation carries the number it rests on and that number's 95% interval, and the
next-run parameters it implies (`change`); `next_run` is their union, so what 05 runs is
exactly what was advised. The advice's shape is `ftutils.evaluate.advice`; `policy_rules.violations`
checks the rules it must keep (the tests run it).
"""
from __future__ import annotations

import math
from ftutils.evaluate.advice import Advice, Recommendation
from ftutils.evaluate.scores import OUT_OF_SCOPE, out_of_scope_pair, top_confusions, wilson

SIGNIFICANCE = 0.05
MAX_RECOMMENDATIONS = 5
RANK = ("keep", "use", "data", "epochs", "learning_rate", "prompt")
LLM_KINDS = ("base", "prompted", "fine_tuned", "checkpoint")
ALTERNATIVE_KINDS = ("base", "prompted", "baseline")


# ---- the numbers the advice reads ---------------------------------------------------------

def significant(pair: dict) -> bool:
    """The notebooks' one rule for two models on the same items: McNemar's p < 0.05 AND the
    paired bootstrap interval of the macro-F1 difference excludes 0."""
    lo, hi = pair["bootstrap"]["macro_f1_diff_ci"]
    return pair["mcnemar"]["p_value"] < SIGNIFICANCE and not lo <= 0 <= hi


def describe(candidate: dict) -> str:
    """How the advice names a candidate, once."""
    if candidate["kind"] == "prompted":
        shots = candidate.get("shots") or 0
        return "the base model prompted with the label list" + (f" and {shots} examples" if shots else "")
    return {"base": "the base model", "baseline": "the TF-IDF + logistic-regression baseline"}.get(
        candidate["kind"], candidate["name"])


def answers_out_of_scope(metrics: dict) -> bool:
    """Whether the model answered out_of_scope for any item (its confusion-matrix column)."""
    conf = metrics["confusion"]
    if OUT_OF_SCOPE not in conf["columns"]:
        return False
    column = conf["columns"].index(OUT_OF_SCOPE)
    return any(row[column] for row in conf["matrix"])


def _by_kind(evaluation: dict, *kinds) -> list[dict]:
    return [c for c in (evaluation or {}).get("candidates", []) if c["kind"] in kinds]


def _named(evaluation: dict, name: str | None) -> dict | None:
    return next((c for c in (evaluation or {}).get("candidates", []) if c["name"] == name), None)


def _paired(evaluation: dict, a: str, b: str) -> dict | None:
    return next((p for p in (evaluation or {}).get("paired", []) if p["a"] == a and p["b"] == b), None)


def _ci(values, digits: int = 3) -> str:
    return f"[{values[0]:.{digits}f}, {values[1]:.{digits}f}]" if values else ""


def _signed_ci(values) -> str:
    return f"[{values[0]:+.3f}, {values[1]:+.3f}]" if values else ""


def epochs_of(manifest: dict) -> tuple[int | None, float | None]:
    """(epochs trained, steps per epoch) from the manifest."""
    epochs = (manifest.get("hyperparameters") or {}).get("n_epochs")
    final_step = (manifest.get("final_metrics") or {}).get("step")
    if not isinstance(epochs, int) or not final_step:
        return None, None
    return epochs, final_step / epochs


def kept_step(manifest: dict) -> int | None:
    """The step of the model to keep: the lowest validation loss (03's diagnosis), by validation only."""
    diagnosis = manifest.get("diagnosis") or {}
    step = diagnosis.get("best_checkpoint_step")
    final_step = (manifest.get("final_metrics") or {}).get("step")
    return int(step) if step is not None else (int(final_step) if final_step else None)


def kept_name(manifest: dict) -> str:
    """The evaluation's name of the kept model: "fine-tuned" for the last step, else "step-N"."""
    step, final_step = kept_step(manifest), (manifest.get("final_metrics") or {}).get("step")
    return "fine-tuned" if step is None or final_step is None or int(step) == int(final_step) else f"step-{step}"


def _epoch_row(manifest: dict, step: int | None) -> dict:
    rows = ((manifest.get("diagnosis") or {}).get("epochs") or [])
    return next((r for r in rows if r.get("step") == step), {})


def finite(values) -> bool:
    return bool(values) and all(v is not None and math.isfinite(v) for v in values)


# ---- the four questions --------------------------------------------------------------------

def _keep(manifest: dict, evaluation: dict | None) -> list[Recommendation]:
    step = kept_step(manifest)
    if step is None or not manifest.get("fine_tuned_model"):
        return []
    epochs, per_epoch = epochs_of(manifest)
    epoch = round(step / per_epoch) if per_epoch else None
    row = _epoch_row(manifest, step)
    name = kept_name(manifest)
    where = f"the checkpoint at step {step}" + (f" (epoch {epoch} of {epochs})" if epoch else "")
    if name == "fine-tuned":
        where = f"the final model (step {step}" + (f", epoch {epoch})" if epoch else ")")
    loss = row.get("full_valid_loss")
    said = (f"Keep {where}: it has the lowest validation loss on the whole validation file"
            + (f", {loss:.3f}" if loss is not None else ""))
    number, interval, basis = loss, None, "validation loss (the service's, whole file) of the kept checkpoint"
    if row.get("item_loss") is not None and finite([row.get("item_loss_lo"), row.get("item_loss_hi")]):
        number, interval = row["item_loss"], [row["item_loss_lo"], row["item_loss_hi"]]
        basis = "mean answer loss of the validation items at the kept checkpoint"
        said += f" (per item {number:.3f}, 95% interval {_ci(interval)})"
    said += ". Chosen by validation, never by the test set"
    kept = _named(evaluation, name)
    final = _named(evaluation, "fine-tuned")
    pair = _paired(evaluation, "fine-tuned", name) if evaluation and kept and final and kept is not final else None
    if pair:
        m, b = pair["mcnemar"], pair["bootstrap"]
        verdict = ("and the test set cannot tell the two apart" if not significant(pair) else
                   "and the test set tells them apart" + (": the final model is better there, which a choice by "
                   "validation accepts" if b["macro_f1_diff"] < 0 else ": the kept checkpoint is better there too"))
        said += (f"; on the test set it scores macro F1 {kept['metrics']['macro_f1']:.3f} against the final model's "
                 f"{final['metrics']['macro_f1']:.3f} (McNemar p={m['p_value']:.2g}, kept minus final "
                 f"{b['macro_f1_diff']:+.3f} {_signed_ci(b['macro_f1_diff_ci'])}), {verdict}")
    elif evaluation and kept:
        said += f"; on the test set: macro F1 {kept['metrics']['macro_f1']:.3f} {_ci(kept['metrics'].get('macro_f1_ci'))}"
    return [Recommendation("keep", said + ".", number, interval, basis, {},
                           {"name": name, "step": step, "epoch": epoch})]


def _forced(candidate: dict) -> tuple[int, int]:
    oos = candidate["metrics"].get("out_of_scope") or {}
    return oos.get("forced", 0), oos.get("n", 0)


def _forced_pair(evaluation: dict, a: str, b: str) -> dict | None:
    """Out-of-scope items only, paired: forced into an intent by one model and not the other."""
    preds = (evaluation or {}).get("predictions") or {}
    return out_of_scope_pair(preds[a], preds[b]) if a in preds and b in preds else None


def _use(manifest: dict, evaluation: dict | None) -> list[Recommendation]:
    """The kept fine-tune against what you could use instead, on the same test items."""
    name = kept_name(manifest)
    kept = _named(evaluation, name)
    others = [c for c in _by_kind(evaluation, *ALTERNATIVE_KINDS) if _paired(evaluation, c["name"], name)]
    # (pairs read "b minus a": the kept model minus the alternative)
    if not kept or not others:
        return []
    pairs = {c["name"]: _paired(evaluation, c["name"], name) for c in others}
    beaten = [c for c in others if significant(pairs[c["name"]]) and pairs[c["name"]]["bootstrap"]["macro_f1_diff"] > 0]
    tied = [c for c in others if not significant(pairs[c["name"]])]
    worse_than = [c for c in others if significant(pairs[c["name"]]) and pairs[c["name"]]["bootstrap"]["macro_f1_diff"] < 0]
    closest = min(others, key=lambda c: pairs[c["name"]]["bootstrap"]["macro_f1_diff"])
    pair = pairs[closest["name"]]
    b, m = pair["bootstrap"], pair["mcnemar"]
    numbers = (f"macro F1 {kept['metrics']['macro_f1']:.3f} against {closest['metrics']['macro_f1']:.3f}, McNemar "
               f"p={m['p_value']:.2g}, difference {b['macro_f1_diff']:+.3f} {_signed_ci(b['macro_f1_diff_ci'])}")
    evidence = {"against": closest["name"], "macro_f1_diff": b["macro_f1_diff"], "ci": b["macro_f1_diff_ci"],
                "p_value": m["p_value"], "beaten": [c["name"] for c in beaten], "tied": [c["name"] for c in tied]}
    rec = lambda text: [Recommendation("use", text, b["macro_f1_diff"], b["macro_f1_diff_ci"],  # noqa: E731
                                       f"macro-F1 difference, {name} minus {closest['name']} (test set, paired)",
                                       {}, evidence)]
    if worse_than:
        return rec(f"Use {describe(worse_than[0])} rather than the fine-tune: it is significantly better on the "
                   f"same test items ({numbers}). Check the training data's answers before training again.")
    if not tied:
        return rec(f"Use the fine-tune ({name}): it is significantly better than every alternative on the same "
                   f"{m['n']} test items; the closest is {describe(closest)} ({numbers}).")
    tie = min(tied, key=lambda c: pairs[c["name"]]["bootstrap"]["macro_f1_diff"])
    f_tie, f_kept = _forced(tie), _forced(kept)
    forced = _forced_pair(evaluation, tie["name"], name)
    who = describe(tie)
    if forced and forced["n"] and forced["only_a_forced"] > forced["only_b_forced"] and forced["p_value"] < SIGNIFICANCE:
        return rec(f"Use the fine-tune ({name}), not {who}: overall the two cannot be told apart on these items "
                   f"({numbers}), but {who} answered {f_tie[0]} of {f_tie[1]} out-of-scope messages with an intent "
                   f"against the fine-tune's {f_kept[0]} (paired on those {forced['n']} items: {forced['only_a_forced']} "
                   f"forced only by {tie['name']}, {forced['only_b_forced']} only by the fine-tune, McNemar "
                   f"p={forced['p_value']:.2g}). A wrong confident answer to an out-of-scope message is the costly error.")
    return rec(f"{who[0].upper() + who[1:]} and the fine-tune cannot be told apart on these {m['n']} test items "
               f"({numbers}): as far as they tell, the cheaper one serves as well; more test items would tell them apart.")


def _data(manifest: dict, evaluation: dict | None) -> list[Recommendation]:
    """What to add to the training data: never test items, only what they show is missing."""
    kept = _named(evaluation, kept_name(manifest))
    if not kept:
        return []
    metrics = kept["metrics"]
    trained = set((evaluation or {}).get("trained_labels") or [])
    parts, change, number, interval, basis = [], {}, None, None, ""
    k, n = _forced(kept)
    who = f"the kept model ({kept['name']})"
    if n:
        number, interval = k / n, wilson(k, n)
        basis = "share of out-of-scope test messages the kept model forced into an intent"
        if OUT_OF_SCOPE not in trained and not answers_out_of_scope(metrics):
            change = {"train_out_of_scope": True}
            parts.append(f"{who} forced {k} of {n} out-of-scope test messages into an intent ({number:.0%}, "
                         f"95% interval {_ci(interval, 2)}) and never answers {OUT_OF_SCOPE!r}: it was never shown that "
                         f"answer. Train on out-of-scope examples: 02_prepare's pool (train_out_of_scope=True), queries "
                         f"set aside for training, none of them test items")
        elif k:
            parts.append(f"{who} still forced {k} of {n} out-of-scope test messages into an intent "
                         f"({number:.0%}, 95% interval {_ci(interval, 2)}): collect or write more, and more varied, "
                         f"out-of-scope examples for training (new ones; the test items stay the yardstick)")
    # Out-of-scope rows are the forced answers above; the confusions are between intents.
    confused = [(t, p, c) for t, p, c in top_confusions(metrics, k=len(metrics["confusion"]["labels"]) ** 2,
                                                           min_count=2) if t != OUT_OF_SCOPE][:3]
    if confused:
        support = {lab: v["support"] for lab, v in metrics["per_class"].items()}
        listed = "; ".join(f"{t} answered as {p} {c} of {support.get(t, '?')} times" for t, p, c in confused)
        parts.append(f"write new training examples that tell apart the classes it confuses ({listed})")
        if number is None:
            t, p, c = confused[0]
            number, interval = c / support[t], wilson(c, support[t])
            basis = f"share of {t} test items answered as {p}"
    if not parts:
        return []
    text = "; ".join(parts)
    return [Recommendation("data", text[0].upper() + text[1:] + ".", number, interval, basis, change,
                           {"confusions": confused, "forced": [k, n]})]


def _epochs(manifest: dict) -> list[Recommendation]:
    """How many epochs: the kept checkpoint's, more only when underfitting cleared its noise. The
    number is the diagnosis's paired comparison (kept against last, or the last two epochs)."""
    diagnosis = manifest.get("diagnosis") or {}
    epochs, per_epoch = epochs_of(manifest)
    if not diagnosis or epochs is None:
        return []
    verdict, cmp = diagnosis.get("verdict"), diagnosis.get("comparison") or {}
    if verdict == "unusable":
        return []
    number, interval = cmp.get("diff"), cmp.get("ci")
    basis = (f"change of the mean validation answer loss, step {cmp['from_step']} to {cmp['to_step']} (paired)"
             if cmp else "")
    step = kept_step(manifest)
    kept_epoch = max(1, round(step / per_epoch)) if step else epochs
    on_batches = cmp.get("what", "").startswith("training")
    said = (f"{cmp['diff']:+.3f} per {'batch' if on_batches else 'item'}, 95% interval {_signed_ci(cmp['ci'])}, on "
            f"{cmp['n']} {'training batches' if on_batches else 'validation items'}" if cmp else "")
    lo, hi = cmp.get("ci") or (None, None)
    row = _epoch_row(manifest, step)
    if not cmp and row.get("item_loss") is not None and finite([row.get("item_loss_lo"), row.get("item_loss_hi")]):
        # No paired comparison (e.g. a verdict that could not be checked): the advice rests on the
        # kept checkpoint's own validation items, with their interval.
        number, interval = row["item_loss"], [row["item_loss_lo"], row["item_loss_hi"]]
        basis = "mean validation answer loss at the kept checkpoint"
        said = f"{number:.3f} per item at the kept checkpoint, 95% interval {_ci(interval)}"
    if verdict == "underfitting":
        more = min(50, math.ceil(epochs * 1.5))
        return [Recommendation("epochs", f"Train {more} epochs instead of {epochs}: the loss was still falling at the end, "
                               f"beyond its noise ({said}); the model had more to learn.",
                               number, interval, basis, {"n_epochs": more}, {"verdict": verdict})]
    if kept_epoch < epochs:
        if cmp and hi is not None and hi < 0:  # per item the later epochs did better: fewer is not shown to be enough
            return [Recommendation("epochs", f"Keep {epochs} epochs: the whole file's validation loss was lowest after "
                                   f"epoch {kept_epoch}, but per item the later epochs did better, beyond noise ({said}); "
                                   "the two measures disagree, so fewer epochs are not shown to be enough.",
                                   number, interval, basis, {}, {"verdict": verdict})]
        if verdict == "overfitting":
            why = f"the validation loss rose after it beyond its noise ({said}): the later epochs memorised"
        elif cmp:
            why = (f"what the later epochs changed is within noise ({said}), so they bought nothing that validation "
                   "can see")
        else:
            why = ("the later epochs did not lower the validation loss (no paired per-item comparison here to say whether their "
                   "change is more than noise)")
        return [Recommendation("epochs", f"Train {kept_epoch} epoch{'s' if kept_epoch > 1 else ''} instead of {epochs}, as "
                               f"many as the kept checkpoint had: {why}. The same model as far as validation tells, "
                               f"for {kept_epoch}/{epochs} of the training.",
                               number, interval, basis, {"n_epochs": kept_epoch}, {"verdict": verdict})]
    if cmp and cmp.get("clears_noise"):
        tail = f", and it still improved on the one before beyond noise ({said}): fewer would lose that"
    elif cmp:
        tail = f", and the change it made is within noise ({said}): more epochs are not shown to help"
    elif verdict == "can't tell" and diagnosis.get("looks_like") == "underfitting":  # diagnose.CANT_TELL
        tail = f" ({said}); whether more epochs would help, the numbers can't tell (the diagnosis says why)" if said else ""
    else:
        tail = f" ({said})" if said else ""
    return [Recommendation("epochs", f"Keep {epochs} epochs: the last one has the lowest validation loss{tail}.",
                           number, interval, basis, {}, {"verdict": verdict})]


def _learning_rate(manifest: dict) -> list[Recommendation]:
    diagnosis = manifest.get("diagnosis") or {}
    if diagnosis.get("verdict") != "unusable":
        return []
    cause = diagnosis.get("cause")
    current = (manifest.get("hyperparameters") or {}).get("learning_rate_multiplier")
    if cause in ("diverged", "not_a_number"):
        factor, why = 0.5, "the training loss rose or stopped being a number: the updates are too large"
    elif cause == "flat":
        factor, why = 2.0, "the training loss stayed flat: the model learned nothing"
    else:
        return []
    change = {"learning_rate_multiplier": round(current * factor, 4)} if isinstance(current, (int, float)) else {}
    finding = (diagnosis.get("findings") or [""])[0]
    return [Recommendation("learning_rate", f"{'Halve' if factor < 1 else 'Double'} the learning rate multiplier"
                           + (f" ({current} -> {change['learning_rate_multiplier']})" if change else "")
                           + f": {why}. {finding}", None, None, "the training loss curve", change, {"cause": cause})]


def _prompt(manifest: dict, evaluation: dict | None) -> list[Recommendation]:
    kept = _named(evaluation, kept_name(manifest))
    if not kept:
        return []
    n, u = kept["metrics"]["n"], kept["metrics"]["unparseable"]
    named = n - u
    text = (f"Keep the system prompt as it was in training: the fine-tune learnt the labels from its examples and "
            f"names one in {named} of {n} test answers ({named / n:.0%}, 95% interval {_ci(wilson(named, n), 2)}); "
            f"a different prompt, even one listing the labels, is not what it was trained to answer")
    prompted = _by_kind(evaluation, "prompted")
    if prompted:
        best = max(prompted, key=lambda c: c["metrics"]["macro_f1"])
        bu = best["metrics"]["unparseable"]
        text += (f". Listing the labels does not rescue the base model either: {best['name']} still named no label in "
                 f"{bu} of {n} answers")
    conf = kept["metrics"]["confusion"]
    if u and OUT_OF_SCOPE in conf["labels"]:
        lost = conf["matrix"][conf["labels"].index(OUT_OF_SCOPE)][-1]
        if lost:
            text += f"; {lost} of the fine-tune's {u} answers that name no label are to out-of-scope messages, which the data advice is about"
    return [Recommendation("prompt", text + ".", named / n, wilson(named, n),
                           "share of the kept model's test answers that name a label", {}, {"unparseable": u})]


def advise(manifest: dict, evaluation: dict | None = None) -> Advice:
    """The advice for a run: from the training alone (03: `evaluation` None) or with its
    evaluation (04, 05). At most MAX_RECOMMENDATIONS, in RANK order."""
    manifest = manifest or {}
    recs = (_keep(manifest, evaluation) + (_use(manifest, evaluation) + _data(manifest, evaluation) if evaluation else [])
            + _epochs(manifest) + _learning_rate(manifest) + (_prompt(manifest, evaluation) if evaluation else []))
    recs.sort(key=lambda r: RANK.index(r.kind))
    step = kept_step(manifest)
    epochs, per_epoch = epochs_of(manifest)
    kept = None
    if step is not None and manifest.get("fine_tuned_model"):
        name = kept_name(manifest)
        model = manifest["fine_tuned_model"] if name == "fine-tuned" else next(
            (c.get("model") for c in manifest.get("checkpoints") or [] if c.get("step") == step), None)
        kept = {"name": name, "model": model, "step": step, "epoch": round(step / per_epoch) if per_epoch else None}
    return Advice(recs[:MAX_RECOMMENDATIONS], kept)
