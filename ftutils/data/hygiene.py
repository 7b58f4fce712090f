"""Data hygiene: duplicates, near duplicates, train/validation/test overlap, class balance.

Texts are compared after normalisation (case, Unicode form, punctuation and whitespace
folded), on the prompt side of each example (what the model is asked; the system prompt
is left out as it is usually shared). A prompt template shared by every example is cut
off first, or it would make every pair of short messages look alike.

Near duplicates are pairs whose character 5-gram sets have a Jaccard similarity at or
above the threshold. Comparing all pairs is quadratic, so candidates come from MinHash
(96 hashes) with LSH banding sized to the threshold (at 0.8: 24 bands x 4 rows, so a
pair at the threshold is a candidate with probability > 0.999), and each candidate is
then checked exactly.

Siblings. Two paraphrases of one request ("how long to get a replacement card" / "how long
will it take to get a new replacement card") are under 80 % alike by 5-grams, yet a model
that saw one in training answers the other from memory, not skill. `siblings` therefore
also compares word sets (Jaccard over the distinct words of the normalised prompts) at a
lower bar, 0.6: two 9-word queries sharing 7 words, i.e. a word or two swapped. Measured
on CLINC150's card and account intents (its own train vs test, 10 intents), pairs at or
above 0.6 are paraphrases of the same intent 12 times out of 13 (447 of 484), where pairs in
general are of the same intent 1 time in 10; at 0.5 it is 8 in 9 and at 0.4 4 in 5, so a
lower bar starts flagging queries that merely share "my card" with another intent's. The
5-gram rule alone flags 5 of those 300 test queries; the word-set rule flags 142.
"""
from __future__ import annotations

import os
import re
import unicodedata
import zlib
from collections import Counter, defaultdict

import numpy as np

from ftutils.data.findings import Finding, ValidationReport

SHINGLE = 5
WORD_THRESHOLD = 0.6  # why this value: the module docstring
N_HASHES = 96
# Bounds the candidate pairs (memory and time) on very uniform data, e.g. a tiny vocabulary.
MAX_BUCKET = 200
MIN_TEMPLATE_TEXTS = 5
_NON_WORD = re.compile(r"[\W_]+")
_rng = np.random.default_rng(20240718)  # fixed: the same data must give the same candidates
# Multiply-shift hashing needs full 64-bit odd multipliers: the product must wrap around
# 2**64, or the high bits just follow x's order and all 96 "hashes" pick the same shingle.
_A = _rng.integers(0, 2**64 - 1, N_HASHES, dtype=np.uint64, endpoint=True) | np.uint64(1)
_B = _rng.integers(0, 2**64 - 1, N_HASHES, dtype=np.uint64, endpoint=True)


def normalize(text: str) -> str:
    """Lower-case, NFKC, punctuation and runs of whitespace folded to one space."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _content(message) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _split(example) -> tuple[list, list]:
    """(prompt messages, reply messages) of a chat or preference example."""
    if not isinstance(example, dict):
        return [], []
    if isinstance(example.get("input"), dict):
        reply = example.get("preferred_output", example.get("preferred_completion"))
        return list(example["input"].get("messages") or []), list(reply) if isinstance(reply, list) else []
    messages = example.get("messages")
    messages = messages if isinstance(messages, list) else []
    cut = len(messages)
    while cut and isinstance(messages[cut - 1], dict) and messages[cut - 1].get("role") == "assistant":
        cut -= 1
    return messages[:cut], messages[cut:]


def prompt_text(example) -> str:
    prompt, _ = _split(example)
    return "\n".join(_content(m) for m in prompt if isinstance(m, dict) and m.get("role") != "system")


def answer_text(example) -> str:
    return "\n".join(_content(m) for m in _split(example)[1])


def _word_prefix(texts: list[str]) -> str:
    """The longest run of whole words every text starts with (normalised text: words are
    separated by single spaces)."""
    prefix = os.path.commonprefix(texts)
    if all(len(t) == len(prefix) or t[len(prefix)] == " " for t in texts):
        return prefix
    return prefix[:prefix.rfind(" ") + 1]


def _strip_template(texts: list[str]) -> list[str]:
    """Texts without the words every one of them starts (or ends) with.

    Only with MIN_TEMPLATE_TEXTS distinct texts or more: two tickets that both begin "my
    card was charged" share that by chance, not by template, and stripping it would hide
    that they are near duplicates."""
    if len(set(texts)) < MIN_TEMPLATE_TEXTS:
        return texts
    prefix = _word_prefix(texts)
    rest = [t[len(prefix):] for t in texts]
    suffix = _word_prefix([t[::-1] for t in rest])
    return [t[:len(t) - len(suffix)].strip() for t in rest]


def _shingles(text: str) -> set[str]:
    if len(text) <= SHINGLE:
        return {text}
    return {text[i:i + SHINGLE] for i in range(len(text) - SHINGLE + 1)}


def _words(text: str) -> set[str]:
    return set(text.split()) or {text}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _signatures(sets: list[set[str]]) -> np.ndarray:
    """MinHash signatures, one row of N_HASHES values per shingle set."""
    out = np.empty((len(sets), N_HASHES), dtype=np.uint64)
    for i, s in enumerate(sets):
        hashes = np.fromiter((zlib.crc32(x.encode()) for x in s), dtype=np.uint64, count=len(s))
        out[i] = ((np.outer(hashes, _A) + _B) >> np.uint64(32)).min(axis=0)
    return out


def _banding(threshold: float) -> tuple[int, int]:
    """(bands, rows) with the most rows per band (fewest false candidates) that still make
    a pair at exactly `threshold` a candidate with probability >= 0.999."""
    for rows in (12, 8, 6, 4, 3, 2, 1):
        bands = N_HASHES // rows
        if 1 - (1 - threshold ** rows) ** bands >= 0.999:
            return bands, rows
    return N_HASHES, 1


def _near_pairs(texts: list[str], threshold: float, keep=None, shingle=_shingles) -> list[tuple[int, int, float]]:
    """Pairs (i, j, similarity), i < j, of distinct texts at or above `threshold`.

    `keep(i, j)` filters candidate pairs before the exact check (overlap only wants
    pairs that cross parts); `shingle` makes the set compared (character 5-grams, or
    `_words`)."""
    sets = [shingle(t) for t in texts]
    sig = _signatures(sets)
    n = len(sets)
    bands, rows = _banding(threshold)
    candidates = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i, key in enumerate(map(bytes, sig[:, band * rows:(band + 1) * rows])):
            buckets[key].append(i)
        for members in buckets.values():
            if len(members) > MAX_BUCKET:
                continue  # a band shared by hundreds of distinct prompts does not discriminate
            for x, i in enumerate(members):
                candidates.update(i * n + j for j in members[x + 1:])
    if not candidates:
        return []
    flat = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
    left, right = flat // n, flat % n
    # The share of equal MinHash values estimates the Jaccard similarity (sd <= 0.05 with
    # 96 values); dropping pairs far below the threshold saves most exact set comparisons.
    estimate = np.concatenate([(sig[left[k:k + 50_000]] == sig[right[k:k + 50_000]]).mean(axis=1)
                               for k in range(0, len(flat), 50_000)])
    likely = estimate >= threshold - 0.2
    pairs = []
    for i, j in zip(left[likely].tolist(), right[likely].tolist()):
        if keep and not keep(i, j):
            continue
        sim = jaccard(sets[i], sets[j])
        if sim >= threshold:
            pairs.append((i, j, sim))
    return sorted(pairs)


def _check_threshold(threshold: float) -> None:
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")


def find_duplicates(examples, threshold: float = 0.8):
    """Pairs of examples with the same or nearly the same prompt.

    Columns: line_a, line_b (1-based, line_a < line_b), kind ("exact" after normalising,
    or "near"), similarity, same_answer. Exact copies pair with their first occurrence."""
    import pandas as pd

    _check_threshold(threshold)
    examples = list(examples)
    texts = _strip_template([normalize(prompt_text(e)) for e in examples])
    answers = [normalize(answer_text(e)) for e in examples]
    first: dict[str, int] = {}
    rows = []
    for i, text in enumerate(texts):
        if text in first:
            j = first[text]
            rows.append((j + 1, i + 1, "exact", 1.0, answers[i] == answers[j]))
        else:
            first[text] = i
    if threshold < 1:
        reps = list(first.values())
        for a, b, sim in _near_pairs([texts[i] for i in reps], threshold):
            i, j = reps[a], reps[b]
            rows.append((i + 1, j + 1, "near", round(sim, 3), answers[i] == answers[j]))
    rows.sort()
    return pd.DataFrame(rows, columns=["line_a", "line_b", "kind", "similarity", "same_answer"])


def duplicate_findings(examples, threshold: float = 0.8) -> list[Finding]:
    """duplicate_example / conflicting_answers / near_duplicate findings, at the later line."""
    out = []
    for r in find_duplicates(examples, threshold).itertuples():
        if r.kind == "exact" and r.same_answer:
            out.append(Finding("duplicate_example", "warning", r.line_b, "messages",
                               f"same prompt and answer as line {r.line_a}", "Drop the later copy."))
        elif r.kind == "exact":
            out.append(Finding("conflicting_answers", "warning", r.line_b, "messages",
                               f"same prompt as line {r.line_a} but a different answer",
                               "Decide which answer is right; contradicting examples teach the model to guess."))
        else:
            out.append(Finding("near_duplicate", "warning", r.line_b, "messages",
                               f"{r.similarity:.0%} similar to line {r.line_a}"
                               + ("" if r.same_answer else " with a different answer"),
                               "Keep one unless the difference matters."))
    return out


def overlap(train, validation, test=None, threshold: float = 0.8):
    """Examples of validation/test whose prompt also appears (or nearly) in another part.

    Columns: part_a, line_a, part_b, line_b, kind, similarity. A validation example seen
    in training makes the validation loss look better than the model is."""
    import pandas as pd

    _check_threshold(threshold)
    parts = [("train", list(train)), ("validation", list(validation or [])), ("test", list(test or []))]
    owner = [(name, k) for name, items in parts for k in range(len(items))]
    texts = _strip_template([normalize(prompt_text(e)) for _, items in parts for e in items])
    rows, first = [], {}
    for i, text in enumerate(texts):
        j = first.setdefault(text, i)
        if j != i and owner[j][0] != owner[i][0]:
            rows.append((owner[j][0], owner[j][1] + 1, owner[i][0], owner[i][1] + 1, "exact", 1.0))
    if threshold < 1:
        reps = sorted(first.values())
        for a, b, sim in _near_pairs([texts[i] for i in reps], threshold,
                                     keep=lambda a, b: owner[reps[a]][0] != owner[reps[b]][0]):
            i, j = reps[a], reps[b]
            rows.append((owner[i][0], owner[i][1] + 1, owner[j][0], owner[j][1] + 1, "near", round(sim, 3)))
    return pd.DataFrame(rows, columns=["part_a", "line_a", "part_b", "line_b", "kind", "similarity"])


def overlap_findings(train, validation, test=None, threshold: float = 0.8) -> list[Finding]:
    """split_overlap findings; `line` is in the later part (validation or test)."""
    return [Finding("split_overlap", "warning", r.line_b, "messages",
                    f"{r.part_b} line {r.line_b} is {'the same as' if r.kind == 'exact' else f'{r.similarity:.0%} similar to'} "
                    f"{r.part_a} line {r.line_a}", "Move or drop one copy so evaluation sees unseen data.")
            for r in overlap(train, validation, test, threshold).itertuples()]


RULES = {"5-gram": _shingles, "word set": _words}


def _similar_pairs(texts: list[str], thresholds: dict[str, float]) -> list[tuple[int, int, str, float]]:
    """(i, j, rule, similarity), i < j, of every pair of texts at or above a rule's threshold,
    exact copies included (similarity 1.0 under every rule).

    Copies are folded first and compared once: a text repeated hundreds of times would fill
    every MinHash bucket past MAX_BUCKET and hide its own near duplicates."""
    members: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(texts):
        members[text].append(i)
    groups = list(members.values())
    reps = [texts[g[0]] for g in groups]
    rows = []
    for rule, threshold in thresholds.items():
        _check_threshold(threshold)
        found = [(a, a, 1.0) for a in range(len(groups))]
        found += _near_pairs(reps, threshold, shingle=RULES[rule]) if threshold < 1 else []
        for a, b, sim in found:
            rows += [(min(i, j), max(i, j), rule, sim) for i in groups[a] for j in groups[b] if i != j
                     and (a != b or i < j)]
    return sorted(rows)


def siblings(train, validation=None, test=None, threshold: float = 0.8, word_threshold: float = WORD_THRESHOLD):
    """Validation and test examples with a close sibling in train, and the closest one.

    One row per item and rule that fires: part, line, rule ("5-gram": character 5-gram
    Jaccard >= `threshold`, the near-duplicate rule; "word set": word-set Jaccard >=
    `word_threshold`), similarity, train_line, text, sibling (the normalised prompts), n_siblings
    (train items over the bar), same_answer. A test item with a sibling in train measures
    memory, not skill; a group-aware split (`split_dataset(..., keep_similar_together=True)`)
    keeps siblings on one side."""
    import pandas as pd

    parts = [("train", list(train)), ("validation", list(validation or [])), ("test", list(test or []))]
    owner = [(name, k) for name, items in parts for k in range(len(items))]
    examples = [e for _, items in parts for e in items]
    texts = _strip_template([normalize(prompt_text(e)) for e in examples])
    best: dict[tuple[int, str], list] = {}
    for i, j, rule, sim in _similar_pairs(texts, {"5-gram": threshold, "word set": word_threshold}):
        if (owner[i][0] == "train") == (owner[j][0] == "train"):
            continue
        item, sib = (j, i) if owner[i][0] == "train" else (i, j)
        row = best.setdefault((item, rule), [sim, sib, 0])
        row[2] += 1
        if (sim, -sib) > (row[0], -row[1]):  # closest; the earlier train line on a tie
            row[:2] = sim, sib
    out = [(owner[item][0], owner[item][1] + 1, rule, round(sim, 3), owner[sib][1] + 1, texts[item], texts[sib], n,
            normalize(answer_text(examples[item])) == normalize(answer_text(examples[sib])))
           for (item, rule), (sim, sib, n) in best.items()]
    order = {"validation": 0, "test": 1}
    out.sort(key=lambda r: (order[r[0]], r[1], r[2]))
    return pd.DataFrame(out, columns=["part", "line", "rule", "similarity", "train_line", "text", "sibling",
                                      "n_siblings", "same_answer"])


def sibling_findings(train, validation=None, test=None, threshold: float = 0.8,
                     word_threshold: float = WORD_THRESHOLD) -> list[Finding]:
    """train_sibling findings for items whose words nearly match a training item's, when the
    5-gram rule did not already flag them (overlap_findings does: no double count)."""
    df = siblings(train, validation, test, threshold, word_threshold)
    flagged = set(zip(df.loc[df["rule"] == "5-gram", "part"], df.loc[df["rule"] == "5-gram", "line"]))
    return [Finding("train_sibling", "warning", r.line, "messages",
                    f"{r.part} line {r.line} shares {r.similarity:.0%} of its words with train line {r.train_line}"
                    + (f" and {r.n_siblings - 1} more" if r.n_siblings > 1 else "") + f": {r.text!r} ~ {r.sibling!r}",
                    "Scores on such items measure memory; split with keep_similar_together=True.")
            for r in df[df["rule"] == "word set"].itertuples() if (r.part, r.line) not in flagged]


def similar_groups(examples, threshold: float = 0.8, word_threshold: float = WORD_THRESHOLD) -> list[int]:
    """A group number per example: examples linked by a chain of siblings (either rule)
    share one, numbered by their first member's position. For a group-aware split."""
    examples = list(examples)
    texts = _strip_template([normalize(prompt_text(e)) for e in examples])
    parent = list(range(len(texts)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j, _, _ in _similar_pairs(texts, {"5-gram": threshold, "word set": word_threshold}):
        a, b = root(i), root(j)
        parent[max(a, b)] = min(a, b)
    return [root(i) for i in range(len(texts))]


def class_balance(labels):
    """Per-class counts, largest first: label, count, fraction."""
    import pandas as pd

    counts = Counter(labels).most_common()
    total = sum(c for _, c in counts) or 1
    return pd.DataFrame([(label, c, round(c / total, 4)) for label, c in counts], columns=["label", "count", "fraction"])


def imbalance_findings(labels, min_ratio: float = 0.2) -> list[Finding]:
    """class_imbalance when a class has fewer than `min_ratio` times the largest class's examples."""
    df = class_balance(labels)
    if len(df) < 2:
        return []
    largest = int(df["count"].iloc[0])
    small = df[df["count"] < min_ratio * largest]
    if small.empty:
        return []
    listing = ", ".join(f"{r.label}: {r.count}" for r in small.itertuples())
    return [Finding("class_imbalance", "warning", None, "label",
                    f"{len(small)} class(es) below {min_ratio:.0%} of the largest ({df['label'].iloc[0]}: {largest}): {listing}",
                    "Add examples of the rare classes, or check per-class scores in evaluation.")]


def check(train, validation=None, test=None, label_key: str = "label", threshold: float = 0.8,
          min_ratio: float = 0.2, word_threshold: float | None = WORD_THRESHOLD) -> ValidationReport:
    """All hygiene findings for a dataset (duplicates within train, overlap, siblings in
    train of validation/test items unless `word_threshold` is None, class balance)."""
    train = list(train)
    report = ValidationReport(n_examples=len(train), format="chat")
    for finding in duplicate_findings(train, threshold):
        report.add(finding)
    if validation or test:
        for finding in overlap_findings(train, validation, test, threshold):
            report.add(finding)
        if word_threshold is not None:
            for finding in sibling_findings(train, validation, test, threshold, word_threshold):
                report.add(finding)
    labels = [e.get(label_key) for e in train if isinstance(e, dict) and e.get(label_key) is not None]
    if labels:
        for finding in imbalance_findings(labels, min_ratio):
            report.add(finding)
    return report
