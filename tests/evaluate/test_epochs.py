"""Each epoch's test score beside its validation loss (04's check of 03's choice), and two
runs compared item by item with deltas (05_iterate)."""
from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest

from ftutils.evaluate import epochs
from ftutils.evaluate.compare import compare_runs, paired_runs, with_deltas
from ftutils.evaluate.report import write_evaluation
from tests.evaluate.test_report import ev  # noqa: F401 (the module-scoped evaluation fixture)


def with_valid_loss(ev, losses: dict):
    manifest = {**ev.manifest, "checkpoints": [{"step": s, "metrics": {"full_valid_loss": v}} for s, v in losses.items()]}
    return dataclasses.replace(ev, manifest=manifest)


def test_epoch_table_lines_up_steps_validation_loss_and_test_scores(ev):
    table = epochs.epoch_table(with_valid_loss(ev, {10: 0.5, 20: 0.7}))
    assert table[["epoch", "step", "candidate"]].values.tolist() == [[1, 10, "step-10"], [2, 20, "fine-tuned"]]
    assert table["valid_loss"].tolist() == [0.5, 0.7]
    assert table["test_macro_f1"].tolist() == pytest.approx([ev.metrics("step-10")["macro_f1"],
                                                             ev.metrics("fine-tuned")["macro_f1"]])
    text = epochs.verdict(table)
    # Validation picked epoch 1; the test set preferred the final model (37/40 vs 36/40 right).
    assert text.startswith("Validation loss was lowest after epoch 1 (step 10): 0.500")
    assert "The test set's best was epoch 2 (step 20)" in text
    assert "By the last epoch (2) validation loss had risen to 0.700 (overfitting)" in text


def test_epoch_verdict_agrees_when_both_pick_the_same_epoch(ev):
    text = epochs.verdict(epochs.epoch_table(with_valid_loss(ev, {10: 0.9, 20: 0.4})))
    assert "after epoch 2 (step 20): 0.400" in text and "The test set agrees" in text
    assert "After epoch 1 the model was still underfit" in text
    assert epochs.verdict(epochs.epoch_table(ev)).startswith("Fewer than two checkpoints")


def test_two_runs_paired_item_by_item_with_deltas(tmp_path, ev):
    for name, epochs_run in (("first", 4), ("second", 2)):
        write_evaluation(tmp_path / name, ev)
        (tmp_path / name / "run.json").write_text(json.dumps({"hyperparameters": {"n_epochs": epochs_run}}))
    # The second run's fine-tune gets two more items wrong.
    data = json.loads((tmp_path / "second" / "evaluation.json").read_text())
    wrong = [p for p in data["predictions"]["fine-tuned"] if p["pred"] == p["label"]][:2]
    for p in wrong:
        p["pred"] = "shipping" if p["label"] != "shipping" else "billing"
    (tmp_path / "second" / "evaluation.json").write_text(json.dumps(data))

    pair = paired_runs(tmp_path / "first", tmp_path / "second")
    assert (pair["a"], pair["b"]) == ("first", "second")
    assert pair["mcnemar"]["only_a_correct"] == 2 and pair["mcnemar"]["only_b_correct"] == 0
    assert pair["significant"] is False  # two items of 40: p = 0.5
    table = compare_runs([tmp_path / "first", tmp_path / "second"])
    both = with_deltas(table, "first", "second")
    assert both.index.tolist() == ["first", "second", "change"]
    assert both.loc["change", "ft_accuracy"] == pytest.approx(0)  # compare_runs reads the stored metrics
    assert pd.isna(both.loc["change", "verdict"])
    with pytest.raises(ValueError, match="no predictions of 'nobody'"):
        paired_runs(tmp_path / "first", tmp_path / "second", candidate="nobody")
