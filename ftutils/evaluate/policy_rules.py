"""The rules the advice (`ftutils.evaluate.policy`) must keep, checked: the tests run
`violations` on every advice the notebooks print, and on advice built to break each rule."""

from __future__ import annotations

from ftutils.evaluate.advice import Advice
from ftutils.evaluate.policy import MAX_RECOMMENDATIONS, epochs_of, finite


def violations(advice: Advice, manifest: dict | None = None, test_items: list | None = None) -> list[str]:
    """Every way `advice` breaks the policy's rules (an empty list: none):

    - at most MAX_RECOMMENDATIONS, each with a number and a finite 95% interval (learning-rate
      advice, read off a curve that diverged or stayed flat, excepted);
    - no recommendation names a test item (its text or its id): test items are never training data;
    - no two recommendations disagree: no parameter set to two values, the epochs advised are
      the kept checkpoint's unless underfitting was confirmed (then more), and fewer epochs only
      with the kept checkpoint before the last;
    - an over- or underfitting verdict only where its comparison cleared its noise, and no
      recommendation says "overfit"/"underfit" otherwise."""
    out = []
    recs = advice.recommendations
    if len(recs) > MAX_RECOMMENDATIONS:
        out.append(f"{len(recs)} recommendations, more than {MAX_RECOMMENDATIONS}")
    for rec in recs:
        if rec.kind != "learning_rate" and (rec.number is None or not finite(rec.interval) or len(rec.interval) != 2):
            out.append(f"{rec.kind}: no number with a finite interval")
    for item in test_items or []:
        text = (getattr(item, "text", None) or (item.get("text") if isinstance(item, dict) else "") or "").strip()
        ident = getattr(item, "id", None) or (item.get("id") if isinstance(item, dict) else None)
        for rec in recs:
            if (len(text) >= 8 and text.casefold() in rec.message.casefold()) or (ident and str(ident) in rec.message):
                out.append(f"{rec.kind}: names test item {ident!r}")
    seen: dict = {}
    for rec in recs:
        for key, value in rec.change.items():
            if key in seen and seen[key] != value:
                out.append(f"{key}: set to {seen[key]!r} and to {value!r}")
            seen.setdefault(key, value)
    manifest = manifest or {}
    diagnosis = manifest.get("diagnosis") or {}
    verdict = diagnosis.get("verdict")
    cmp = diagnosis.get("comparison") or {}
    if verdict in ("overfitting", "underfitting") and not cmp.get("clears_noise"):
        out.append(f"verdict {verdict!r} without a comparison that clears its noise")
    if verdict not in ("overfitting", "underfitting"):
        for rec in recs:
            if any(word in rec.message.casefold() for word in ("overfit", "underfit", "memorised")):
                out.append(f"{rec.kind}: speaks of over/underfitting, but the verdict is {verdict!r}")
    epochs, per_epoch = epochs_of(manifest)
    keep = next((r for r in recs if r.kind == "keep"), None)
    for rec in recs:
        if "n_epochs" not in rec.change or epochs is None:
            continue
        advised = rec.change["n_epochs"]
        if verdict == "underfitting":
            if advised <= epochs:
                out.append(f"underfitting, yet {advised} epochs advised for a run of {epochs}")
        elif keep is not None and keep.evidence.get("epoch") is not None and advised != keep.evidence["epoch"]:
            out.append(f"epochs: {advised} advised, but the kept checkpoint is from epoch {keep.evidence['epoch']}")
        elif advised > epochs:
            out.append(f"more epochs ({advised}) advised without a confirmed underfitting")
    return out
