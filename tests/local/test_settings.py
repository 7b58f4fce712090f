"""Settings of the local backend: FTUTILS_KEEP_CHECKPOINTS (how many checkpoints the local server
keeps per job, a local difference from OpenAI, which keeps the last three epochs'), and the README's
table of variables, which is the one Settings declares."""
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


def test_the_readmes_table_of_variables_is_the_settings_own():
    """Each variable the local backend reads is declared once, with its help, in Settings; the
    README shows exactly that table (regenerate it with `settings.environment_table()`)."""
    from dataclasses import fields

    from ftutils.local.settings import environment_table
    from tests.conftest import ROOT

    declared = [f for f in fields(Settings) if f.metadata["env"]]
    assert all(f.metadata["help"] for f in fields(Settings))
    assert len({f.metadata["env"] for f in declared}) == len(declared)
    table = environment_table()
    assert all(f"| `{f.metadata['env']}` |" in table for f in declared)
    assert table in (ROOT / "README.md").read_text(), f"README.md's table of the local backend's variables should be:\n{table}"
