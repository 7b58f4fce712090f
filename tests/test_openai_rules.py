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
