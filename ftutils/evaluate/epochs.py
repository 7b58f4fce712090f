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


def verdict(table: pd.DataFrame) -> str:
    """Whether the test set confirms the epoch the validation loss chose, with the numbers."""
    scored = table.dropna(subset=["valid_loss", "test_macro_f1"])
    if len(scored) < 2:
        return "Fewer than two checkpoints with a validation loss were scored: nothing to compare."
    by_valid = scored.loc[scored["valid_loss"].idxmin()]
    by_test = scored.loc[scored["test_macro_f1"].idxmax()]
    first, last = scored.iloc[0], scored.iloc[-1]
    def at(r):
        return f"epoch {int(r.epoch)} (step {int(r.step)})"
    lines = [f"Validation loss was lowest after {at(by_valid)}: {by_valid.valid_loss:.3f}, test macro F1 "
             f"{by_valid.test_macro_f1:.3f} [{by_valid.test_macro_f1_lo:.3f}, {by_valid.test_macro_f1_hi:.3f}]."]
    if int(by_test.step) == int(by_valid.step):
        lines.append("The test set agrees: no other epoch scored a higher macro F1.")
    else:
        inside = by_valid.test_macro_f1_lo <= by_test.test_macro_f1 <= by_valid.test_macro_f1_hi
        lines.append(f"The test set's best was {at(by_test)} with {by_test.test_macro_f1:.3f}, "
                     + ("inside the chosen epoch's interval: the two are not distinguishable on this test set, "
                        "so the choice stands." if inside else
                        "outside the chosen epoch's interval: on this data the validation loss picked the wrong epoch."))
    if int(first.step) != int(by_valid.step):
        lines.append(f"After epoch 1 the model was still underfit: test macro F1 {first.test_macro_f1:.3f}, "
                     f"validation loss {first.valid_loss:.3f}.")
    if int(last.step) != int(by_valid.step):
        change = "fell" if last.test_macro_f1 < by_valid.test_macro_f1 else "did not fall"
        lines.append(f"By the last epoch ({int(last.epoch)}) validation loss had risen to {last.valid_loss:.3f} "
                     f"(overfitting) and test macro F1 {change}: {last.test_macro_f1:.3f}.")
    return " ".join(lines)
