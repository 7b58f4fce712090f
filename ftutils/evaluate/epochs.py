"""Did the validation loss pick the right epoch? Each epoch's checkpoint scored on the test
set beside the validation loss it had when training chose it (03_train's diagnosis).

The validation loss is what you may choose by; the test set only confirms or refutes that
choice afterwards (choosing by test scores would make them optimistic).
"""
from __future__ import annotations

import pandas as pd


def valid_loss_by_step(manifest: dict) -> dict[int, float]:
    """{step: validation loss on the whole file} of the run's checkpoints (run.json)."""
    out = {}
    for c in manifest.get("checkpoints") or []:
        metrics = c.get("metrics") or {}
        loss = metrics.get("full_valid_loss", metrics.get("valid_loss"))
        step = c.get("step", c.get("step_number"))
        if step is not None and loss is not None:
            out[int(step)] = float(loss)
    return out


def epoch_table(evaluation) -> pd.DataFrame:
    """One row per scored checkpoint (the final model included), oldest first: epoch, step,
    candidate, validation loss, test macro F1 (with its interval) and accuracy."""
    frame = evaluation.checkpoints()
    valid = valid_loss_by_step(evaluation.manifest)
    steps = sorted(valid) or sorted(frame["step"].astype(int))
    rows = []
    for row in frame.itertuples():
        step = int(row.step)
        rows.append({"epoch": steps.index(step) + 1 if step in steps else None, "step": step,
                     "candidate": row.candidate, "valid_loss": valid.get(step), "test_macro_f1": row.macro_f1,
                     "test_macro_f1_lo": row.macro_f1_lo, "test_macro_f1_hi": row.macro_f1_hi,
                     "test_accuracy": row.accuracy})
    return pd.DataFrame(rows, columns=["epoch", "step", "candidate", "valid_loss", "test_macro_f1", "test_macro_f1_lo",
                                       "test_macro_f1_hi", "test_accuracy"])


def verdict(table: pd.DataFrame, evaluation=None) -> str:
    """What the test set says of the epoch kept by validation (the lowest validation loss), with
    the numbers, and no more: a difference between two epochs counts only as the paired test
    between them says (`evaluation.paired`, the kept checkpoint against the final model)."""
    from ftutils.evaluate.policy import significant

    scored = table.dropna(subset=["valid_loss", "test_macro_f1"])
    if len(scored) < 2:
        return "Fewer than two checkpoints with a validation loss were scored: nothing to compare."
    kept = scored.loc[scored["valid_loss"].idxmin()]
    by_test = scored.loc[scored["test_macro_f1"].idxmax()]
    first, last = scored.iloc[0], scored.iloc[-1]

    def at(r):
        return f"epoch {int(r.epoch)} (step {int(r.step)})"

    def ci(r):
        return f"[{r.test_macro_f1_lo:.3f}, {r.test_macro_f1_hi:.3f}]"

    lines = [f"Validation keeps {at(kept)}, the lowest validation loss ({kept.valid_loss:.3f}); on the test set it "
             f"scores macro F1 {kept.test_macro_f1:.3f} {ci(kept)}."]
    if int(by_test.step) == int(kept.step):
        lines.append("No other epoch scored higher on the test set.")
    else:
        pair = None
        if evaluation is not None and int(by_test.step) == int(last.step):
            pair = next((p for p in evaluation.paired if p["a"] == "fine-tuned" and p["b"] == kept.candidate), None)
        if pair is not None:
            m, b = pair["mcnemar"], pair["bootstrap"]
            lo, hi = b["macro_f1_diff_ci"]
            tells = "tells them apart" if significant(pair) else "cannot tell them apart"
            lines.append(f"The highest test score is {at(by_test)}'s, {by_test.test_macro_f1:.3f}; paired on the same "
                         f"items the test set {tells} (McNemar p={m['p_value']:.2g}, kept minus final "
                         f"{b['macro_f1_diff']:+.3f} [{lo:+.3f}, {hi:+.3f}]).")
        else:
            inside = kept.test_macro_f1_lo <= by_test.test_macro_f1 <= kept.test_macro_f1_hi
            lines.append(f"The highest test score is {at(by_test)}'s, {by_test.test_macro_f1:.3f}, "
                         + ("inside the kept epoch's interval." if inside else "outside the kept epoch's interval."))
        lines.append("Either way the choice stays with validation: picking the epoch by its test score would make that "
                     "score optimistic, and the test set is what is left to measure it.")
    if int(first.step) != int(kept.step):
        below = first.test_macro_f1_hi < kept.test_macro_f1_lo
        lines.append(f"After epoch 1 the test macro F1 was {first.test_macro_f1:.3f} {ci(first)}"
                     + (", its whole interval below the kept epoch's: one epoch was not enough." if below else "."))
    return " ".join(lines)
