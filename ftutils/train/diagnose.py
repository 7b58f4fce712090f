"""Read a job's loss curves the way a practitioner would and say, in the reader's own
numbers, whether the model fits: good, overfitting, underfitting, or unusable.

Per-step losses are noisy (one batch each), so curves are smoothed with an exponential
moving average before any judgement; the numbers quoted are the smoothed ones.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ftutils.train.metrics import checkpoint_rows

# Thresholds, all relative so they hold for any loss scale.
FLAT_DROP = 0.03          # training loss fell by less than 3 % over the whole run
DIVERGE_RISE = 0.25       # training loss ended 25 % above where it started
OVERFIT_RISE = 0.08       # validation loss ended 8 % above its minimum...
OVERFIT_MIN_BEFORE = 0.9  # ...which came before the last 10 % of the run
STEEP_TAIL_DROP = 0.10    # training loss still fell 10 % over the last fifth of the run...
STEEP_TAIL_SHARE = 0.10   # ...and that was 10 % of the run's whole improvement (near zero loss,
                          # 0.05 -> 0.03 is a big relative drop but nothing left to learn)
HIGH_FINAL_LOSS = 1.5     # nats per token; a fine-tuned chat model usually ends far below
GAP_RATIO, GAP_ABS = 2.0, 0.3  # validation over twice training, and by more than 0.3


@dataclass
class Diagnosis:
    verdict: str
    """"good" | "overfitting" | "underfitting" | "unusable"."""
    findings: list = field(default_factory=list)
    """What the curves show, in plain words with the run's own numbers."""
    next_steps: list = field(default_factory=list)
    """Concrete changes for the next run."""
    best_checkpoint_step: int | None = None
    """The step of the model to use (a checkpoint's), or None when no checkpoint is known."""

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        lines = [f"Verdict: {self.verdict}"]
        lines += [f"  - {f}" for f in self.findings]
        if self.next_steps:
            lines.append("Next steps:")
            lines += [f"  - {s}" for s in self.next_steps]
        if self.best_checkpoint_step is not None:
            lines.append(f"Best checkpoint: step {self.best_checkpoint_step}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        colour = {"good": "#2e7d32", "overfitting": "#ef6c00", "underfitting": "#1565c0"}.get(self.verdict, "#c62828")
        items = "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
        steps = "".join(f"<li>{html.escape(s)}</li>" for s in self.next_steps)
        best = ("" if self.best_checkpoint_step is None
                else f"<p>Best checkpoint: step {self.best_checkpoint_step}</p>")
        return (f"<div><p><b>Verdict: <span style='color:{colour}'>{html.escape(self.verdict)}</span></b></p>"
                f"<ul>{items}</ul>" + (f"<p><b>Next steps</b></p><ul>{steps}</ul>" if steps else "") + best + "</div>")


def ema(values, span: int | None = None) -> np.ndarray:
    """Exponential moving average over about a tenth of the run (at least 2 points, so a
    short run is not smoothed into lagging far behind its last steps)."""
    series = pd.Series(values, dtype=float)
    span = span or max(2, len(series.dropna()) // 10)
    return series.ewm(span=span, adjust=True, ignore_na=True).mean().to_numpy()


def _best_checkpoint(rows: list[dict], near_step: int | None) -> int | None:
    """The checkpoint with the lowest validation loss; else the one nearest `near_step`."""
    if not rows:
        return near_step
    scored = [r for r in rows if r["valid"] is not None and math.isfinite(float(r["valid"]))]
    if scored:
        return min(scored, key=lambda r: float(r["valid"]))["step"]
    if near_step is None:
        return rows[-1]["step"]
    return min(rows, key=lambda r: abs(r["step"] - near_step))["step"]


def _validation(df: pd.DataFrame):
    """The validation curve to judge: the full-set loss when measured often enough, else the
    per-step sample, smoothed."""
    for column in ("full_valid_loss", "valid_loss"):
        points = df[["step", column]].dropna()
        if len(points) >= 3:
            return column, points["step"].to_numpy(), ema(points[column].to_numpy(), max(2, len(points) // 8))
    return None, np.array([]), np.array([])


def diagnose(metrics_df: pd.DataFrame, checkpoints=None, n_epochs: int | None = None) -> Diagnosis:
    """Judge a run from its metrics (ftutils.train.metrics columns) and, if given, its checkpoints."""
    rows = checkpoint_rows(checkpoints)
    df = metrics_df.sort_values("step") if len(metrics_df) else metrics_df
    if "train_loss" not in df or not len(df) or df["train_loss"].isna().all():
        return Diagnosis("unusable", ["No training loss was reported, so there is nothing to judge yet."],
                         ["Check that the job ran (its status and events) before reading its curves."])

    steps = df["step"].to_numpy()
    raw = df["train_loss"].to_numpy(dtype=float)
    bad = ~np.isfinite(raw)
    if bad.any():
        at = int(steps[bad.argmax()])
        return Diagnosis("unusable",
                         [f"Training loss stopped being a number (NaN or infinite) at step {at}: the run diverged."],
                         ["Lower the learning rate multiplier (try half of this run's) and run again.",
                          "Look for broken examples (empty or huge messages) in the training file."],
                         _best_checkpoint([r for r in rows if r["step"] < at], None))

    train = ema(raw)
    n = len(train)
    first, last = float(train[0]), float(train[-1])
    last_step = int(steps[-1])
    if last > first * (1 + DIVERGE_RISE):
        return Diagnosis("unusable",
                         [f"Training loss rose from {first:.2f} to {last:.2f} by step {last_step}: "
                          "the model got worse at its own training data, which means the updates are too large."],
                         ["Lower the learning rate multiplier (try half of this run's) and run again."],
                         _best_checkpoint(rows, int(steps[0])))
    if n >= 3 and (first - last) < FLAT_DROP * max(first, 1e-9):
        return Diagnosis("unusable",
                         [f"Training loss stayed flat ({first:.2f} at the start, {last:.2f} at step {last_step}): "
                          "the model learned nothing from the data."],
                         ["Raise the learning rate multiplier (try twice this run's) or train for more epochs.",
                          "Check that the assistant messages really depend on the user messages (labels not shuffled)."],
                         None)

    findings, next_steps = [], []
    verdict = "good"
    best = None
    valid_note = None
    column, v_steps, valid = _validation(df)
    if len(valid):
        i_min = int(np.argmin(valid))
        v_min, v_last = float(valid[i_min]), float(valid[-1])
        step_min = int(v_steps[i_min])
        train_at_min = float(np.interp(step_min, steps, train))
        falling_after = last < train_at_min
        if (v_last > v_min * (1 + OVERFIT_RISE) and step_min < OVERFIT_MIN_BEFORE * last_step and falling_after):
            verdict = "overfitting"
            best = _best_checkpoint(rows, step_min)
            findings.append(f"Validation loss was lowest ({v_min:.2f}) at step {step_min} and rose to {v_last:.2f} "
                            f"by step {int(v_steps[-1])} while training loss kept falling ({train_at_min:.2f} to "
                            f"{last:.2f}): the model started memorising the training examples.")
            if best is not None and rows:
                next_steps.append(f"Use the checkpoint at step {best} instead of the final model.")
            if n_epochs:
                fewer = max(1, math.ceil(n_epochs * step_min / max(last_step, 1)))
                if fewer < n_epochs:
                    next_steps.append(f"Train for {fewer} epoch{'s' if fewer > 1 else ''} instead of {n_epochs}.")
            else:
                next_steps.append("Train for fewer epochs.")
            next_steps.append("Get more, or more varied, training examples so there is less to memorise.")
        elif v_last > GAP_RATIO * last and v_last - last > GAP_ABS:
            verdict = "overfitting"
            best = _best_checkpoint(rows, step_min)
            findings.append(f"Validation loss ended at {v_last:.2f}, more than twice the training loss ({last:.2f}): "
                            "the model does much better on examples it has seen than on new ones.")
            next_steps += ["Get more, or more varied, training examples.",
                           "Train for fewer epochs or lower the learning rate multiplier."]
        else:
            valid_note = (f"Validation loss went from {float(valid[0]):.2f} to {v_last:.2f} "
                            f"(lowest {v_min:.2f} at step {step_min}), tracking the training loss.")

    if verdict == "good":
        tail_start = max(0, min(int(n * 0.8), n - 3))  # the last fifth, but at least two steps back
        tail_from = float(train[min(tail_start, n - 1)])
        tail_drop = tail_from - last
        still_falling = (n >= 5 and tail_drop > STEEP_TAIL_DROP * tail_from
                         and tail_drop > STEEP_TAIL_SHARE * max(first - last, 0.0))
        if still_falling or last > HIGH_FINAL_LOSS:
            verdict = "underfitting"
            if still_falling:
                findings.append(f"Training loss was still falling steeply at the end ({tail_from:.2f} at step "
                                f"{int(steps[tail_start])} to {last:.2f} at step {last_step}): the model had more to learn.")
            if last > HIGH_FINAL_LOSS:
                findings.append(f"Training loss ended high, at {last:.2f}.")
            more = f"{n_epochs + max(1, n_epochs // 2)} epochs instead of {n_epochs}" if n_epochs else "more epochs"
            next_steps += [f"Train for {more}.",
                           "Or raise the learning rate multiplier (try 1.5 to 2 times this run's)."]
        else:
            findings.insert(0, f"Training loss fell from {first:.2f} to {last:.2f} and levelled off by step {last_step}.")
    if valid_note:
        findings.append(valid_note)
    if verdict in ("good", "underfitting"):
        best = _best_checkpoint(rows, last_step) if rows else None
        if verdict == "good":
            next_steps.append("Evaluate the fine-tuned model on the held-out test set (04_evaluate).")
    return Diagnosis(verdict, findings, next_steps, best)
