"""The validator and the trainer agree on every file of the malformed corpus: a file that
`ftutils validate` passes trains through ftutils.local.training.examples (the trainer's reader), and a
file that cannot train is an error in validation, with its line."""
from __future__ import annotations

from pathlib import Path

import pytest

from ftutils.data.load import DataError
from ftutils.data.tokens import limits_for
from ftutils.data.validate import validate_examples, validate_file
from ftutils.local.models import chat_format, loading
from ftutils.local.training import examples
from ftutils.local.training.config import TrainConfig
from tests.data.test_validate import CASES

MALFORMED = Path(__file__).parent / "malformed"
MODEL = "tiny-smollm2"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return loading.load_base(MODEL, tmp_path_factory.getbasetemp() / "ml-data")[1]


class Messages:
    """The part of the trainer's sink that reading files uses."""

    def __init__(self):
        self.messages = []

    def on_message(self, level, message):
        self.messages.append((level, message))


def trainer_reads(path, tokenizer):
    """(examples the trainer keeps, its warnings) or the DataError its reader raises."""
    sink = Messages()
    max_length = limits_for(MODEL)[0].max_training_tokens
    try:
        return examples.load_chats(path, tokenizer, max_length, sink, "training"), sink
    except DataError as exc:
        return exc, sink


@pytest.mark.parametrize("name", sorted(CASES))
def test_trainer_reader_agrees_with_validator(name, tokenizer):
    report = validate_file(MALFORMED / name, model=MODEL, method="supervised")
    try:
        kept, _ = trainer_reads(MALFORMED / name, tokenizer)
    except (TypeError, AttributeError, ValueError) as exc:  # the encoder on a line of the wrong shape
        kept = exc
    if report.ok:  # it trains: every example is kept but those the validator warned have nothing to learn
        assert isinstance(kept, list), kept
        n_cut = report.counts["over_token_limit"]  # truncation may cut an answer off, as OpenAI's does
        assert report.n_examples - report.counts["no_trained_tokens"] - n_cut <= len(kept) > 0
        assert len(kept) <= report.n_examples - report.counts["no_trained_tokens"]
    elif isinstance(kept, DataError):  # the reader refuses at a line the validator named (or a bad file)
        lines = {f.line for f in report.errors}
        assert kept.line in lines or None in lines, (kept, report.errors)
    # else: the trainer is more lenient than OpenAI on some lines, and the validator (which runs
    # first on the server) stops the job with the line; nothing the trainer refuses passes validation.


def test_bom_file_trains(tokenizer):
    kept, sink = trainer_reads(MALFORMED / "bom.jsonl", tokenizer)
    assert len(kept) == 12 and all(e.n_trained for e in kept)


def test_lone_surrogate_is_one_error_with_line_and_field_on_both_sides(tokenizer):
    report = validate_file(MALFORMED / "lone_surrogate.jsonl", model=MODEL)
    (finding,) = report.errors
    assert (finding.code, finding.line, finding.field) == ("invalid_unicode", 6, "messages[1].content")
    err, _ = trainer_reads(MALFORMED / "lone_surrogate.jsonl", tokenizer)
    assert isinstance(err, DataError) and (err.line, err.field) == (6, "messages[1].content")
    assert "invalid_unicode" in str(err)
    # the same for examples in memory
    examples = [{"messages": [{"role": "user", "content": "hi \ud800"}, {"role": "assistant", "content": "x"}]}]
    found = validate_examples(examples * 10).errors
    assert [(f.code, f.line, f.field) for f in found][:2] == [("invalid_unicode", 1, "messages[0].content"),
                                                               ("invalid_unicode", 2, "messages[0].content")]


def test_every_weight_zero_is_a_file_error_and_the_trainer_has_nothing(tokenizer):
    report = validate_file(MALFORMED / "every_weight_zero.jsonl", model=MODEL, method="supervised")
    assert not report.ok and report.errors[0].code == "nothing_to_train" and report.errors[0].line is None
    kept, sink = trainer_reads(MALFORMED / "every_weight_zero.jsonl", tokenizer)
    assert kept == []
    # one weighted example is enough to train: a warning on the others, no file error
    assert validate_file(MALFORMED / "all_weights_zero.jsonl", model=MODEL).ok


def test_assistant_only_example_is_trained_not_dropped(tokenizer):
    report = validate_file(MALFORMED / "assistant_only.jsonl", model=MODEL, method="supervised")
    assert report.ok and [(f.code, f.line) for f in report.warnings if f.code != "approximate_token_count"] == \
        [("assistant_first", 4)]
    kept, sink = trainer_reads(MALFORMED / "assistant_only.jsonl", tokenizer)
    assert len(kept) == 12 and not [m for m in sink.messages if "skipped" in str(m)]
    encoded = chat_format.encode(tokenizer, [{"role": "assistant", "content": "shipping"}], 64)
    trained = tokenizer.decode([t for t in encoded.labels if t != chat_format.IGNORE])
    assert trained == "shipping" + tokenizer.eos_token


@pytest.mark.parametrize("name, line", [("nul_byte.jsonl", 3), ("nul_byte_late.jsonl", 250)])
def test_nul_byte_is_the_line_wherever_it_is(name, line, tokenizer):
    report = validate_file(MALFORMED / name, model=MODEL)
    assert [(f.code, f.line) for f in report.errors] == [("invalid_json", line)]
    err, _ = trainer_reads(MALFORMED / name, tokenizer)
    assert isinstance(err, DataError) and err.line == line
    assert validate_file(MALFORMED / "binary.jsonl").errors[0].code == "binary_file"  # real binaries stay binary


@pytest.mark.parametrize("model", ["tiny-smollm2", "smollm2-135m-instruct"])
def test_token_limit_is_one_number_for_validator_and_trainer(model, tmp_path):
    train_file = tmp_path / "t.jsonl"
    train_file.write_text("{}\n")
    common = dict(data_dir=tmp_path, train_file=train_file, output_dir=tmp_path / "o", n_epochs=1, batch_size=1,
                  learning_rate_multiplier=1.0, seed=0)
    config = TrainConfig(base_model=model, **common)
    assert config.max_length == limits_for(model)[0].max_training_tokens
    assert TrainConfig(base_model=f"ft:{model}:local::abc123", **common).max_length == config.max_length
