"""Each epoch's test score beside its validation loss (what the test set says of 03's choice),
and two runs compared item by item, on what they share (05_iterate)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from ftutils.evaluate import epochs
from ftutils.evaluate.compare import compare_runs, paired_runs, side_by_side
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
    # Validation kept epoch 1; the test set scored the final model higher (37/40 vs 36/40 right).
    assert text.startswith("Validation keeps epoch 1 (step 10), the lowest validation loss (0.500)")
    assert "The highest test score is epoch 2 (step 20)'s" in text and "the choice stays with validation" in text
    assert "overfit" not in text  # that is 03's verdict to give, with its noise check, not this table's


def test_epoch_verdict_agrees_when_both_pick_the_same_epoch(ev):
    text = epochs.verdict(epochs.epoch_table(with_valid_loss(ev, {10: 0.9, 20: 0.4})))
    assert "keeps epoch 2 (step 20), the lowest validation loss (0.400)" in text and "No other epoch scored higher" in text
    assert "After epoch 1 the test macro F1 was" in text
    assert epochs.verdict(epochs.epoch_table(ev)).startswith("Fewer than two checkpoints")


def test_two_runs_paired_item_by_item_on_what_they_share(tmp_path, ev):
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
    assert pair["candidates"] == ["fine-tuned", "fine-tuned"] and pair["out_of_scope"] is None
    table = compare_runs([tmp_path / "first", tmp_path / "second"])
    shared, left_out = side_by_side(table, ["first", "second"])
    assert shared.index.tolist() == ["first", "second"]  # no "change" row of interval bounds minus bounds
    assert "ft_macro_f1_lo" in shared and left_out == [
        "validation loss: each run measured it on its own validation file, and the files differ"]
    # Different test files: the test scores are not comparable either.
    (tmp_path / "second" / "data").mkdir()
    (tmp_path / "second" / "data" / "test.jsonl").write_text("{}\n")
    shared, left_out = side_by_side(compare_runs([tmp_path / "first", tmp_path / "second"]), ["first", "second"])
    assert "ft_accuracy" not in shared and "test scores: the runs were tested on different test files" in left_out
    with pytest.raises(ValueError, match="no predictions of 'nobody'"):
        paired_runs(tmp_path / "first", tmp_path / "second", candidate="nobody")
