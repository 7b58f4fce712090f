"""FTUTILS_KEEP_CHECKPOINTS: how many checkpoints the local server keeps per job (a local
difference from OpenAI, which keeps the last three epochs')."""
import pytest

from ftutils.local.settings import Settings
from ftutils.openai_rules import N_EPOCHS_RANGE


@pytest.mark.parametrize("value, kept", [("all", N_EPOCHS_RANGE[1]), ("ALL", N_EPOCHS_RANGE[1]), ("5", 5)])
def test_keep_checkpoints_from_the_environment(tmp_path, monkeypatch, value, kept):
    monkeypatch.setenv("FTUTILS_KEEP_CHECKPOINTS", value)
    assert Settings.load(tmp_path).keep_checkpoints == kept
    assert Settings.load(tmp_path, keep_checkpoints=2).keep_checkpoints == 2  # an argument wins


def test_default_is_openais_three_and_nonsense_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("FTUTILS_KEEP_CHECKPOINTS", raising=False)
    assert Settings.load(tmp_path).keep_checkpoints == 3
    monkeypatch.setenv("FTUTILS_KEEP_CHECKPOINTS", "every")
    with pytest.raises(ValueError, match="FTUTILS_KEEP_CHECKPOINTS must be a number or 'all', got 'every'"):
        Settings.load(tmp_path)
    monkeypatch.setenv("FTUTILS_KEEP_CHECKPOINTS", "0")
    with pytest.raises(ValueError, match="keep_checkpoints must be at least 1"):
        Settings.load(tmp_path)
