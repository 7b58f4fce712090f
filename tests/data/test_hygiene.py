"""ftutils.data.hygiene: duplicates, near duplicates (checked against brute force), overlap, balance."""
from __future__ import annotations

import itertools
import random

import pytest

from ftutils.data import hygiene

TEMPLATE = "Classify this support message:\n{}"


def _ex(text, answer="billing", system="You label tickets."):
    return {"messages": [{"role": "system", "content": system}, {"role": "user", "content": text},
                         {"role": "assistant", "content": answer}]}


def test_normalize_folds_case_punctuation_whitespace_and_unicode_forms():
    assert hygiene.normalize("  Hello,   WORLD!!\n") == "hello world"
    assert hygiene.normalize("ｆｕｌｌ－width") == hygiene.normalize("full width")


def test_exact_duplicates_after_normalising_and_conflicting_answers():
    examples = [_ex("My card was charged twice."), _ex("Where is my parcel?", "shipping"),
                _ex("my card was CHARGED twice"), _ex("Where is my parcel", "refund")]
    df = hygiene.find_duplicates(examples)
    assert df[["line_a", "line_b", "kind", "same_answer"]].values.tolist() == [
        [1, 3, "exact", True], [2, 4, "exact", False]]
    findings = hygiene.duplicate_findings(examples)
    assert [(f.code, f.line, f.severity) for f in findings] == [
        ("duplicate_example", 3, "warning"), ("conflicting_answers", 4, "warning")]
    assert "line 1" in findings[0].message and "line 2" in findings[1].message


def test_near_duplicate_found_unrelated_text_not():
    base = "I ordered the blue hiking jacket two weeks ago and it still has not arrived at my flat in Leeds"
    examples = [_ex(base), _ex(base.replace("two weeks", "three weeks")), _ex("How do I reset my password on the app?"),
                _ex("The checkout page shows an error when I pay with PayPal")]
    df = hygiene.find_duplicates(examples)
    assert df[["line_a", "line_b", "kind"]].values.tolist() == [[1, 2, "near"]]
    assert 0.8 <= df.loc[0, "similarity"] < 1
    assert [f.code for f in hygiene.duplicate_findings(examples)] == ["near_duplicate"]


def test_a_shared_template_does_not_make_short_messages_look_alike():
    texts = ["refund please", "where is parcel", "login broken", "cancel my plan", "app crashes", "wrong size"]
    examples = [_ex(TEMPLATE.format(t)) for t in texts]
    assert hygiene.find_duplicates(examples, threshold=0.5).empty


def test_a_prefix_two_messages_share_by_chance_is_not_a_template():
    examples = [_ex("My card was charged twice for order 1234"), _ex("my card was charged twice for order 1235!")]
    assert hygiene.find_duplicates(examples)[["line_a", "line_b", "kind"]].values.tolist() == [[1, 2, "near"]]


def _brute_force(texts, threshold):
    sets = [hygiene._shingles(t) for t in texts]
    return {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
            if texts[i] != texts[j] and hygiene.jaccard(sets[i], sets[j]) >= threshold}


def test_lsh_finds_the_same_near_pairs_as_comparing_every_pair():
    rng = random.Random(3)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 8))) for _ in range(400)]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(10, 25))) for _ in range(250)]
    for k in range(40):  # plant near copies: one or two words changed
        source = texts[rng.randrange(250)].split()
        for _ in range(rng.randint(1, 2)):
            source[rng.randrange(len(source))] = rng.choice(words)
        texts.append(" ".join(source))
    examples = [{"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "x"}]} for t in texts]
    found = hygiene.find_duplicates(examples, threshold=0.7)
    near = {(a - 1, b - 1) for a, b, kind in found[["line_a", "line_b", "kind"]].values if kind == "near"}
    expected = _brute_force([hygiene.normalize(t) for t in texts], 0.7)
    assert len(expected) >= 25
    assert near == expected


def test_overlap_between_parts():
    parcel = "The parcel arrived damaged yesterday, the box was crushed and {} on one side; please send a new jacket"
    train = [_ex("My card was charged twice"), _ex(parcel.format("wet"))]
    validation = [_ex("Totally new question about invoices"), _ex("my card was charged TWICE!")]
    test = [_ex(parcel.format("soaked"))]
    df = hygiene.overlap(train, validation, test)
    assert df[["part_a", "line_a", "part_b", "line_b", "kind"]].values.tolist() == [
        ["train", 1, "validation", 2, "exact"], ["train", 2, "test", 1, "near"]]
    findings = hygiene.overlap_findings(train, validation, test)
    assert [(f.code, f.line) for f in findings] == [("split_overlap", 2), ("split_overlap", 1)]
    assert findings[0].message == "validation line 2 is the same as train line 1"
    assert hygiene.overlap(train, [_ex("unrelated")]).empty


def test_class_balance_and_imbalance_finding():
    labels = ["billing"] * 50 + ["shipping"] * 30 + ["cancel"] * 4
    df = hygiene.class_balance(labels)
    assert df.values.tolist() == [["billing", 50, 0.5952], ["shipping", 30, 0.3571], ["cancel", 4, 0.0476]]
    [finding] = hygiene.imbalance_findings(labels, min_ratio=0.2)
    assert (finding.code, finding.line, finding.field) == ("class_imbalance", None, "label")
    assert "cancel: 4" in finding.message and "billing: 50" in finding.message
    assert hygiene.imbalance_findings(labels, min_ratio=0.05) == []
    assert hygiene.imbalance_findings(["a"] * 10) == []


def test_check_collects_everything_into_a_report():
    rng = random.Random(5)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6)) for _ in range(200)]
    train = [dict(_ex(" ".join(rng.sample(words, 12)), "a" if i < 18 else "b"), label="a" if i < 18 else "b")
             for i in range(20)]
    train.append(dict(train[0]))
    report = hygiene.check(train, validation=[train[1]])
    assert sorted(report.counts) == ["class_imbalance", "duplicate_example", "split_overlap"]
    assert report.ok  # hygiene findings are warnings


def test_bad_threshold():
    with pytest.raises(ValueError, match="threshold"):
        hygiene.find_duplicates([_ex("a")], threshold=0)


def test_a_planted_paraphrase_in_train_is_a_word_set_sibling_not_a_near_duplicate():
    train = [_ex("how long does it take to get a replacement card", "replacement_card_duration"),
             _ex("why was my card declined at the store", "card_declined"),
             _ex("How long does it take to get a replacement card?", "replacement_card_duration")]  # a copy
    test = [_ex("how long will it take to get a new replacement card", "replacement_card_duration"),
            _ex("can you freeze my bank account", "freeze_account")]
    df = hygiene.siblings(train, test=test)
    # 9 shared words of 12 distinct: 0.75; by character 5-grams the two are under 0.8.
    assert df[["part", "line", "rule", "similarity", "train_line", "n_siblings", "same_answer"]].values.tolist() == [
        ["test", 1, "word set", 0.75, 1, 2, True]]
    assert df.loc[0, "text"] == "how long will it take to get a new replacement card"
    assert df.loc[0, "sibling"] == "how long does it take to get a replacement card"
    assert hygiene.overlap(train, [], test).empty  # the 80 % 5-gram rule alone misses it
    [finding] = hygiene.sibling_findings(train, test=test)
    assert (finding.code, finding.line, finding.severity) == ("train_sibling", 1, "warning")
    assert finding.message.startswith("test line 1 shares 75% of its words with train line 1 and 1 more")
    assert hygiene.siblings(train, test=test, word_threshold=0.8).empty


def test_siblings_report_both_rules_and_check_does_not_count_an_item_twice():
    parcel = "the parcel arrived damaged yesterday and the box was crushed and {} on one side"
    train = [_ex(parcel.format("wet")), _ex("where can i see my pin")]
    validation = [_ex(parcel.format("soaked"), "refund"), _ex("where can i change my pin")]
    df = hygiene.siblings(train, validation)
    assert df[["part", "line", "rule", "train_line", "same_answer"]].values.tolist() == [
        ["validation", 1, "5-gram", 1, False], ["validation", 1, "word set", 1, False],
        ["validation", 2, "word set", 2, True]]
    assert df["similarity"].tolist()[1:] == [round(12 / 14, 3), round(5 / 7, 3)]  # distinct words
    report = hygiene.check(train, validation)
    assert [(f.code, f.line) for f in report.findings] == [("split_overlap", 1), ("train_sibling", 2)]
    assert "train_sibling" not in hygiene.check(train, validation, word_threshold=None).counts


def test_word_set_siblings_match_comparing_every_pair():
    rng = random.Random(11)
    words = [f"w{k}" for k in range(60)]  # a small vocabulary, like short real queries
    train_texts = [" ".join(rng.sample(words, rng.randint(4, 10))) for _ in range(150)]
    test_texts = [" ".join(rng.sample(words, rng.randint(4, 10))) for _ in range(40)]
    for k in range(15):  # plant siblings: a train query with a word swapped
        q = rng.choice(train_texts).split()
        q[rng.randrange(len(q))] = rng.choice(words)
        test_texts.append(" ".join(q))
    user = lambda t: {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "x"}]}  # noqa: E731
    df = hygiene.siblings([user(t) for t in train_texts], test=[user(t) for t in test_texts], word_threshold=0.6)
    got = {line: (sim, n) for line, rule, sim, n in df[["line", "rule", "similarity", "n_siblings"]].values
           if rule == "word set"}
    expected = {}
    for k, t in enumerate(test_texts):
        sims = [hygiene.jaccard(set(t.split()), set(u.split())) for u in train_texts]
        over = [s for s in sims if s >= 0.6]
        if over:
            expected[k + 1] = (round(max(over), 3), len(over))
    assert len(expected) >= 15
    assert got == expected


def test_similar_groups_follow_chains_of_siblings():
    texts = ["can you freeze my bank account", "can you please freeze my bank account",
             "please freeze my bank account now", "why was my card declined", "why was my card declined",
             "what is the status of my new card"]
    groups = hygiene.similar_groups([_ex(t) for t in texts])
    # 1~2 (6/7 words), 2~3 (5/8: 0.625), 1 and 3 only 4/8 alike: one group through the chain.
    assert groups == [0, 0, 0, 3, 3, 5]
    assert hygiene.similar_groups([_ex(t) for t in texts], word_threshold=0.7) == [0, 0, 2, 3, 3, 5]
