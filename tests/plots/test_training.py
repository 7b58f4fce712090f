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
    assert "lowest validation loss (batch) 0.50 (step 30)" in labels
    assert sum(1 for line in ax_loss.lines if line.get_linestyle() == "--") == 3
    assert fig._suptitle.get_text() == f"Diagnosis: {d.verdict}"
    assert isinstance(loss_curves(pd.DataFrame(columns=COLUMNS)), Figure)
