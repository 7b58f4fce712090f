"""`ftutils run`: parameters reach only the notebooks that declare them."""
import pytest

from ftutils.suite.cli import NOTEBOOKS, notebook_parameters, parse_params
from tests.conftest import ROOT


def test_params_are_python_literals_or_bare_words():
    assert parse_params(["n_epochs=2", "batch_size='auto'", "suffix=demo", "max_examples=None"]) == {
        "n_epochs": 2, "batch_size": "auto", "suffix": "demo", "max_examples": None}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_params(["n_epochs"])


def test_each_notebook_declares_run_dir_and_its_own_parameters():
    declared = {name: notebook_parameters(ROOT / "notebooks" / f"{name}.ipynb") for name in NOTEBOOKS}
    assert all("run_dir" in names for names in declared.values())
    assert {"n_epochs", "batch_size", "learning_rate_multiplier", "base_model", "seed"} <= declared["03_train"]
    assert "n_epochs" not in declared["02_prepare"] and "max_examples" in declared["02_prepare"]
    assert "max_test_examples" in declared["04_evaluate"]
