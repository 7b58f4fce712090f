"""Loss curves of a job (03_train, the job monitor): the figure shows what the data holds."""
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ftutils.plots.training import loss_curves
from ftutils.train.diagnose import diagnose
from ftutils.train.metrics import COLUMNS


def test_loss_curves_marks_checkpoints_and_the_minimum():
    steps = np.arange(1, 61)
    df = pd.DataFrame({c: np.nan for c in COLUMNS}, index=range(60))
    df["step"] = steps
    df["train_loss"] = 2 * np.exp(-steps / 15) + 0.1
    df["train_accuracy"] = 1 - df["train_loss"] / 3
    df.loc[steps % 10 == 0, "valid_loss"] = (0.5 + 0.0004 * (steps - 30) ** 2)[steps % 10 == 0]
    cps = pd.DataFrame({"step": [20, 40, 60], "valid_loss": [0.54, 0.54, 1.14]})
    d = diagnose(df, cps, n_epochs=3)
    fig = loss_curves(df, cps, d)
    assert isinstance(fig, Figure)
    ax_loss, ax_acc = fig.axes
    labels = [t.get_text() for t in ax_loss.get_legend().get_texts()]
    assert "lowest validation loss (batch) 0.500 (step 30)" in labels
    assert ax_loss.get_yscale() == "linear"  # 2.1 down to 0.1: a linear axis shows it
    assert sum(1 for line in ax_loss.lines if line.get_linestyle() == "--") == 3
    assert fig._suptitle.get_text() == f"Diagnosis: {d.verdict}"
    assert isinstance(loss_curves(pd.DataFrame(columns=COLUMNS)), Figure)


def test_a_loss_falling_by_orders_of_magnitude_is_drawn_on_a_log_axis():
    steps = np.arange(1, 101)
    df = pd.DataFrame({c: np.nan for c in COLUMNS}, index=range(100))
    df["step"] = steps
    df["train_loss"] = 5 * np.exp(-steps / 8) + 0.002
    df.loc[steps % 20 == 0, "full_valid_loss"] = [0.719, 0.154, 0.070, 0.080, 0.079]
    ax_loss = loss_curves(df).axes[0]
    assert ax_loss.get_yscale() == "log" and "log scale" in ax_loss.get_ylabel()
