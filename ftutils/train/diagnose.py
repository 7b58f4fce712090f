"""Read a job's loss curves the way a practitioner would and say, in the reader's own
numbers, whether the model fits: good, overfitting, underfitting, or unusable.

Per-step losses are noisy (one batch each), so the training curve is smoothed with an
exponential moving average before any judgement. Validation is read from the whole
validation file's loss at epoch ends when there are three or more (exact, so not smoothed),
else from the per-step one-batch sample, smoothed. Every number quoted says which it is.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

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
        return "\n".join(lines + [SMOOTHED_NOTE])

    def _repr_html_(self) -> str:
        colour = {"good": "#2e7d32", "overfitting": "#ef6c00", "underfitting": "#1565c0"}.get(self.verdict, "#c62828")
        items = "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
        steps = "".join(f"<li>{html.escape(s)}</li>" for s in self.next_steps)
        best = ("" if self.best_checkpoint_step is None
                else f"<p>Best checkpoint: step {self.best_checkpoint_step}</p>")
        return (f"<div><p><b>Verdict: <span style='color:{colour}'>{html.escape(self.verdict)}</span></b></p>"
                f"<ul>{items}</ul>" + (f"<p><b>Next steps</b></p><ul>{steps}</ul>" if steps else "") + best
                + f"<p><i>{html.escape(SMOOTHED_NOTE)}</i></p></div>")


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
    """The validation curve to judge: the loss on the whole validation file (measured at
    epoch ends; exact, so read as measured) when there are 3 or more such points, else the
    per-step sample of one batch, smoothed."""
    points = df[["step", "full_valid_loss"]].dropna() if "full_valid_loss" in df else ()
    if len(points) >= 3:
        return points["step"].to_numpy(), points["full_valid_loss"].to_numpy(dtype=float), False
    if "valid_loss" in df:
        points = df[["step", "valid_loss"]].dropna()
        if len(points) >= 3:
            return points["step"].to_numpy(), ema(points["valid_loss"].to_numpy(), max(2, len(points) // 8)), True
    return np.array([]), np.array([]), True


@dataclass
class Curves:
    """A run as the verdicts read it. The smoothed values are computed on first use, once
    `unusable` has ruled out a run with no (or no finite) training loss."""

    steps: np.ndarray
    raw: np.ndarray
    """Training loss as reported, one value a step."""
    rows: list
    """Checkpoints as `metrics.checkpoint_rows` gives them: [{"step", "valid"}] by step."""
    n_epochs: int | None
    valid_steps: np.ndarray
    valid: np.ndarray
    """Validation loss, as `_validation` reads it (empty when measured fewer than 3 times)."""
    valid_smoothed: bool = True
    """False when `valid` is the whole-file loss at epoch ends, as measured."""

    @classmethod
    def read(cls, metrics_df: pd.DataFrame, checkpoints=None, n_epochs: int | None = None) -> "Curves":
        df = metrics_df.sort_values("step") if len(metrics_df) else metrics_df
        rows = checkpoint_rows(checkpoints)
        if "train_loss" not in df or not len(df):
            return cls(np.array([]), np.array([]), rows, n_epochs, np.array([]), np.array([]), True)
        return cls(df["step"].to_numpy(), df["train_loss"].to_numpy(dtype=float), rows, n_epochs, *_validation(df))

    @cached_property
    def train(self) -> np.ndarray:
        return ema(self.raw)

    @property
    def n(self) -> int:
        return len(self.train)

    @property
    def first(self) -> float:
        return float(self.train[0])

    @property
    def last(self) -> float:
        return float(self.train[-1])

    @property
    def last_step(self) -> int:
        return int(self.steps[-1])

    # The validation minimum (only when `valid` is not empty).
    @property
    def i_min(self) -> int:
        return int(np.argmin(self.valid))

    @property
    def v_min(self) -> float:
        return float(self.valid[self.i_min])

    @property
    def v_last(self) -> float:
        return float(self.valid[-1])

    @property
    def step_min(self) -> int:
        return int(self.valid_steps[self.i_min])

    @property
    def valid_name(self) -> str:
        return ("validation loss (smoothed)" if self.valid_smoothed
                else "validation loss (whole validation file, at epoch ends)")

    def tracking_note(self) -> list[str]:
        """What a validation curve that did not overfit says, when there is one."""
        if not len(self.valid):
            return []
        return [f"The {self.valid_name} went from {float(self.valid[0]):.3f} to {self.v_last:.3f} "
                f"(lowest {self.v_min:.3f} at step {self.step_min}), tracking the training loss."]

    def final_checkpoint(self) -> int | None:
        return _best_checkpoint(self.rows, self.last_step) if self.rows else None


def unusable(c: Curves) -> Diagnosis | None:
    """No training loss, one that stopped being a number, rose, or stayed flat."""
    if not len(c.raw) or np.isnan(c.raw).all():
        return Diagnosis("unusable", ["No training loss was reported, so there is nothing to judge yet."],
                         ["Check that the job ran (its status and events) before reading its curves."])
    bad = ~np.isfinite(c.raw)
    if bad.any():
        at = int(c.steps[bad.argmax()])
        return Diagnosis("unusable",
                         [f"Training loss stopped being a number (NaN or infinite) at step {at}: the run diverged."],
                         ["Lower the learning rate multiplier (try half of this run's) and run again.",
                          "Look for broken examples (empty or huge messages) in the training file."],
                         _best_checkpoint([r for r in c.rows if r["step"] < at], None))
    first, last = c.first, c.last
    if last > first * (1 + DIVERGE_RISE):
        return Diagnosis("unusable",
                         [f"The smoothed training loss rose from {first:.2f} to {last:.2f} by step {c.last_step}: "
                          "the model got worse at its own training data, which means the updates are too large."],
                         ["Lower the learning rate multiplier (try half of this run's) and run again."],
                         _best_checkpoint(c.rows, int(c.steps[0])))
    if c.n >= 3 and (first - last) < FLAT_DROP * max(first, 1e-9):
        return Diagnosis("unusable",
                         [f"The smoothed training loss stayed flat ({first:.2f} at the start, {last:.2f} at step {c.last_step}): "
                          "the model learned nothing from the data."],
                         ["Raise the learning rate multiplier (try twice this run's) or train for more epochs.",
                          "Check that the assistant messages really depend on the user messages (labels not shuffled)."],
                         None)
    return None


def overfitting(c: Curves) -> Diagnosis | None:
    """Validation loss rose from an early minimum while training loss kept falling, or ended
    far above it."""
    if not len(c.valid):
        return None
    v_min, v_last, step_min, last = c.v_min, c.v_last, c.step_min, c.last
    train_at_min = float(np.interp(step_min, c.steps, c.train))
    if v_last > v_min * (1 + OVERFIT_RISE) and step_min < OVERFIT_MIN_BEFORE * c.last_step and last < train_at_min:
        best = _best_checkpoint(c.rows, step_min)
        next_steps = []
        if best is not None and c.rows:
            next_steps.append(f"Use the checkpoint at step {best} instead of the final model.")
        if c.n_epochs:
            fewer = max(1, math.ceil(c.n_epochs * step_min / max(c.last_step, 1)))
            if fewer < c.n_epochs:
                next_steps.append(f"Train for {fewer} epoch{'s' if fewer > 1 else ''} instead of {c.n_epochs}.")
        else:
            next_steps.append("Train for fewer epochs.")
        next_steps.append("Get more, or more varied, training examples so there is less to memorise.")
        return Diagnosis("overfitting",
                         [f"The {c.valid_name} was lowest ({v_min:.3f}) at step {step_min} and rose to "
                          f"{v_last:.3f} by step {int(c.valid_steps[-1])} while the smoothed training loss kept "
                          f"falling ({train_at_min:.3f} to {last:.3f}): the model started memorising the training "
                          "examples."],
                         next_steps, best)
    if v_last > GAP_RATIO * last and v_last - last > GAP_ABS:
        return Diagnosis("overfitting",
                         [f"The {c.valid_name} ended at {v_last:.2f}, more than twice the smoothed training loss "
                          f"({last:.2f}): "
                          "the model does much better on examples it has seen than on new ones."],
                         ["Get more, or more varied, training examples.",
                          "Train for fewer epochs or lower the learning rate multiplier."],
                         _best_checkpoint(c.rows, step_min))
    return None


def underfitting(c: Curves) -> Diagnosis | None:
    """Training loss still falling steeply at the end, or ending high."""
    n, last = c.n, c.last
    tail_start = max(0, min(int(n * 0.8), n - 3))  # the last fifth, but at least two steps back
    tail_from = float(c.train[min(tail_start, n - 1)])
    tail_drop = tail_from - last
    still_falling = (n >= 5 and tail_drop > STEEP_TAIL_DROP * tail_from
                     and tail_drop > STEEP_TAIL_SHARE * max(c.first - last, 0.0))
    if not (still_falling or last > HIGH_FINAL_LOSS):
        return None
    findings = []
    if still_falling:
        findings.append(f"The smoothed training loss was still falling steeply at the end ({tail_from:.2f} at step "
                        f"{int(c.steps[tail_start])} to {last:.2f} at step {c.last_step}): the model had more to learn.")
    if last > HIGH_FINAL_LOSS:
        findings.append(f"The smoothed training loss ended high, at {last:.2f}.")
    more = f"{c.n_epochs + max(1, c.n_epochs // 2)} epochs instead of {c.n_epochs}" if c.n_epochs else "more epochs"
    return Diagnosis("underfitting", findings + c.tracking_note(),
                     [f"Train for {more}.", "Or raise the learning rate multiplier (try 1.5 to 2 times this run's)."],
                     c.final_checkpoint())


def good(c: Curves) -> Diagnosis:
    """What is left: training loss fell and levelled off, validation (if any) tracking it."""
    return Diagnosis("good",
                     [f"The smoothed training loss fell from {c.first:.2f} to {c.last:.2f} and levelled off by step {c.last_step}.",
                      *c.tracking_note()],
                     ["Evaluate the fine-tuned model on the held-out test set (04_evaluate)."],
                     c.final_checkpoint())


# In the order they are ruled out: the first that applies is the verdict.
VERDICTS = (unusable, overfitting, underfitting, good)


def diagnose(metrics_df: pd.DataFrame, checkpoints=None, n_epochs: int | None = None) -> Diagnosis:
    """Judge a run from its metrics (ftutils.train.metrics columns) and, if given, its checkpoints."""
    curves = Curves.read(metrics_df, checkpoints, n_epochs)
    return next(d for d in (verdict(curves) for verdict in VERDICTS) if d is not None)


SMOOTHED_NOTE = ("Training losses quoted above are smoothed (an exponential moving average of the per-step values, "
                 "which are noisy); each validation loss says what it was measured on, and `by_epoch` gives the whole "
                 "validation file's loss at every epoch end.")


def by_epoch(metrics_df: pd.DataFrame) -> pd.DataFrame:
    """One row per epoch end: the step, the validation loss measured on the whole validation
    file there (not smoothed), and the smoothed training loss at that step."""
    columns = ["epoch", "step", "full_valid_loss", "train_loss_smoothed"]
    if "full_valid_loss" not in metrics_df or not len(metrics_df):
        return pd.DataFrame(columns=columns)
    df = metrics_df.sort_values("step").reset_index(drop=True)
    smoothed = ema(df["train_loss"].to_numpy(dtype=float)) if "train_loss" in df else np.full(len(df), np.nan)
    ends = df.index[df["full_valid_loss"].notna()]
    return pd.DataFrame({"epoch": range(1, len(ends) + 1), "step": df.loc[ends, "step"].astype(int).to_numpy(),
                         "full_valid_loss": df.loc[ends, "full_valid_loss"].to_numpy(dtype=float),
                         "train_loss_smoothed": smoothed[ends]}, columns=columns)


def lowest_epoch(table: pd.DataFrame) -> str:
    """Which epoch had the lowest validation loss, in a sentence with the numbers."""
    if not len(table):
        return "No validation loss was measured at an epoch end (no validation file?)."
    best = table.loc[table["full_valid_loss"].idxmin()]
    first, last = table.iloc[0], table.iloc[-1]
    text = (f"Validation loss (whole validation file, not smoothed) was lowest after epoch {int(best.epoch)} "
            f"(step {int(best.step)}): {best.full_valid_loss:.3f}, from {first.full_valid_loss:.3f} after epoch 1")
    if int(best.epoch) < int(last.epoch):
        return text + (f"; it then rose to {last.full_valid_loss:.3f} after epoch {int(last.epoch)} while the "
                       f"smoothed training loss fell from {best.train_loss_smoothed:.3f} to "
                       f"{last.train_loss_smoothed:.3f}: the epochs after {int(best.epoch)} memorised.")
    return text + ", and it was still falling at the end: more epochs might help."
