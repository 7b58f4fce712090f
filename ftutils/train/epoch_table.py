"""The epochs of a run: the per-epoch table (the whole validation file's loss at each epoch
end, exact, not smoothed; the smoothed training loss there; with per-item validation losses,
their mean with its interval), the sentence that names the lowest epoch, the checkpoint with
the lowest validation loss, and the checkpoints a verdict compares (`steps_to_compare`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ftutils.train.metrics import checkpoint_rows
from ftutils.train.noise import ema, mean_interval


def by_epoch(metrics_df: pd.DataFrame, item_losses: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per epoch end: the step, the validation loss measured on the whole validation
    file there (not smoothed), the smoothed training loss at that step and, with per-item
    validation losses, their mean with its 95% interval (`item_loss`, `_lo`, `_hi`)."""
    columns = ["epoch", "step", "full_valid_loss", "train_loss_smoothed"]
    if item_losses is not None and len(item_losses):
        columns += ["item_loss", "item_loss_lo", "item_loss_hi"]
    if "full_valid_loss" not in metrics_df or not len(metrics_df):
        return pd.DataFrame(columns=columns)
    df = metrics_df.sort_values("step").reset_index(drop=True)
    smoothed = ema(df["train_loss"].to_numpy(dtype=float)) if "train_loss" in df else np.full(len(df), np.nan)
    ends = df.index[df["full_valid_loss"].notna()]
    table = pd.DataFrame({"epoch": range(1, len(ends) + 1), "step": df.loc[ends, "step"].astype(int).to_numpy(),
                          "full_valid_loss": df.loc[ends, "full_valid_loss"].to_numpy(dtype=float),
                          "train_loss_smoothed": smoothed[ends]})
    if "item_loss" in columns:
        per_step = {int(k): g["loss"].to_numpy(dtype=float) for k, g in item_losses.groupby("step")}
        stats = [(float(np.mean(per_step[s])), *mean_interval(per_step[s])) if s in per_step else (math.nan,) * 3
                 for s in table["step"]]
        table["item_loss"], table["item_loss_lo"], table["item_loss_hi"] = zip(*stats) if stats else ([], [], [])
    return table[columns]


def lowest_epoch(table: pd.DataFrame) -> str:
    """Which epoch had the lowest validation loss, in a sentence with the numbers."""
    if not len(table):
        return "No validation loss was measured at an epoch end (no validation file?)."
    best = table.loc[table["full_valid_loss"].idxmin()]
    first, last = table.iloc[0], table.iloc[-1]
    text = (f"Validation loss (whole validation file, not smoothed) was lowest after epoch {int(best.epoch)} "
            f"(step {int(best.step)}): {best.full_valid_loss:.3f}, from {first.full_valid_loss:.3f} after epoch 1")
    if int(best.epoch) < int(last.epoch):
        return text + (f"; it was {last.full_valid_loss:.3f} after epoch {int(last.epoch)}, while the "
                       f"smoothed training loss fell from {best.train_loss_smoothed:.3f} to "
                       f"{last.train_loss_smoothed:.3f}. Whether that change is more than noise is the diagnosis's question.")
    return text + ", and it was still falling at the end."


def best_checkpoint(rows: list[dict], near_step: int | None) -> int | None:
    """The checkpoint with the lowest validation loss; else the one nearest `near_step`."""
    if not rows:
        return near_step
    scored = [r for r in rows if r["valid"] is not None and math.isfinite(float(r["valid"]))]
    if scored:
        return min(scored, key=lambda r: float(r["valid"]))["step"]
    if near_step is None:
        return rows[-1]["step"]
    return min(rows, key=lambda r: abs(r["step"] - near_step))["step"]


def steps_to_compare(checkpoints) -> list[int]:
    """The checkpoint steps whose per-item validation losses a verdict can rest on: the lowest
    validation loss (the one to keep) and the last, and the one before the last when those are
    the same (is it still improving?). Scoring only these keeps the check cheap."""
    rows = checkpoint_rows(checkpoints)
    if not rows:
        return []
    best, last = best_checkpoint(rows, None), rows[-1]["step"]
    steps = {best, last}
    if best == last and len(rows) > 1:
        steps.add(rows[-2]["step"])
    return sorted(int(s) for s in steps if s is not None)
