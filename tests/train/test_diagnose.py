"""The fit diagnosis on synthetic loss curves, one per case, with noise like real per-step losses."""
import math

import numpy as np
import pandas as pd

from ftutils.train.diagnose import diagnose
from ftutils.train.metrics import COLUMNS

RNG = np.random.default_rng(0)


def curves(train, valid=None, every=5, noise=0.04):
    steps = np.arange(1, len(train) + 1)
    df = pd.DataFrame({c: math.nan for c in COLUMNS}, index=range(len(train)))
    df["step"] = steps
    df["train_loss"] = np.asarray(train) * (1 + noise * RNG.standard_normal(len(train)))
    if valid is not None:
        df.loc[steps % every == 0, "valid_loss"] = np.asarray(valid)[steps % every == 0]
    return df


def test_overfitting_names_the_minimum_and_the_checkpoint():
    t = np.linspace(0, 1, 240)
    train = 2.0 * np.exp(-4 * t) + 0.05
    valid = 0.4 + 1.6 * np.exp(-8 * t) + 0.5 * np.clip(t - 0.5, 0, None) ** 1.2
    checkpoints = [{"step": s, "metrics": {"valid_loss": float(valid[s - 1]), "train_loss": float(train[s - 1])}}
                   for s in (80, 160, 240)]
    d = diagnose(curves(train, valid), checkpoints=checkpoints, n_epochs=3)
    assert d.verdict == "overfitting", str(d)
    assert "rose to" in d.findings[0] and "while the smoothed training loss kept falling" in d.findings[0]
    assert d.best_checkpoint_step == 160
    assert any("checkpoint at step 160" in s for s in d.next_steps)
    assert any("instead of 3" in s for s in d.next_steps)
    assert "overfitting" in d._repr_html_() and "Verdict: overfitting" in str(d)


def test_underfitting_when_still_falling_steeply():
    t = np.linspace(0, 1, 200)
    train = 3.0 - 1.2 * t  # a straight line down: nowhere near levelling off
    d = diagnose(curves(train, train + 0.1), n_epochs=2)
    assert d.verdict == "underfitting", str(d)
    assert "still falling steeply" in d.findings[0]
    assert any("3 epochs instead of 2" in s for s in d.next_steps)


def test_good_fit():
    t = np.linspace(0, 1, 200)
    train = 1.5 * np.exp(-10 * t) + 0.3
    valid = 1.5 * np.exp(-10 * t) + 0.4
    checkpoints = pd.DataFrame({"step": [100, 200], "valid_loss": [valid[99], valid[199]]})
    d = diagnose(curves(train, valid), checkpoints=checkpoints, n_epochs=2)
    assert d.verdict == "good", str(d)
    assert d.findings[0].startswith("The smoothed training loss fell from 1.")
    assert d.best_checkpoint_step == 200


def test_converged_near_zero_is_not_underfitting():
    # The shape of a real SmolLM2 run: 5.4 -> ~0.03 in a third of the run, then noise near zero,
    # where 0.05 -> 0.03 is a large *relative* drop but nothing is left to learn.
    t = np.linspace(0, 1, 93)
    train = 5.4 * np.exp(-12 * t) + 0.03 * (1 - 0.4 * t)
    valid = 0.9 * np.exp(-10 * t) + 0.07
    d = diagnose(curves(train, valid, noise=0.3), n_epochs=3)
    assert d.verdict == "good", str(d)


def test_nan_is_unusable():
    train = np.linspace(2, 1, 50)
    train[30:] = np.nan
    df = curves(train, noise=0)
    d = diagnose(df)
    assert d.verdict == "unusable" and "step 31" in d.findings[0]
    assert "learning rate multiplier" in d.next_steps[0]


def test_diverging_is_unusable():
    train = np.concatenate([np.linspace(1.0, 0.8, 20), np.linspace(0.8, 4.0, 40)])
    d = diagnose(curves(train))
    assert d.verdict == "unusable" and "rose from" in d.findings[0]
    assert "Lower the learning rate multiplier" in d.next_steps[0]


def test_flat_is_unusable():
    d = diagnose(curves(np.full(100, 2.3), noise=0.02))
    assert d.verdict == "unusable" and "flat" in d.findings[0]
    assert "Raise the learning rate multiplier" in d.next_steps[0]


def test_no_metrics():
    d = diagnose(pd.DataFrame(columns=COLUMNS))
    assert d.verdict == "unusable" and "No training loss" in d.findings[0]


def test_by_epoch_reads_the_full_validation_loss_at_epoch_ends_and_names_the_lowest():
    import pandas as pd

    from ftutils.train.diagnose import by_epoch, lowest_epoch

    steps = list(range(1, 31))
    full = {10: 0.8, 20: 0.3, 30: 0.5}
    df = pd.DataFrame({"step": steps, "train_loss": [2.0 / s for s in steps],
                       "full_valid_loss": [full.get(s) for s in steps]})
    table = by_epoch(df)
    assert table[["epoch", "step"]].values.tolist() == [[1, 10], [2, 20], [3, 30]]
    assert table["full_valid_loss"].tolist() == [0.8, 0.3, 0.5]
    assert table["train_loss_smoothed"].is_monotonic_decreasing
    text = lowest_epoch(table)
    assert text.startswith("Validation loss (whole validation file, not smoothed) was lowest after epoch 2 (step 20)")
    assert "rose to 0.500 after epoch 3" in text
    assert "still falling" in lowest_epoch(table.iloc[:2])
    assert by_epoch(df.drop(columns="full_valid_loss")).empty and "No validation loss" in lowest_epoch(by_epoch(df.iloc[:0]))


def test_the_whole_file_validation_loss_is_read_as_measured():
    # The canonical run's epoch-end losses: lowest after epoch 3 of 5, then up 13 %. Smoothing
    # five points would lag past the minimum and call this run "good".
    steps = np.arange(1, 101)
    df = curves(2.0 * np.exp(-steps / 10) + 0.01, noise=0.0)
    for step, loss in zip((20, 40, 60, 80, 100), (0.719, 0.154, 0.070, 0.080, 0.079)):
        df.loc[df["step"] == step, "full_valid_loss"] = loss
    d = diagnose(df, n_epochs=5)
    assert d.verdict == "overfitting", str(d)
    assert d.findings[0].startswith("The validation loss (whole validation file, at epoch ends) was lowest (0.070) "
                                    "at step 60 and rose to 0.079 by step 100")
    assert "Train for 3 epochs instead of 5." in d.next_steps
    # Fewer than three whole-file points: the one-batch sample is read, smoothed, and named so.
    df.loc[df["step"].isin([60, 80, 100]), "full_valid_loss"] = math.nan
    df.loc[df["step"] % 5 == 0, "valid_loss"] = 2.0 * np.exp(-df.loc[df["step"] % 5 == 0, "step"] / 10) + 0.05
    assert "validation loss (smoothed)" in " ".join(diagnose(df, n_epochs=5).findings)
