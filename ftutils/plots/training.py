"""Loss and token-accuracy curves of a fine-tuning job (03_train, the job monitor).

Figures are built with `matplotlib.figure.Figure`, not pyplot: the job monitor draws from a
background thread, and pyplot's global state is not thread-safe. Show one in a notebook
with `ftutils.plots.as_image(fig)`, which renders whatever the kernel's backend.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ftutils.train.metrics import checkpoint_rows

TRAIN, VALID, FULL = "#1f77b4", "#ff7f0e", "#d62728"


def _smooth(values: pd.Series) -> np.ndarray:
    from ftutils.train.noise import ema  # the same smoothing the diagnosis judges by

    return ema(values.to_numpy(dtype=float))


LOG_SCALE_SPAN = 20  # losses spanning more than this factor are drawn on a log axis


def loss_curves(metrics_df: pd.DataFrame, checkpoints=None, diagnosis=None) -> Figure:
    """Training and validation loss (left) and token accuracy (right) by step.

    Raw per-step training values are drawn faintly with their moving average on top;
    checkpoints are dashed verticals, the lowest validation loss a star, and a diagnosis,
    when given, titles the figure and highlights its best checkpoint."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    df = metrics_df.sort_values("step") if len(metrics_df) else metrics_df
    if not len(df):
        for ax in (ax_loss, ax_acc):
            ax.text(0.5, 0.5, "no metrics yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    else:
        _plot_losses(ax_loss, df)
        _plot_accuracies(ax_acc, df)
    best_step = getattr(diagnosis, "best_checkpoint_step", None)
    for i, step in enumerate(r["step"] for r in checkpoint_rows(checkpoints)):
        highlight = step == best_step
        for ax in (ax_loss, ax_acc):
            ax.axvline(step, color="green" if highlight else "grey", linestyle="--",
                       linewidth=1.5 if highlight else 0.8, alpha=0.8,
                       label=("best checkpoint" if highlight else ("checkpoints" if i == 0 else None)) if ax is ax_loss else None)
    ax_loss.set(xlabel="step", ylabel="loss (nats per token)", title="Loss")
    losses = pd.concat([pd.to_numeric(df[c], errors="coerce") for c in ("train_loss", "valid_loss", "full_valid_loss")
                        if c in df]) if len(df) else pd.Series(dtype=float)
    losses = losses[losses > 0]
    if len(losses) and losses.max() > LOG_SCALE_SPAN * losses.min():
        # From 5 nats down to 0.01 a linear axis flattens the end of the run, where a
        # validation loss turning up (overfitting) happens; a log axis keeps it visible.
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("loss (nats per token, log scale)")
    ax_acc.set(xlabel="step", ylabel="mean token accuracy", title="Token accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if diagnosis is not None:
        fig.suptitle(diagnosis.title() if hasattr(diagnosis, "title") else f"Diagnosis: {diagnosis.verdict}")
    return fig


def lora_update(sizes: pd.DataFrame, title: str = "How far LoRA moved each weight") -> Figure:
    """The relative size of each adapted weight's update, ||(alpha/r) BA|| / ||W|| (from
    `ftutils.train.lora_update.update_sizes`), by layer, one line per kind of projection."""
    fig = Figure(figsize=(8, 3.6), layout="constrained")
    ax = fig.add_subplot()
    rel = sizes.dropna(subset=["relative"])
    for module, group in rel.groupby("module"):
        ax.plot(group["layer"], 100 * group["relative"], "o-", markersize=3, linewidth=1, label=module)
    if not len(rel):
        ax.text(0.5, 0.5, "base weights not on disk: no ||W|| to compare with", ha="center", va="center",
                transform=ax.transAxes, color="grey")
    ax.set(xlabel="layer", ylabel="||update|| / ||W|| (%)", title=title)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if len(rel):
        ax.legend(fontsize=8, ncols=4)
    return fig


def dpo_curves(metrics_df: pd.DataFrame, beta: float | None = None) -> Figure:
    """What a DPO job reports, by step: its loss against ln 2 (where every pair starts), the
    reward margin (beta times how much more the model now prefers the chosen reply over the
    rejected one than the reference did) and the reward accuracy (the share of pairs where the
    chosen reply is preferred more than by the reference). Training values per batch, the
    held-out pairs (whole validation file) as squares."""
    import math

    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3)
    df = metrics_df.sort_values("step") if len(metrics_df) else metrics_df
    panels = (("loss", "DPO loss (nats)", "Loss"), ("reward_margin", "beta x margin", "Reward margin: chosen vs rejected"),
              ("reward_accuracy", "share of pairs", "Reward accuracy: chosen preferred"))
    for ax, (metric, ylabel, title) in zip(axes, panels):
        drawn = False
        for prefix, colour, style, label in (("train_", TRAIN, "-", "training (batch)"),
                                             ("full_valid_", FULL, "s-", "held-out pairs")):
            column = prefix + metric
            if column in df and df[column].notna().any():
                points = df[["step", column]].dropna()
                ax.plot(points["step"], points[column], style, color=colour, markersize=5, label=label)
                drawn = True
        if metric == "loss":
            ax.axhline(math.log(2), color="grey", linestyle=":", label="ln 2: the model is still the reference")
        if metric == "reward_margin":
            ax.axhline(0, color="grey", linestyle=":", linewidth=0.8)
        if metric == "reward_accuracy":
            ax.set_ylim(-0.02, 1.02)
        if not drawn:
            ax.text(0.5, 0.5, "not reported by this service", ha="center", va="center", transform=ax.transAxes,
                    color="grey")
        ax.set(xlabel="step", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # accuracy climbs to 1: its legend goes below the curves
            ax.legend(fontsize=8, loc="lower right" if metric == "reward_accuracy" else "best")
    if beta is not None:
        fig.suptitle(f"DPO, beta = {beta}")
    return fig


def _plot_losses(ax_loss, df: pd.DataFrame) -> None:
    """Training loss raw and smoothed, validation losses, and a star on the lowest one."""
    steps = df["step"].to_numpy()
    train = df["train_loss"].astype(float)
    ax_loss.plot(steps, train, color=TRAIN, alpha=0.25, linewidth=0.8, label="training loss (per batch)")
    ax_loss.plot(steps, _smooth(train), color=TRAIN, label="training loss (smoothed)")
    for column, colour, label, style in (("valid_loss", VALID, "validation loss (batch)", "o-"),
                                         ("full_valid_loss", FULL, "validation loss (full set)", "s-")):
        points = df[["step", column]].dropna()
        if len(points):
            ax_loss.plot(points["step"], points[column], style, color=colour, markersize=3, label=label)
    valid = df[["step", "full_valid_loss"]].dropna()
    column = "full_valid_loss"
    if len(valid) < 2:
        valid, column = df[["step", "valid_loss"]].dropna(), "valid_loss"
    if len(valid):
        best = valid.loc[valid[column].idxmin()]
        ax_loss.plot([best["step"]], [best[column]], "*", color="black", markersize=14, zorder=5,
                     label=f"lowest validation loss ({'full set' if column == 'full_valid_loss' else 'batch'}) "
                           f"{best[column]:.3f} (step {int(best['step'])})")


def _plot_accuracies(ax_acc, df: pd.DataFrame) -> None:
    """Mean token accuracy: training (smoothed) and validation."""
    for column, colour, label in (("train_accuracy", TRAIN, "training"),
                                  ("valid_mean_token_accuracy", VALID, "validation (batch)"),
                                  ("full_valid_mean_token_accuracy", FULL, "validation (full set)")):
        points = df[["step", column]].dropna()
        if len(points):
            y = _smooth(points[column].astype(float)) if column == "train_accuracy" else points[column]
            ax_acc.plot(points["step"], y, "-" if column == "train_accuracy" else "o-", color=colour,
                        markersize=3, label=label)
    ax_acc.set_ylim(0, 1.02)
