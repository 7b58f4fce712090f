"""ftutils.data.advice: each piece of advice on a dataset that has exactly that problem, and its fix."""
from __future__ import annotations

import copy

import pytest

from ftutils.data.advice import FIXES, advise, apply_fixes
from ftutils.data.tokens import MODEL_LIMITS

SYSTEM = "You label support tickets."
TOPICS = ["my card was charged twice", "the parcel never arrived", "I cannot log in", "the app crashes on start",
          "please cancel my plan", "I want my money back", "wrong size delivered", "invoice shows wrong VAT",
          "password reset mail missing", "checkout page is blank", "tracking number does not work",
          "refund still not received"]


def _ex(user, answer, system=SYSTEM):
    messages = ([{"role": "system", "content": system}] if system is not None else [])
    return {"messages": messages + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def _free_text(n=12):
    return [_ex(f"{TOPICS[i % 12]} (order {i})", f"Sorry about that, I have opened case {i} for you.") for i in range(n)]


def _codes(report):
    return sorted(report.counts)


def test_clean_data_gets_only_the_few_examples_hint():
    report = advise(_free_text())
    assert _codes(report) == ["few_examples"]
    assert advise(_free_text(60)).findings == []


def test_duplicates_are_reported_at_the_later_line_and_dropped():
    examples = _free_text(60)
    examples.insert(10, copy.deepcopy(examples[3]))
    examples.append(_ex(examples[5]["messages"][1]["content"].upper() + "!!", examples[5]["messages"][2]["content"]))
    report = advise(examples)
    assert [(f.code, f.line) for f in report.findings] == [("duplicate_example", 11), ("duplicate_example", 62)]
    fixed = apply_fixes(examples, report, accept=["duplicate_example"])
    assert len(fixed) == 60 and fixed == _free_text(60)


def test_long_examples_use_the_model_limit():
    limit = MODEL_LIMITS["tiny-smollm2"].max_training_tokens
    examples = _free_text(60)
    examples[7] = _ex("word " * (limit + 10), "ok")
    report = advise(examples, model="tiny-smollm2")
    assert [(f.code, f.line) for f in report.findings] == [("long_example", 8)]
    assert f"{limit:,} tokens" in report.findings[0].message
    assert advise(examples, model="gpt-4o-mini").findings == []  # 65k limit: not long there
    fixed = apply_fixes(examples, report, accept="long_example")  # the report remembers the model
    assert len(fixed) == 59 and examples[7] not in fixed


def test_missing_and_inconsistent_system_prompts():
    examples = _free_text(60)
    examples[4] = _ex("hello", "hi", system=None)
    examples[9] = _ex("hello there", "hi there", system="You label tickets")
    report = advise(examples)
    assert [(f.code, f.line, f.field) for f in report.findings] == [
        ("missing_system_prompt", 5, "messages[0]"), ("inconsistent_system_prompt", 10, "messages[0].content")]
    assert "2 different system prompts" in report.findings[1].message
    fixed = apply_fixes(examples, report, accept=["missing_system_prompt", "inconsistent_system_prompt"])
    assert all(e["messages"][0] == {"role": "system", "content": SYSTEM} for e in fixed)
    assert advise(fixed).findings == []


def test_legacy_prefix_suffix_separator_and_upper_case():
    examples = [_ex(f"{TOPICS[i % 12]} number {i}\n\n###\n\n", f" CASE {i} OPENED END") for i in range(60)]
    report = advise(examples)
    messages = {f.code: f.message for f in report.findings}
    assert messages == {"completion_common_prefix": "every reply starts with ' CASE '",
                        "completion_common_suffix": "every reply ends with ' OPENED END'",
                        "prompt_common_suffix": "every prompt ends with '\\n\\n###\\n\\n'",
                        "mostly_uppercase": "100% of the letters in the replies are upper case"}
    fixed = apply_fixes(examples, report, accept=list(messages))
    assert fixed[3]["messages"][1:] == [{"role": "user", "content": "the app crashes on start number 3"},
                                        {"role": "assistant", "content": "3"}]
    assert examples[3]["messages"][2]["content"] == " CASE 3 OPENED END"  # the input is left alone


def test_shared_word_starts_are_not_prefixes():
    examples = [_ex(f"{TOPICS[i % 12]} {i}", "refund" if i % 2 else "replacement") for i in range(60)]
    assert "completion_common_prefix" not in advise(examples).counts


def test_classification_is_detected_with_label_counts():
    labels = ["billing"] * 30 + ["shipping"] * 20 + ["cancel"] * 10
    examples = [_ex(f"{TOPICS[i % 12]} {i}", label) for i, label in enumerate(labels)]
    [finding] = advise(examples).findings
    assert finding.code == "classification_detected"
    assert "3 labels (billing: 30, shipping: 20, cancel: 10)" in finding.message
    assert finding.fix is None


def test_apply_fixes_refuses_what_was_not_found_or_cannot_be_fixed():
    examples = _free_text(60)
    report = advise(examples)
    with pytest.raises(ValueError, match="'duplicate_example' is not among the findings"):
        apply_fixes(examples, report, accept=["duplicate_example"])
    with pytest.raises(ValueError, match="no automatic fix for 'classification_detected'"):
        apply_fixes(examples, report, accept=["classification_detected"])
    assert set(FIXES) >= {"duplicate_example", "long_example", "missing_system_prompt", "completion_common_suffix"}
