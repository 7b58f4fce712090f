"""OpenAI's request rules, shared by the client's checks and the local server: "auto"
hyperparameters at the boundaries of their heuristics, errors that name the param as the
API does, and fine-tuned model ids built and read back."""
import math

import pytest

from ftutils import openai_rules as rules
from ftutils.openai_rules import HyperparameterError, Hyperparameters


@pytest.mark.parametrize("n_examples, epochs", [
    (0, 3),          # nothing to go by: the target
    (1, 25),         # 100 passes would need 100 epochs: capped at 25
    (4, 25), (5, 20),
    (33, 4),         # 33 x 3 = 99 < 100 passes: one more epoch
    (34, 3),         # 34 x 3 = 102: the target holds
    (8333, 3),       # 24 999 passes: still under 25 000
    (8334, 2),       # 25 002: 25 000 // 8334
    (12_500, 2), (12_501, 1),
    (1_000_000, 1),  # never below one epoch
])
def test_auto_epochs_at_the_boundaries(n_examples, epochs):
    assert rules.auto_n_epochs(n_examples) == epochs


@pytest.mark.parametrize("n_examples, batch", [(1, 1), (500, 1), (501, 2), (10_000, 20), (128_000, 256), (10**7, 256)])
def test_auto_batch_size_grows_with_the_data_within_its_range(n_examples, batch):
    assert rules.auto_batch_size(n_examples) == batch


def test_resolve_fills_in_only_what_is_auto():
    assert Hyperparameters().resolve(1000) == Hyperparameters(3, 2, 2.0)
    assert Hyperparameters().resolve(10_000).learning_rate_multiplier == 1.0  # batch 20 > 8
    assert Hyperparameters(n_epochs=7, learning_rate_multiplier=0.5).resolve(1000) == Hyperparameters(7, 2, 0.5)
    assert Hyperparameters(batch_size=16).resolve(1000).learning_rate_multiplier == 1.0
    assert Hyperparameters(1, 2, 3).to_dict() == {"n_epochs": 1, "batch_size": 2, "learning_rate_multiplier": 3}


@pytest.mark.parametrize("kwargs, param", [
    ({"n_epochs": 0}, "hyperparameters.n_epochs"),
    ({"n_epochs": 51}, "hyperparameters.n_epochs"),
    ({"n_epochs": 2.0}, "hyperparameters.n_epochs"),
    ({"n_epochs": True}, "hyperparameters.n_epochs"),
    ({"batch_size": 257}, "hyperparameters.batch_size"),
    ({"batch_size": "8"}, "hyperparameters.batch_size"),
    ({"learning_rate_multiplier": 0}, "hyperparameters.learning_rate_multiplier"),
    ({"learning_rate_multiplier": -1.0}, "hyperparameters.learning_rate_multiplier"),
    ({"learning_rate_multiplier": math.nan}, "hyperparameters.learning_rate_multiplier"),
    ({"learning_rate_multiplier": math.inf}, "hyperparameters.learning_rate_multiplier"),
    ({"learning_rate_multiplier": "2"}, "hyperparameters.learning_rate_multiplier"),
])
def test_check_names_the_param_and_the_bad_value(kwargs, param):
    with pytest.raises(HyperparameterError) as caught:
        rules.check(**kwargs)
    assert caught.value.param == param
    assert repr(next(iter(kwargs.values()))) in str(caught.value)
    with pytest.raises(HyperparameterError):
        Hyperparameters(**kwargs)  # the dataclass checks the same way


def test_values_at_the_edges_of_the_ranges_pass():
    rules.check(1, 1, 1e-6)
    rules.check(50, 256, 100)
    rules.check()  # all "auto"


@pytest.mark.parametrize("suffix", ["", "x" * 65, "a:b", "has space", "naïve", 42])
def test_check_suffix_errors_name_the_suffix(suffix):
    with pytest.raises(HyperparameterError) as caught:
        rules.check_suffix(suffix)
    assert caught.value.param == "suffix" and repr(suffix) in str(caught.value)


def test_suffixes_openai_accepts():
    for suffix in (None, "x", "x" * 64, "support-v1.2_final"):
        rules.check_suffix(suffix)


@pytest.mark.parametrize("metadata, says", [
    ({f"k{i}": "v" for i in range(17)}, "at most 16 pairs"),
    (["not", "a", "dict"], "at most 16 pairs"),
    ({"n": 1}, "must be strings: 'n'"),
    ({1: "v"}, "must be strings: 1"),
    ({"k" * 65: "v"}, "at most 64 characters"),
    ({"long": "v" * 513}, "values 512: 'long'"),
])
def test_check_metadata_errors_name_metadata(metadata, says):
    with pytest.raises(HyperparameterError, match=says) as caught:
        rules.check_metadata(metadata)
    assert caught.value.param == "metadata"


def test_metadata_at_its_limits_passes():
    rules.check_metadata(None)
    rules.check_metadata({f"k{i}": "v" for i in range(16)})
    rules.check_metadata({"k" * 64: "v" * 512})


def test_model_ids_built_and_read_back():
    model = rules.fine_tuned_model_id("tiny-smollm2", "local", "support", "ftjob-abcdef1234567890")
    assert model == "ft:tiny-smollm2:local:support:abcdef12"
    assert rules.fine_tuned_model_id("tiny-smollm2", "local", None, "ftjob-abcdef12") == "ft:tiny-smollm2:local::abcdef12"
    ckpt = rules.checkpoint_model_id(model, 40)
    assert ckpt == "ft:tiny-smollm2:local:support:abcdef12:ckpt-step-40"
    assert rules.is_fine_tuned(model) and not rules.is_checkpoint(model)
    assert rules.is_fine_tuned(ckpt) and rules.is_checkpoint(ckpt)
    assert not rules.is_fine_tuned("tiny-smollm2") and not rules.is_fine_tuned(None) and not rules.is_checkpoint("")
    assert rules.base_of(model) == rules.base_of(ckpt) == rules.base_of("tiny-smollm2") == "tiny-smollm2"
    assert rules.base_of("ft:gpt-4o-mini-2024-07-18:my-org::AbC123") == "gpt-4o-mini-2024-07-18"


# ---- the wind-down -------------------------------------------------------------------

def test_the_dates_have_their_source_and_come_in_order():
    import datetime

    dates = [m.date for m in rules.WIND_DOWN]
    assert dates == sorted(dates) and all(m.source == rules.DEPRECATIONS_PAGE for m in rules.WIND_DOWN)
    assert rules.DEPRECATIONS_PAGE == "https://developers.openai.com/api/docs/deprecations"
    assert (rules.NEVER_FINE_TUNED_CUTOFF, rules.INACTIVE_CUTOFF, rules.JOB_CREATION_ENDS, rules.LAST_BASES_SHUTDOWN) == (
        datetime.date(2026, 5, 7), datetime.date(2026, 7, 2), datetime.date(2027, 1, 6), datetime.date(2027, 1, 14))
    assert (rules.EVALS_READ_ONLY, rules.EVALS_SHUTDOWN) == (datetime.date(2026, 10, 31), datetime.date(2026, 11, 30))


@pytest.mark.parametrize("model, date", [
    ("gpt-4o-mini-2024-07-18", "2027-01-14"), ("gpt-4o-mini", "2027-01-14"),       # a short name: its snapshot's
    ("gpt-4.1-mini-2025-04-14", "2027-01-14"), ("gpt-4o-2024-08-06", "2027-01-14"),
    ("gpt-4.1-nano-2025-04-14", "2026-10-23"), ("gpt-4.1-nano", "2026-10-23"), ("o4-mini", "2026-10-23"),
    ("ft:gpt-4.1-nano-2025-04-14:acme:support:abc123", "2026-10-23"),             # a fine-tune goes with its base
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123:ckpt-step-20", "2027-01-14"),
    ("gpt-3.5-turbo-1106", None), ("smollm2-135m-instruct", None), (None, None),
])
def test_shutdown_date(model, date):
    assert rules.shutdown_date(model) == (rules.parse_date(date) if date else None)


def test_may_fine_tune_on_a_given_day():
    import datetime

    day = datetime.date(2026, 12, 7)
    ok = rules.may_fine_tune("gpt-4o-mini", day)
    assert ok.allowed and "since 2026-05-07" in ok.reason and "since 2026-07-02" in ok.reason
    assert ok.reason.endswith("nobody from 2027-01-06; it shuts down on 2027-01-14.")
    assert rules.may_fine_tune("ft:gpt-4o-mini-2024-07-18:acme:support:abc123", day).allowed  # a fine-tune, further
    nano = rules.may_fine_tune("gpt-4.1-nano-2025-04-14", day)
    assert not nano.allowed and nano.reason.startswith("gpt-4.1-nano-2025-04-14 shut down on OpenAI on 2026-10-23")
    assert rules.may_fine_tune("gpt-4.1-nano-2025-04-14", datetime.date(2026, 10, 22)).allowed  # the day before
    assert not rules.may_fine_tune("gpt-6-luna", day).allowed  # the replacement cannot be fine-tuned
    end = rules.may_fine_tune("gpt-4o-mini-2024-07-18", rules.JOB_CREATION_ENDS)
    assert not end.allowed and end.reason.startswith("OpenAI creates no fine-tuning jobs for any organisation since 2027-01-06")
    assert rules.shutdown_date("gpt-4o-2024-08-06") == rules.LAST_BASES_SHUTDOWN == datetime.date(2027, 1, 14)
    assert rules.shutdown_date(rules.REINFORCEMENT_BASE) == datetime.date(2026, 10, 23)


def test_today_comes_from_the_clock_unless_injected(monkeypatch):
    import datetime

    monkeypatch.setenv(rules.TODAY_ENV, "2027-01-06")
    assert rules.today() == datetime.date(2027, 1, 6) and not rules.may_fine_tune("gpt-4o-mini").allowed
    monkeypatch.delenv(rules.TODAY_ENV)
    assert rules.today() == datetime.date.today()
    monkeypatch.setenv(rules.TODAY_ENV, "6 Jan 2027")
    with pytest.raises(ValueError, match="FTUTILS_TODAY must be a date written YYYY-MM-DD, got '6 Jan 2027'"):
        rules.today()


def test_suffix_of_a_fine_tuned_id():
    assert rules.suffix_of("ft:gpt-4o-mini-2024-07-18:acme:support:abc123") == "support"
    assert rules.suffix_of("ft:gpt-4o-mini-2024-07-18:acme::abc123:ckpt-step-20") is None
    assert rules.suffix_of(rules.fine_tuned_model_id("tiny-smollm2", "local", "x.y", "ftjob-12345678abc")) == "x.y"
    assert rules.suffix_of("gpt-4o-mini") is None


def test_the_readme_opens_with_the_same_dates_and_their_source():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    first = readme.split("\n\n")[1]  # the paragraph under the title
    assert "What works where" in first and rules.DEPRECATIONS_PAGE in first
    for milestone in rules.WIND_DOWN:
        assert milestone.date.isoformat() in first, milestone
    for model in rules.LAST_BASES:
        assert model in first
