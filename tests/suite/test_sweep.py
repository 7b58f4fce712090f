"""`ftutils run --sweep/--iterate`: which runs a sweep makes, and what an iteration reads."""
import json

import pytest

from ftutils.suite.cli import next_run, sweep_runs


def test_a_sweep_is_one_run_per_value_with_the_other_parameters_kept():
    assert sweep_runs("demo", None, {"seed": 1}) == [("demo", {"seed": 1})]
    assert sweep_runs("demo", "n_epochs=1,3", {"seed": 1}) == [
        ("demo-n_epochs-1", {"seed": 1, "n_epochs": 1}), ("demo-n_epochs-3", {"seed": 1, "n_epochs": 3})]
    with pytest.raises(SystemExit, match="KEY=V1,V2"):
        sweep_runs("demo", "n_epochs", {})


def test_an_iteration_reads_the_next_run_its_evaluation_recommends(tmp_path):
    run = tmp_path / "runs" / "demo"
    run.mkdir(parents=True)
    assert next_run(tmp_path, run.relative_to(tmp_path)) is None  # not evaluated yet
    (run / "evaluation.json").write_text(json.dumps({"next_run": {"params": {}, "why": []}}))
    assert next_run(tmp_path, run.relative_to(tmp_path)) is None  # nothing to change
    proposal = {"params": {"n_epochs": 3}, "why": ["validation loss was lowest at epoch 3"]}
    (run / "evaluation.json").write_text(json.dumps({"next_run": proposal}))
    assert next_run(tmp_path, run.relative_to(tmp_path)) == proposal
