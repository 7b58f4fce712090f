"""The fit diagnosis on synthetic loss curves, one per case, with noise like real per-step losses,
and per-item validation losses: a verdict of over- or underfitting only where the change clears
its own noise, "can't tell" where it does not."""
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


def items(means: dict, n: int = 64, spread: float = 0.3, seed: int = 1, shared: bool = True) -> pd.DataFrame:
    """Per-item validation losses at each step: `means[step]` plus item noise (the same for an
    item at every step when `shared`: some items are simply hard) and a little per-step noise."""
    rng = np.random.default_rng(seed)
    hard = rng.exponential(spread, n)
    rows = []
    for step, mean in means.items():
        own = hard if shared else rng.exponential(spread, n)
        jitter = rng.normal(0, spread / 3, n)
        rows += [{"step": step, "id": f"v{i}", "loss": max(0.0, mean + own[i] - spread + jitter[i])} for i in range(n)]
    return pd.DataFrame(rows)


def overfit_curves():
    t = np.linspace(0, 1, 240)
    train = 2.0 * np.exp(-4 * t) + 0.05
    valid = 0.4 + 1.6 * np.exp(-8 * t) + 0.5 * np.clip(t - 0.5, 0, None) ** 1.2
    checkpoints = [{"step": s, "metrics": {"valid_loss": float(valid[s - 1]), "train_loss": float(train[s - 1])}}
                   for s in (80, 160, 240)]
    return curves(train, valid), checkpoints, valid


def test_overfitting_when_the_rise_clears_the_noise_of_the_items():
    df, checkpoints, valid = overfit_curves()
    losses = items({80: 0.9, 160: 0.5, 240: 0.8})
    d = diagnose(df, checkpoints=checkpoints, n_epochs=3, item_losses=losses)
    assert d.verdict == "overfitting" and d.looks_like == "overfitting", str(d)
    assert "while the smoothed training loss kept falling" in d.findings[0]
    assert d.findings[1].startswith("The rise is more than noise: per item, paired on the same 64 validation items")
    assert d.best_checkpoint_step == 160 and d.confirmed
    assert d.comparison["from_step"] == 160 and d.comparison["to_step"] == 240 and d.comparison["ci"][0] > 0
    assert "overfitting" in d._repr_html_() and "Verdict: overfitting" in str(d)


def test_the_same_curve_within_noise_or_without_items_is_cant_tell():
    df, checkpoints, _ = overfit_curves()
    # The canonical run's case: the mean rose a little, less than the items' spread can explain.
    noisy = items({80: 0.9, 160: 0.5, 240: 0.51}, spread=0.6, shared=False)
    d = diagnose(df, checkpoints=checkpoints, n_epochs=3, item_losses=noisy)
    assert d.verdict == "can't tell" and d.looks_like == "overfitting" and not d.confirmed, str(d)
    lo, hi = d.comparison["ci"]
    assert lo < 0 < hi and "The rise is within noise" in d.findings[1] and "which includes 0" in d.findings[1]
    assert d.best_checkpoint_step == 160  # still the checkpoint to keep: the lowest validation loss
    assert d.title() == "Looks like overfitting, but within noise: can't tell"
    bare = diagnose(df, checkpoints=checkpoints, n_epochs=3)
    assert bare.verdict == "can't tell" and bare.comparison is None and "no per-item validation losses" in bare.findings[1]


def test_underfitting_needs_the_last_epoch_to_improve_beyond_noise():
    t = np.linspace(0, 1, 200)
    train = 3.0 - 1.2 * t  # a straight line down: nowhere near levelling off
    df = curves(train, noise=0.02)
    # Training loss alone (no validation file): its fall must clear its batch-to-batch noise.
    d = diagnose(df, n_epochs=2)
    assert d.verdict == "underfitting" and d.comparison["what"].startswith("training loss"), str(d)
    assert "still falling steeply" in d.findings[0] and "more than its batch-to-batch noise" in d.findings[0]
    # With a validation file measured at epoch ends and its items: the last epoch must improve on the one before.
    df.loc[df["step"] == 100, "full_valid_loss"], df.loc[df["step"] == 200, "full_valid_loss"] = 2.5, 1.9
    df.loc[df["step"] == 150, "full_valid_loss"] = 2.2
    better = diagnose(df, n_epochs=2, item_losses=items({100: 2.5, 150: 2.2, 200: 1.9}))
    assert better.verdict == "underfitting" and better.comparison["ci"][1] < 0, str(better)
    flat = diagnose(df, n_epochs=2, item_losses=items({100: 2.5, 150: 2.2, 200: 2.19}, spread=0.8, shared=False))
    assert flat.verdict == "can't tell" and flat.looks_like == "underfitting", str(flat)
    assert "can't tell whether more epochs would help" in flat.findings[-1]


def test_good_fit():
    t = np.linspace(0, 1, 200)
    train = 1.5 * np.exp(-10 * t) + 0.3
    valid = 1.5 * np.exp(-10 * t) + 0.4
    checkpoints = pd.DataFrame({"step": [100, 200], "valid_loss": [valid[99], valid[199]]})
    d = diagnose(curves(train, valid), checkpoints=checkpoints, n_epochs=2)
    assert d.verdict == "good", str(d)
    assert d.findings[0].startswith("The smoothed training loss fell from 1.")
    assert d.best_checkpoint_step == 200


def test_good_fit_with_items_carries_the_comparison_its_epochs_rest_on():
    df, checkpoints, valid = overfit_curves()
    # A rise too small to look like overfitting (the canonical run: 0.067 -> 0.071), within noise.
    for r in checkpoints:
        r["metrics"]["valid_loss"] = {80: 0.9, 160: 0.50, 240: 0.52}[r["step"]]
    df["valid_loss"], df["full_valid_loss"] = math.nan, math.nan
    for step, v in ((80, 0.9), (160, 0.50), (240, 0.52)):
        df.loc[df["step"] == step, "full_valid_loss"] = v
    noisy = items({80: 0.9, 160: 0.5, 240: 0.45}, spread=0.6, shared=False)
    d = diagnose(df, checkpoints=checkpoints, n_epochs=3, item_losses=noisy)
    assert d.verdict == "good" and d.best_checkpoint_step == 160, str(d)
    assert d.comparison["from_step"] == 160 and d.comparison["to_step"] == 240 and not d.comparison["clears_noise"]
    assert "which includes 0: within noise" in d.findings[-1]
    # The same small rise, beyond the noise of the items: overfitting, whatever its size.
    clear = diagnose(df, checkpoints=checkpoints, n_epochs=3, item_losses=items({80: 0.9, 160: 0.5, 240: 0.62}))
    assert clear.verdict == "overfitting" and clear.comparison["ci"][0] > 0, str(clear)
    # The last epoch the lowest: the comparison is of the last two.
    for r in checkpoints:
        r["metrics"]["valid_loss"] = {80: 0.9, 160: 0.6, 240: 0.5}[r["step"]]
    df.loc[df["step"] == 240, "full_valid_loss"], df.loc[df["step"] == 160, "full_valid_loss"] = 0.5, 0.6
    d = diagnose(df, checkpoints=checkpoints, n_epochs=3, item_losses=items({80: 0.9, 160: 0.6, 240: 0.3}))
    assert d.verdict == "good" and d.best_checkpoint_step == 240, str(d)
    assert d.comparison["what"] == "validation loss, last two epochs" and d.comparison["clears_noise"]
    assert "The last epoch still improved on the one before beyond noise" in d.findings[-1]


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
    assert d.verdict == "unusable" and "step 31" in d.findings[0] and d.cause == "not_a_number"


def test_diverging_is_unusable():
    train = np.concatenate([np.linspace(1.0, 0.8, 20), np.linspace(0.8, 4.0, 40)])
    d = diagnose(curves(train))
    assert d.verdict == "unusable" and "rose from" in d.findings[0] and d.cause == "diverged"


def test_flat_is_unusable():
    d = diagnose(curves(np.full(100, 2.3), noise=0.02))
    assert d.verdict == "unusable" and "flat" in d.findings[0] and d.cause == "flat"


def test_no_metrics():
    d = diagnose(pd.DataFrame(columns=COLUMNS))
    assert d.verdict == "unusable" and "No training loss" in d.findings[0]


def test_by_epoch_reads_the_full_validation_loss_at_epoch_ends_and_names_the_lowest():
    import pandas as pd

    from ftutils.train.epoch_table import by_epoch, lowest_epoch

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
    assert "it was 0.500 after epoch 3" in text and "memorised" not in text
    assert "still falling" in lowest_epoch(table.iloc[:2])
    with_items = by_epoch(df, items({10: 0.8, 20: 0.3, 30: 0.5}))
    assert list(with_items.columns[-3:]) == ["item_loss", "item_loss_lo", "item_loss_hi"]
    assert (with_items["item_loss_lo"] < with_items["item_loss"]).all() and (with_items["item_loss"] < with_items["item_loss_hi"]).all()
    assert by_epoch(df.drop(columns="full_valid_loss")).empty and "No validation loss" in lowest_epoch(by_epoch(df.iloc[:0]))


def test_the_whole_file_validation_loss_is_read_as_measured():
    # The canonical run's epoch-end losses: lowest after epoch 3 of 5, then up 13 %. Smoothing
    # five points would lag past the minimum and call this run "good".
    steps = np.arange(1, 101)
    df = curves(2.0 * np.exp(-steps / 10) + 0.01, noise=0.0)
    for step, loss in zip((20, 40, 60, 80, 100), (0.719, 0.154, 0.070, 0.080, 0.079)):
        df.loc[df["step"] == step, "full_valid_loss"] = loss
    d = diagnose(df, n_epochs=5)
    assert d.looks_like == "overfitting" and d.verdict == "can't tell", str(d)
    assert d.findings[0].startswith("The validation loss (whole validation file, at epoch ends) was lowest (0.070) "
                                    "at step 60 and 0.079 by step 100")
    assert [e["step"] for e in d.epochs] == [20, 40, 60, 80, 100] and d.epochs[2]["full_valid_loss"] == 0.07
    # Fewer than three whole-file points: the one-batch sample is read, smoothed, and named so.
    df.loc[df["step"].isin([60, 80, 100]), "full_valid_loss"] = math.nan
    df.loc[df["step"] % 5 == 0, "valid_loss"] = 2.0 * np.exp(-df.loc[df["step"] % 5 == 0, "step"] / 10) + 0.05
    assert "validation loss (smoothed)" in " ".join(diagnose(df, n_epochs=5).findings)
