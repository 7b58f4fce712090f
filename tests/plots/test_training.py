"""Loss curves of a job (03_train, the job monitor): the figure shows what the data holds."""
import numpy as np
import pytest
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
    assert fig._suptitle.get_text() == d.title() == "Looks like overfitting: more than noise? (needs per-item validation losses)"
    assert isinstance(loss_curves(pd.DataFrame(columns=COLUMNS)), Figure)


def test_a_loss_falling_by_orders_of_magnitude_is_drawn_on_a_log_axis():
    steps = np.arange(1, 101)
    df = pd.DataFrame({c: np.nan for c in COLUMNS}, index=range(100))
    df["step"] = steps
    df["train_loss"] = 5 * np.exp(-steps / 8) + 0.002
    df.loc[steps % 20 == 0, "full_valid_loss"] = [0.719, 0.154, 0.070, 0.080, 0.079]
    ax_loss = loss_curves(df).axes[0]
    assert ax_loss.get_yscale() == "log" and "log scale" in ax_loss.get_ylabel()


def test_dpo_curves_show_the_loss_from_ln2_the_margin_and_the_accuracy():
    import math

    from ftutils.plots.training import dpo_curves

    steps = np.arange(1, 7)
    df = pd.DataFrame({"step": steps, "train_loss": math.log(2) * np.exp(-steps / 4),
                       "train_reward_margin": 0.4 * steps, "train_reward_accuracy": np.minimum(1, steps / 4),
                       "full_valid_loss": [np.nan, np.nan, 0.45, np.nan, np.nan, 0.32],
                       "full_valid_reward_margin": [np.nan, np.nan, 0.6, np.nan, np.nan, 1.0]})
    fig = dpo_curves(df, beta=0.1)
    loss, margin, accuracy = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["Loss", "Reward margin: chosen vs rejected", "Reward accuracy: chosen preferred"]
    assert any(abs(line.get_ydata()[0] - math.log(2)) < 1e-9 for line in loss.lines if len(line.get_ydata()) == 2)
    assert len(margin.lines) == 3 and fig._suptitle.get_text() == "DPO, beta = 0.1"  # training, held-out, the 0 line
    assert [t.get_text() for t in accuracy.texts] == []  # drawn, not "not reported"


def test_the_lora_update_plot_draws_one_line_per_projection():
    from ftutils.plots.training import lora_update

    sizes = pd.DataFrame({"layer": [0, 0, 1, 1], "module": ["q_proj", "v_proj"] * 2, "update_norm": [1, 2, 1, 2],
                          "weight_norm": [100, 100, 100, 100], "relative": [0.01, 0.02, 0.01, 0.03]})
    fig = lora_update(sizes)
    assert len(fig.axes[0].lines) == 2 and max(fig.axes[0].lines[1].get_ydata()) == pytest.approx(3.0)
    empty = lora_update(sizes.assign(relative=np.nan, weight_norm=np.nan))
    assert "base weights not on disk" in empty.axes[0].texts[0].get_text()
