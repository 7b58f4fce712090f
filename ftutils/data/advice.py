"""Advice on a dataset, in the spirit of the legacy `openai tools fine_tunes.prepare_data`:
things that are not wrong enough for OpenAI to reject the file, but that cost money or
quality, each with a fix the user may accept.

    report = advise(examples, model="gpt-4o-mini")
    report                                   # a table in a notebook
    fixed = apply_fixes(examples, report, accept=["duplicate_example", "completion_common_suffix"])

Fixes are recomputed from the examples when applied (a report keeps at most 50 findings
per code, and a fix such as "strip the common suffix" needs the suffix, not a line).
"""
from __future__ import annotations

import copy
import os
from collections import Counter

from ftutils.data import hygiene, tokens
from ftutils.data.findings import Finding, ValidationReport

RECOMMENDED_MIN = 50  # OpenAI: "clear improvements from fine-tuning on 50 to 100 examples"
UPPERCASE_RATIO = 1 / 3  # the legacy tool's threshold for "mostly upper case"
MAX_LABEL_CHARS = 40
SENTENCE_END = " .,!?;:)]}\"'"
FIXES = {
    "duplicate_example": "Drop the later copies.",
    "long_example": "Drop the examples over the limit (or shorten them by hand).",
    "missing_system_prompt": "Add the most common system prompt to the examples without one.",
    "inconsistent_system_prompt": "Use the most common system prompt everywhere.",
    "completion_common_prefix": "Strip the shared prefix from the replies; chat models do not need it.",
    "completion_common_suffix": "Strip the shared suffix (a legacy stop sequence); chat models stop on their own.",
    "prompt_common_suffix": "Strip the shared separator from the prompts; chat models do not need it.",
    "mostly_uppercase": "Lower-case the replies.",
}


def _messages(example) -> list:
    messages = example.get("messages") if isinstance(example, dict) else None
    return messages if isinstance(messages, list) else []


def _reply(example) -> dict | None:
    """The final assistant message, the one a chat example teaches."""
    messages = _messages(example)
    last = messages[-1] if messages else None
    return last if isinstance(last, dict) and last.get("role") == "assistant" and isinstance(last.get("content"), str) else None


def _last_user(example) -> dict | None:
    for message in reversed(_messages(example)):
        if isinstance(message, dict) and message.get("role") == "user":
            return message if isinstance(message.get("content"), str) else None
    return None


def _system(example) -> str | None:
    first = _messages(example)[0] if _messages(example) else None
    if isinstance(first, dict) and first.get("role") == "system" and isinstance(first.get("content"), str):
        return first["content"]
    return None


def _is_marker(text: str) -> bool:
    """Legacy-format debris: whitespace, punctuation or upper-case stop words (" END",
    "\\n\\n###\\n\\n"). A shared lower-case phrase ("Sorry about that, ") is the data's style."""
    return bool(text) and not any(c.islower() for c in text)


def _xfix(texts: list[str], suffix: bool) -> str:
    """The prefix (or suffix) every text shares, if at least two texts differ."""
    if len(set(texts)) < 2:
        return ""
    # Cut back to a word boundary: labels "refund" and "replace" share "re", not a prefix.
    if suffix:
        common = os.path.commonprefix([t[::-1] for t in texts])[::-1]
        i = next((k for k, c in enumerate(common) if not c.isalnum()), len(common))
        return common[i:]
    common = os.path.commonprefix(texts)
    i = next((k for k in range(len(common), 0, -1) if not common[k - 1].isalnum()), 0)
    return common[:i]


def _separator(common_suffix: str) -> str:
    """The punctuation-and-whitespace tail of the prompts' common suffix: the legacy
    separator ("\\n\\n###\\n\\n", " ->"); words before it are the user's own template."""
    i = len(common_suffix)
    while i and not common_suffix[i - 1].isalnum():
        i -= 1
    tail = common_suffix[i:]
    # Questions all ending in "?" (or notes in ")") are ordinary text, not a separator.
    return tail if set(tail) - set(SENTENCE_END) else ""


def _long_lines(examples, model) -> list[int]:
    counter = tokens.TokenCounter(model)
    limit = tokens.limits_for(model)[0].max_training_tokens
    return [i for i, ex in enumerate(examples, 1) if tokens.count_example(ex, counter=counter).total > limit]


def _duplicate_lines(examples) -> list[int]:
    df = hygiene.find_duplicates(examples, threshold=1.0)
    return sorted(set(df.loc[(df["kind"] == "exact") & df["same_answer"], "line_b"]))


def _common_system(examples) -> str | None:
    counts = Counter(s for s in map(_system, examples) if s is not None)
    return counts.most_common(1)[0][0] if counts else None


def _replies_and_prompts(examples):
    replies = [r["content"] for r in map(_reply, examples) if r]
    prompts = [u["content"] for u in map(_last_user, examples) if u]
    return replies, prompts


def _labels(replies: list[str]) -> Counter | None:
    """Label counts when the replies look like classification: short, few distinct values."""
    counts = Counter(r.strip() for r in replies)
    if len(replies) < 10 or len(counts) > max(2, len(replies) // 5):
        return None
    if any(len(label) > MAX_LABEL_CHARS or not label for label in counts):
        return None
    return counts


def advise(examples, model: str | None = None) -> ValidationReport:
    """Findings (all warnings) with a `fix` each where one applies; lines are 1-based positions."""
    examples = list(examples)
    report = ValidationReport(n_examples=len(examples), format="chat", model=model)
    add = lambda code, line, field, message: report.add(Finding(code, "warning", line, field, message, FIXES.get(code)))  # noqa: E731
    n = len(examples)
    if 0 < n < RECOMMENDED_MIN:
        add("few_examples", None, "", f"{n} examples; OpenAI sees clear improvements from {RECOMMENDED_MIN}-100 good ones")
    for line in _duplicate_lines(examples):
        add("duplicate_example", line, "messages", "an exact copy (after normalising case and punctuation) of an earlier example")
    limit = tokens.limits_for(model)[0].max_training_tokens
    for line in _long_lines(examples, model):
        add("long_example", line, "messages", f"longer than {limit:,} tokens, the training limit of "
            f"{tokens.base_model(model)}: training would cut it from the end")

    systems = [_system(ex) for ex in examples]
    present = [s for s in systems if s is not None]
    if present and len(present) < n:
        missing = [i for i, s in enumerate(systems, 1) if s is None]
        for line in missing:
            add("missing_system_prompt", line, "messages[0]",
                f"no system prompt, while {len(present)} of {n} examples have one")
    variants = Counter(present)
    if len(variants) > 1:
        common, count = variants.most_common(1)[0]
        first = next(i for i, s in enumerate(systems, 1) if s is not None and s != common)
        add("inconsistent_system_prompt", first, "messages[0].content",
            f"{len(variants)} different system prompts; the most common is used by {count} of {len(present)} examples")

    replies, prompts = _replies_and_prompts(examples)
    prefix, suffix = _xfix(replies, suffix=False), _xfix(replies, suffix=True)
    if _is_marker(prefix):
        add("completion_common_prefix", None, "messages[-1].content", f"every reply starts with {prefix!r}")
    if _is_marker(suffix):
        add("completion_common_suffix", None, "messages[-1].content", f"every reply ends with {suffix!r}")
    separator = _separator(_xfix(prompts, suffix=True))
    if separator:
        add("prompt_common_suffix", None, "messages[-2].content", f"every prompt ends with {separator!r}")
    letters = "".join(c for r in replies for c in r if c.isalpha())
    if letters and sum(c.isupper() for c in letters) / len(letters) > UPPERCASE_RATIO:
        share = sum(c.isupper() for c in letters) / len(letters)
        add("mostly_uppercase", None, "messages[-1].content", f"{share:.0%} of the letters in the replies are upper case")
    labels = _labels(replies)
    if labels:
        listing = ", ".join(f"{label}: {c}" for label, c in labels.most_common())
        add("classification_detected", None, "messages[-1].content",
            f"looks like classification into {len(labels)} labels ({listing}); evaluate with per-class scores"
            + ("; some labels occur once" if min(labels.values()) == 1 else ""))
    return report


def apply_fixes(examples, findings, accept, model: str | None = None) -> list[dict]:
    """A fixed copy of `examples` (the input is not changed), applying the fixes of the
    accepted codes. Each accepted code must be among `findings` (a list or a report)."""
    reported = {f.code for f in getattr(findings, "findings", findings)}
    model = model or getattr(findings, "model", None)
    accept = [accept] if isinstance(accept, str) else list(accept)
    for code in accept:
        if code not in FIXES:
            raise ValueError(f"no automatic fix for {code!r}; fixable: {', '.join(FIXES)}")
        if code not in reported:
            raise ValueError(f"{code!r} is not among the findings; nothing to fix")
    out = copy.deepcopy(list(examples))
    drop = set()
    if "duplicate_example" in accept:
        drop.update(_duplicate_lines(out))
    if "long_example" in accept:
        drop.update(_long_lines(out, model))
    common = _common_system(out)
    if common is not None and "missing_system_prompt" in accept:
        for ex in out:
            if _system(ex) is None and _messages(ex):
                ex["messages"].insert(0, {"role": "system", "content": common})
    if common is not None and "inconsistent_system_prompt" in accept:
        for ex in out:
            if _system(ex) is not None:
                ex["messages"][0]["content"] = common
    replies, prompts = _replies_and_prompts(out)
    prefix, suffix = _xfix(replies, suffix=False), _xfix(replies, suffix=True)
    separator = _separator(_xfix(prompts, suffix=True))
    for ex in out:
        reply, user = _reply(ex), _last_user(ex)
        if reply and "completion_common_prefix" in accept and _is_marker(prefix):
            reply["content"] = reply["content"][len(prefix):]
        if reply and "completion_common_suffix" in accept and _is_marker(suffix):
            reply["content"] = reply["content"][:len(reply["content"]) - len(suffix)]
        if user and "prompt_common_suffix" in accept and separator:
            user["content"] = user["content"][:len(user["content"]) - len(separator)]
        if reply and "mostly_uppercase" in accept:
            for message in _messages(ex):
                if isinstance(message, dict) and message.get("role") == "assistant" and isinstance(message.get("content"), str):
                    message["content"] = message["content"].lower()
    return [ex for i, ex in enumerate(out, 1) if i not in drop]
