"""Read a job's loss curves the way a practitioner would and say, in the reader's own
numbers, whether the model fits: good, overfitting, underfitting, or unusable.

Per-step losses are noisy (one batch each), so the training curve is smoothed with an
exponential moving average before any judgement. Validation is read from the whole
validation file's loss at epoch ends when there are three or more (exact, so not smoothed),
else from the per-step one-batch sample, smoothed. Every number quoted says which it is.

A curve's shape only says what a run *looks like*. A mean over a few dozen validation items
moves by chance from epoch to epoch, so an over- or underfitting verdict also needs the
change to clear its own noise: the per-item validation losses of the two epochs compared
(`item_losses`, e.g. from `ftutils.evaluate.validation.epoch_item_losses`), paired by item,
with a bootstrap interval of the mean difference that excludes 0. When it does not, or when
there are no per-item losses to judge by, the verdict is "can't tell", with the numbers.
What to do about a verdict is the advice policy's (`ftutils.evaluate.policy`), not this module's.
"""
from __future__ import annotations

import html
import math
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ftutils.train.epoch_table import best_checkpoint, by_epoch
from ftutils.train.metrics import checkpoint_rows
from ftutils.train.noise import ema, mean_interval, paired_difference

CANT_TELL = "can't tell"
# Thresholds of what a curve looks like, all relative so they hold for any loss scale.
FLAT_DROP = 0.03          # training loss fell by less than 3 % over the whole run
DIVERGE_RISE = 0.25       # training loss ended 25 % above where it started
OVERFIT_RISE = 0.08       # validation loss ended 8 % above its minimum...
OVERFIT_MIN_BEFORE = 0.9  # ...which came before the last 10 % of the run
STEEP_TAIL_DROP = 0.10    # training loss still fell 10 % over the last fifth of the run...
STEEP_TAIL_SHARE = 0.10   # ...and that was 10 % of the run's whole improvement (near zero loss,
                          # 0.05 -> 0.03 is a big relative drop but nothing left to learn)
HIGH_FINAL_LOSS = 1.5     # nats per token; a fine-tuned chat model usually ends far below


@dataclass
class Diagnosis:
    verdict: str
    """"good" | "overfitting" | "underfitting" | "can't tell" | "unusable"."""
    findings: list = field(default_factory=list)
    """What the curves show, in plain words with the run's own numbers."""
    best_checkpoint_step: int | None = None
    """The checkpoint with the lowest validation loss (the one to keep), or None when no checkpoint is known."""
    looks_like: str | None = None
    """What the curves' shape suggests before the noise check ("overfitting", "underfitting"), if anything."""
    cause: str | None = None
    """Why a run is unusable: "no_metrics" | "not_a_number" | "diverged" | "flat"."""
    epochs: list = field(default_factory=list)
    """`by_epoch` as records: each epoch end's validation losses (and per-item means with intervals)."""
    comparison: dict | None = None
    """The paired per-item comparison the verdict rests on: {"what", "from_step", "to_step", "n",
    "mean_from", "mean_to", "diff", "ci", "clears_noise"}; None when there was none to make."""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def confirmed(self) -> bool:
        """An over/underfitting verdict whose change cleared its noise."""
        return self.verdict in ("overfitting", "underfitting")

    def title(self) -> str:
        """A figure's title: the verdict, and what it rests on."""
        if self.verdict == CANT_TELL and self.looks_like:
            if self.comparison is None:
                return f"Looks like {self.looks_like}: more than noise? (needs per-item validation losses)"
            return f"Looks like {self.looks_like}, but within noise: can't tell"
        return f"Diagnosis: {self.verdict}"

    def __str__(self) -> str:
        lines = [f"Verdict: {self.verdict}"]
        lines += [f"  - {f}" for f in self.findings]
        if self.best_checkpoint_step is not None:
            lines.append(f"Lowest validation loss: the checkpoint at step {self.best_checkpoint_step}")
        return "\n".join(lines + [SMOOTHED_NOTE])

    def _repr_html_(self) -> str:
        colour = {"good": "#2e7d32", "overfitting": "#ef6c00", "underfitting": "#1565c0",
                  CANT_TELL: "#555555"}.get(self.verdict, "#c62828")
        items = "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
        best = ("" if self.best_checkpoint_step is None
                else f"<p>Lowest validation loss: the checkpoint at step {self.best_checkpoint_step}</p>")
        return (f"<div><p><b>Verdict: <span style='color:{colour}'>{html.escape(self.verdict)}</span></b></p>"
                f"<ul>{items}</ul>" + best + f"<p><i>{html.escape(SMOOTHED_NOTE)}</i></p></div>")


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
    items: pd.DataFrame | None = None
    """Per-item validation losses (step, id, loss), or None."""

    @classmethod
    def read(cls, metrics_df: pd.DataFrame, checkpoints=None, n_epochs: int | None = None,
             item_losses: pd.DataFrame | None = None) -> "Curves":
        df = metrics_df.sort_values("step") if len(metrics_df) else metrics_df
        rows = checkpoint_rows(checkpoints)
        items = item_losses if item_losses is not None and len(item_losses) else None
        if "train_loss" not in df or not len(df):
            return cls(np.array([]), np.array([]), rows, n_epochs, np.array([]), np.array([]), True, items)
        return cls(df["step"].to_numpy(), df["train_loss"].to_numpy(dtype=float), rows, n_epochs, *_validation(df),
                   items=items)

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
        return best_checkpoint(self.rows, self.last_step) if self.rows else None


def _items_at(c: Curves, step: int) -> pd.Series | None:
    if c.items is None:
        return None
    at = c.items[c.items["step"] == step]
    return at.set_index("id")["loss"] if len(at) else None


def compare_epochs(c: Curves, from_step: int, to_step: int, what: str, rises: bool) -> dict | None:
    """The per-item validation losses at two steps, paired; `clears_noise` when the interval of
    the mean change excludes 0 on the side `rises` names. None without per-item losses there."""
    a, b = _items_at(c, from_step), _items_at(c, to_step)
    if a is None or b is None:
        return None
    out = {"what": what, "from_step": int(from_step), "to_step": int(to_step), **paired_difference(a, b)}
    lo, hi = out["ci"]
    out["clears_noise"] = bool(out["n"]) and (lo > 0 if rises else hi < 0)
    return out


def _said(cmp: dict) -> str:
    lo, hi = cmp["ci"]
    return (f"per item, paired on the same {cmp['n']} validation items, the answer loss went from "
            f"{cmp['mean_from']:.3f} (step {cmp['from_step']}) to {cmp['mean_to']:.3f} (step {cmp['to_step']}): "
            f"{cmp['diff']:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}]")


def unusable(c: Curves) -> Diagnosis | None:
    """No training loss, one that stopped being a number, rose, or stayed flat."""
    if not len(c.raw) or np.isnan(c.raw).all():
        return Diagnosis("unusable", ["No training loss was reported, so there is nothing to judge yet."],
                         cause="no_metrics")
    bad = ~np.isfinite(c.raw)
    if bad.any():
        at = int(c.steps[bad.argmax()])
        return Diagnosis("unusable",
                         [f"Training loss stopped being a number (NaN or infinite) at step {at}: the run diverged."],
                         best_checkpoint([r for r in c.rows if r["step"] < at], None), cause="not_a_number")
    first, last = c.first, c.last
    if last > first * (1 + DIVERGE_RISE):
        return Diagnosis("unusable",
                         [f"The smoothed training loss rose from {first:.2f} to {last:.2f} by step {c.last_step}: "
                          "the model got worse at its own training data, which means the updates are too large."],
                         best_checkpoint(c.rows, int(c.steps[0])), cause="diverged")
    if c.n >= 3 and (first - last) < FLAT_DROP * max(first, 1e-9):
        return Diagnosis("unusable",
                         [f"The smoothed training loss stayed flat ({first:.2f} at the start, {last:.2f} at step {c.last_step}): "
                          "the model learned nothing from the data."], None, cause="flat")
    return None


def overfitting(c: Curves) -> Diagnosis | None:
    """Validation loss rose from an earlier minimum while training loss kept falling, and the
    rise clears its noise; "can't tell" when the curve looks so (a rise of OVERFIT_RISE or more)
    but the rise does not clear it. A smaller rise that clears the noise of the items is
    overfitting too: the noise check, not the threshold, decides when there are items to judge by."""
    if not len(c.valid):
        return None
    v_min, v_last, step_min, last = c.v_min, c.v_last, c.step_min, c.last
    train_at_min = float(np.interp(step_min, c.steps, c.train))
    if not (v_last > v_min and step_min < OVERFIT_MIN_BEFORE * c.last_step and last < train_at_min):
        return None
    looks = v_last > v_min * (1 + OVERFIT_RISE)
    best = best_checkpoint(c.rows, step_min)
    last_valid_step = int(c.valid_steps[-1])
    shape = (f"The {c.valid_name} was lowest ({v_min:.3f}) at step {step_min} and {v_last:.3f} by step "
             f"{last_valid_step}, while the smoothed training loss kept falling ({train_at_min:.3f} to {last:.3f}).")
    # Per-item losses are measured at checkpoints: the kept one (lowest validation loss) against the last.
    last_step = c.rows[-1]["step"] if c.rows else last_valid_step
    cmp = compare_epochs(c, best if best is not None else step_min, last_step, "validation loss, lowest epoch to last",
                         rises=True)
    if not looks and not (cmp and cmp["clears_noise"]):
        return None  # a small rise, within noise or unchecked: good() reports it, with its comparison
    if cmp is None:
        return Diagnosis(CANT_TELL, [shape, "That is what overfitting looks like, but a mean over the validation file "
                                     "moves by chance too, and there are no per-item validation losses here to tell "
                                     "a real rise from noise."], best, "overfitting")
    if cmp["clears_noise"]:
        return Diagnosis("overfitting", [shape, f"The rise is more than noise: {_said(cmp)}, above 0. The model started "
                                         "memorising its training examples."], best, "overfitting", comparison=cmp)
    return Diagnosis(CANT_TELL, [shape, f"The rise is within noise: {_said(cmp)}, which includes 0. These items cannot "
                                 "tell whether the later epochs memorised or not."], best, "overfitting", comparison=cmp)


def _tail_fall(c: Curves) -> tuple[int, float, dict | None]:
    """(tail start, smoothed loss there, the raw per-batch losses of the tail's second half
    against its first half: whether they fell beyond their batch-to-batch spread)."""
    n = c.n
    tail_start = max(0, min(int(n * 0.8), n - 3))  # the last fifth, but at least two steps back
    raw = c.raw[tail_start:]
    half = len(raw) // 2
    if half < 2:
        return tail_start, float(c.train[min(tail_start, n - 1)]), None
    # Paired by position in the tail: batch i of the first half against batch i of the second.
    cmp = paired_difference(pd.Series(raw[:half]), pd.Series(raw[half:2 * half]))
    cmp.update(what="training loss, first half of the last fifth to its second half",
               from_step=int(c.steps[tail_start]), to_step=int(c.steps[-1]), clears_noise=cmp["ci"][1] < 0)
    return tail_start, float(c.train[min(tail_start, n - 1)]), cmp


def underfitting(c: Curves) -> Diagnosis | None:
    """Training loss still falling steeply at the end (beyond its batch-to-batch noise), or
    ending high; with per-item validation losses, the last epoch must also have improved on
    the one before beyond noise, or the verdict is "can't tell"."""
    n, last = c.n, c.last
    tail_start, tail_from, tail = _tail_fall(c)
    falls = bool(tail and tail["clears_noise"])
    tail_drop = tail_from - last
    still_falling = (n >= 5 and tail_drop > STEEP_TAIL_DROP * tail_from
                     and tail_drop > STEEP_TAIL_SHARE * max(c.first - last, 0.0))
    if not (still_falling or last > HIGH_FINAL_LOSS):
        return None
    findings = []
    if still_falling:
        findings.append(f"The smoothed training loss was still falling steeply at the end ({tail_from:.2f} at step "
                        f"{int(c.steps[tail_start])} to {last:.2f} at step {c.last_step})"
                        + (", more than its batch-to-batch noise." if falls else
                           ", but no more than its batch-to-batch noise."))
    if last > HIGH_FINAL_LOSS:
        findings.append(f"The smoothed training loss ended high, at {last:.2f}.")
    findings += c.tracking_note()
    cmp = None
    if len(c.valid_steps) >= 2 and not c.valid_smoothed:
        cmp = compare_epochs(c, int(c.valid_steps[-2]), int(c.valid_steps[-1]), "validation loss, last two epochs",
                             rises=False)
    train_says = falls or last > HIGH_FINAL_LOSS
    if cmp is not None:
        findings.append(("The last epoch still improved on validation beyond noise: " if cmp["clears_noise"] else
                         "On validation the last epoch's change is within noise: ") + _said(cmp) + ".")
        confirmed = train_says and cmp["clears_noise"]
    else:
        confirmed = train_says and c.items is None and not len(c.valid)  # training loss is all there is to go by
        cmp = tail if confirmed and falls else cmp
        if confirmed and not falls:  # ended high, beyond the noise of its last steps' mean
            lo = mean_interval(c.raw[tail_start:])[0]
            confirmed = lo > HIGH_FINAL_LOSS
            cmp = {"what": "training loss, last fifth's mean", "n": int(len(c.raw[tail_start:])),
                   "diff": float(np.mean(c.raw[tail_start:])), "ci": mean_interval(c.raw[tail_start:]),
                   "from_step": int(c.steps[tail_start]), "to_step": int(c.steps[-1]), "clears_noise": confirmed,
                   "mean_from": math.nan, "mean_to": math.nan}
    if confirmed:
        findings.append("The model had more to learn.")
        return Diagnosis("underfitting", findings, c.final_checkpoint(), "underfitting", comparison=cmp)
    findings.append("That is what underfitting looks like, but the numbers do not clear their noise: can't tell "
                    "whether more epochs would help.")
    return Diagnosis(CANT_TELL, findings, c.final_checkpoint(), "underfitting", comparison=cmp)


def good(c: Curves) -> Diagnosis:
    """What is left: training loss fell and levelled off, validation (if any) tracking it. With
    per-item validation losses, the comparison the next run's epochs rest on: the kept checkpoint
    (lowest validation loss) against the last, or, when the last is the kept one, the epoch before
    against the last (did the last epoch still help?)."""
    best = c.final_checkpoint()
    findings = [f"The smoothed training loss fell from {c.first:.2f} to {c.last:.2f} and levelled off by step "
                f"{c.last_step}.", *c.tracking_note()]
    cmp = None
    if best is not None and c.rows:
        last = int(c.rows[-1]["step"])
        if best != last:
            cmp = compare_epochs(c, best, last, "validation loss, lowest epoch to last", rises=True)
            if cmp is not None:
                lo, hi = cmp["ci"]
                findings.append(f"The later epochs against the one with the lowest validation loss: {_said(cmp)}, "
                                + ("which includes 0: within noise." if lo <= 0 <= hi else
                                   "below 0: per item the later epochs did better, though the whole file's loss "
                                   "was lowest earlier." if hi < 0 else "above 0."))
        elif len(c.rows) > 1:
            cmp = compare_epochs(c, int(c.rows[-2]["step"]), last, "validation loss, last two epochs", rises=False)
            if cmp is not None:
                findings.append(("The last epoch still improved on the one before beyond noise: " if cmp["clears_noise"]
                                 else "The last epoch's change on the one before is within noise: ") + _said(cmp) + ".")
    return Diagnosis("good", findings, best, comparison=cmp)


# In the order they are ruled out: the first that applies is the verdict.
VERDICTS = (unusable, overfitting, underfitting, good)


def diagnose(metrics_df: pd.DataFrame, checkpoints=None, n_epochs: int | None = None,
             item_losses: pd.DataFrame | None = None) -> Diagnosis:
    """Judge a run from its metrics (ftutils.train.metrics columns), its checkpoints and, when
    given, per-item validation losses at checkpoint steps (columns step, id, loss)."""
    curves = Curves.read(metrics_df, checkpoints, n_epochs, item_losses)
    diagnosis = next(d for d in (verdict(curves) for verdict in VERDICTS) if d is not None)
    diagnosis.epochs = [{k: (int(v) if k in ("epoch", "step") else None if v is None or math.isnan(float(v)) else float(v))
                         for k, v in row.items()} for row in by_epoch(metrics_df, item_losses).to_dict("records")]
    return diagnosis


SMOOTHED_NOTE = ("Training losses quoted above are smoothed (an exponential moving average of the per-step values, "
                 "which are noisy); each validation loss says what it was measured on, and `by_epoch` gives the whole "
                 "validation file's loss at every epoch end.")
