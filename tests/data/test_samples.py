"""The committed sample data: the CLINC150 subset is what README.md and make_clinc_sample.py
say it is (and the leakage the split cannot hide is really in it), and the validator finds
every problem planted in broken_train.jsonl exactly where README.md says."""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter

import pandas as pd
import pytest

from ftutils.data import hygiene
from ftutils.data.convert import from_text_label
from ftutils.data.split import split_dataset
from ftutils.data.validate import validate_file
from tests.conftest import ROOT

SAMPLES = ROOT / "data" / "samples"
# line -> code, as listed in README.md.
PLANTED = {2: "invalid_json", 3: "missing_messages", 4: "unknown_role", 5: "invalid_weight",
           6: "missing_assistant_message", 8: "empty_content", 9: "special_token", 10: "unrecognized_key",
           11: "legacy_prompt_completion", 12: "missing_role", 13: "missing_content", 14: "not_an_object",
           15: "empty_messages"}
CLEAN_LINES = {1, 7, 16, 17}
# `split` column -> the CLINC lists its rows may come from (CLINC's splits are never mixed).
SOURCES = {"train": {"train"}, "validation": {"val"}, "test": {"test", "oos_test"}, "pool": {"oos_train", "oos_val"}}


def _script():
    spec = importlib.util.spec_from_file_location("make_clinc_sample", SAMPLES / "make_clinc_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clinc() -> pd.DataFrame:
    return pd.read_csv(SAMPLES / "clinc150_subset.csv", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def parts(clinc) -> dict[str, list[dict]]:
    return {p: from_text_label(clinc[clinc["split"] == p], id="id") for p in ("train", "validation", "test", "pool")}


def test_subset_has_the_planned_rows_of_each_intent_from_clinc_own_splits(clinc):
    script = _script()
    assert tuple(clinc.columns) == script.COLUMNS == ("id", "text", "label", "split", "clinc_split")
    assert clinc["id"].is_unique and not clinc["text"].duplicated().any()
    assert (clinc["id"].str.rsplit("-", n=1).str[0] == clinc["clinc_split"]).all()  # ids trace back to CLINC
    assert all(set(g) <= SOURCES[part] for part, g in clinc.groupby("split")["clinc_split"])
    table = pd.crosstab(clinc["label"], clinc["split"])
    intents = list(script.INTENTS)
    assert sorted(table.index) == sorted(intents + ["out_of_scope"])
    assert (table.loc[intents, ["train", "validation", "test", "pool"]].values == [20, 8, 10, 0]).all()
    assert table.loc["out_of_scope"].to_dict() == {"train": 0, "validation": 0, "test": 40, "pool": 28}
    assert all(re.fullmatch(r"[a-z_]+", label) for label in table.index)  # short answers a small model can emit
    words = clinc["text"].str.split().str.len()
    assert words.min() >= 2 and words.max() <= 30 and (clinc["text"] == clinc["text"].str.strip()).all()


def test_readme_names_source_license_and_command_and_its_table_matches(clinc):
    readme = (SAMPLES / "README.md").read_text()
    for needle in ("Larson et al.", "An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction",
                   "EMNLP-IJCNLP", "CC BY 3.0", "LICENSE-CLINC150",
                   "python data/samples/make_clinc_sample.py ../shared/datasets/clinc150/data_full.json"):
        assert needle in " ".join(readme.split()), needle  # wherever the lines wrap
    license_text = (SAMPLES / "LICENSE-CLINC150").read_text()
    assert "Attribution 3.0 Unported" in license_text and len(license_text) > 10_000
    rows = re.findall(r"^\| `([a-z_]+)` \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", readme, re.M)
    table = pd.crosstab(clinc["label"], clinc["split"]).reindex(columns=["train", "validation", "test", "pool"])
    assert {label: tuple(map(int, n)) for label, *n in rows} == {
        label: tuple(int(v) for v in r) for label, r in table.iterrows()}
    assert f"{len(clinc)} rows" in readme


def test_script_is_seeded_keeps_clinc_order_and_traces_each_row():
    script = _script()
    fake = {key: [[f"{key} query {i} about {intent}", intent] for i in range(60) for intent in ("x", "y", "oos")]
            for key in ("train", "val", "test", "oos_train", "oos_val", "oos_test")}
    plan = (("train", None, "train", 5), ("test", None, "test", 2), ("oos_test", "out_of_scope", "test", 3))
    rows = script.select(fake, intents=("x", "y"), plan=plan, seed=1)
    assert rows == script.select(fake, intents=("x", "y"), plan=plan, seed=1)
    assert rows != script.select(fake, intents=("x", "y"), plan=plan, seed=2)
    assert Counter((r["split"], r["label"]) for r in rows) == {
        ("train", "x"): 5, ("train", "y"): 5, ("test", "x"): 2, ("test", "y"): 2, ("test", "out_of_scope"): 3}
    for r in rows:
        key, i = r["id"].rsplit("-", 1)
        assert key == r["clinc_split"] and fake[key][int(i)][0] == r["text"]
        assert fake[key][int(i)][1] == ("oos" if r["label"] == "out_of_scope" else r["label"])
    with pytest.raises(ValueError, match="train has 60 rows of 'x', 61 wanted"):
        script.select(fake, intents=("x",), plan=(("train", None, "train", 61),))


def test_script_writes_the_csv_from_a_data_full_file(tmp_path, capsys):
    script = _script()
    fake = {key: [[f"{key} {i} {intent}", intent] for i in range(40) for intent in (*script.INTENTS, "oos")]
            for key in ("train", "val", "test", "oos_train", "oos_val", "oos_test")}
    (tmp_path / "data_full.json").write_text(json.dumps(fake))
    script.main([str(tmp_path / "data_full.json"), "--out", str(tmp_path / "subset.csv")])
    written = pd.read_csv(tmp_path / "subset.csv", dtype=str, keep_default_na=False)
    assert written.to_dict("records") == script.select(fake)
    assert "wrote 372 rows" in capsys.readouterr().out


def _test_items_with_a_sibling(train, validation, test) -> dict[str, int]:
    df = hygiene.siblings(train, validation, test)
    df = df[df["part"] == "test"]
    return {rule: df.loc[df["rule"] == rule, "line"].nunique() for rule in ("5-gram", "word set")}


def test_the_5gram_rule_misses_siblings_a_group_aware_split_removes(parts):
    """The leakage numbers of data/samples/README.md (printed with -s)."""
    own = _test_items_with_a_sibling(parts["train"], parts["validation"], parts["test"])
    in_scope = [e for p in ("train", "validation", "test") for e in parts[p] if e["label"] != "out_of_scope"]
    plain = split_dataset(in_scope, validation=8 / 38, test=10 / 38, seed=42)
    grouped = split_dataset(in_scope, validation=8 / 38, test=10 / 38, seed=42, keep_similar_together=True)
    counts = {"clinc": own, "plain": _test_items_with_a_sibling(*plain),
              "grouped": _test_items_with_a_sibling(*grouped)}
    print(counts)
    assert own["5-gram"] <= 2 and own["word set"] >= 10  # CLINC's disjoint splits still hold paraphrases
    assert plain.stratified and counts["plain"]["word set"] >= 10
    assert counts["grouped"] == {"5-gram": 0, "word set": 0}
    assert hygiene.siblings(*grouped).empty  # validation too
    assert grouped.stratified and grouped.note is None
    for part, n in zip(grouped, (20, 8, 10)):
        assert set(Counter(e["label"] for e in part).values()) == {n}


def test_a_bag_of_words_baseline_learns_the_intents_but_does_not_ace_them(parts):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    text = lambda part: [e["messages"][0]["content"] for e in part if e["label"] != "out_of_scope"]  # noqa: E731
    label = lambda part: [e["label"] for e in part if e["label"] != "out_of_scope"]  # noqa: E731
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), LogisticRegression(max_iter=2000))
    # One BLAS thread: on a busy 2-core machine lbfgs with a thread per core runs ~80x slower.
    with threadpool_limits(1):
        model.fit(text(parts["train"]), label(parts["train"]))
        accuracy = model.score(text(parts["test"]), label(parts["test"]))
    assert 0.6 <= accuracy <= 0.95  # eight intents: chance is 0.125; confusable, so not 1.0


def test_validator_reports_each_planted_problem_at_its_line():
    report = validate_file(SAMPLES / "broken_train.jsonl")
    by_line: dict[int, set[str]] = {}
    for f in report.findings:
        by_line.setdefault(f.line, set()).add(f.code)
    assert by_line == {line: {code} for line, code in PLANTED.items()}
    assert not CLEAN_LINES & by_line.keys()
    assert not report.ok
    assert len(report.errors) == 12 and [f.code for f in report.warnings] == ["unrecognized_key"]
    assert report.n_examples == 15 and report.format == "chat"
    fields = {f.line: f.field for f in report.findings}
    assert fields[4] == "messages[1].role" and fields[5] == "messages[2].weight" and fields[10] == "label"


def test_readme_lists_the_same_lines_and_codes():
    readme = (SAMPLES / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \|.*\| `([a-z_]+)` \| (error|warning) \|$", readme, re.M)
    assert {int(line): code for line, code, _ in rows} == PLANTED
