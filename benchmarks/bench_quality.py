"""Does the fine-tune earn its place? SmolLM2 fine-tuned with default hyperparameters
against TF-IDF + logistic regression, on CLINC150 intents that are easy to confuse.

Each subset has `--intents` intents, `--train` training queries per intent and a test
split; both candidates learn from the same training rows and are scored on the same test
rows. The fine-tune answers by generation (greedy, as the notebooks ask it), its answer
mapped to a label by `ftutils.evaluate.classify.normalize_answer`; the system prompt
lists the labels (02_prepare's default prompt does not name them). Training goes through
the real trainer (`ftutils.local.training.loop.train`) with OpenAI's "auto" hyperparameters and
our defaults.

Source (positional argument):
  a CSV like data/samples/clinc150_subset.csv (the default): its own train/test split,
      in-scope rows only (out-of-scope queries have no intent to learn here), one subset;
  a CLINC150 JSON (data_full.json, `[text, intent]` lists): `--subsets` subsets drawn with
      `--seed`, each a random intent and the `--intents - 1` intents closest to it (cosine
      of TF-IDF centroids of their training queries, so the words overlap), with `--train`
      training and `--test` test queries per intent from CLINC's own splits.

Target (issue #9): fine-tune >= TF-IDF + 5 accuracy points. `--set name=value` overrides
a TrainConfig field (e.g. `--set lora_r=16 --set base_learning_rate=2e-4`) or a job
hyperparameter (`n_epochs`, `batch_size`, `learning_rate_multiplier`; auto otherwise) to
compare defaults before and after; `--only K` runs subset K alone (split the subsets over
processes with `--set num_threads=1` each).

Measured 2026-12-02 (data_full.json, seed 0, 240 test queries a subset; auto = 3 epochs,
batch 1, multiplier 2; one thread each, two runs at a time):
  near report_fraud  TF-IDF 0.925; fine-tune 0.938 (+1.2), multiplier 0.5: 0.842, 4: 0.925,
                     5 epochs: 0.958 (+3.3)
  near routing       TF-IDF 0.963; fine-tune 0.954 (-0.8)
  near book_hotel    TF-IDF 0.963; fine-tune 0.971 (+0.8)
Where TF-IDF already scores 0.963, +5 points would need 101 %: on two of these three
subsets the target cannot be met by any model. The default multiplier is the best of the
three tried; more epochs helped on the one subset with room (5 vs 3: 5 more right of 240),
but the auto epochs are OpenAI's rule and stay.

    .venv/bin/python benchmarks/bench_quality.py [SOURCE] [--subsets 3] [--only K ...] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ftutils.threads  # noqa: F401  (before torch loads)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ftutils.data.convert import from_text_label  # noqa: E402
from ftutils.evaluate.baseline import classify_baseline  # noqa: E402
from ftutils.evaluate.candidates import TestExample  # noqa: E402
from ftutils.evaluate.classify import normalize_answer  # noqa: E402
from ftutils.local.models import catalog  # noqa: E402
from ftutils.local.training.config import SilentSink  # noqa: E402
from ftutils.openai_rules import Hyperparameters  # noqa: E402

SMOLLM2 = catalog.default_model()

DEFAULT_SOURCE = ROOT / "data" / "samples" / "clinc150_subset.csv"
OUT_OF_SCOPE = {"oos", "out_of_scope"}
TARGET_POINTS = 5.0


def system_prompt(labels: list[str]) -> str:
    # Every label named, the answer asked for alone.
    return (f"Classify the request into exactly one intent: {', '.join(labels[:-1])} "
            f"or {labels[-1]}. Answer with the intent only.")


def subsets_from_csv(path: Path) -> list[tuple[str, list[dict], list[dict]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["label"] not in OUT_OF_SCOPE]
    return [(path.name, [r for r in rows if r["split"] == "train"], [r for r in rows if r["split"] == "test"])]


def subsets_from_json(path: Path, n_subsets: int, n_intents: int, n_train: int, n_test: int, seed: int):
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    data = json.loads(path.read_text(encoding="utf-8"))
    by_intent: dict[str, dict[str, list[str]]] = {}
    for split in ("train", "test"):
        for text, intent in data[split]:
            by_intent.setdefault(intent, {"train": [], "test": []})[split].append(text)
    intents = sorted(i for i in by_intent if i not in OUT_OF_SCOPE)
    vectors = TfidfVectorizer(sublinear_tf=True).fit([t for i in intents for t in by_intent[i]["train"]])
    centroids = np.vstack([np.asarray(vectors.transform(by_intent[i]["train"]).mean(axis=0)) for i in intents])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    similarity = centroids @ centroids.T
    rng = random.Random(seed)
    out = []
    for seed_intent in rng.sample(range(len(intents)), n_subsets):
        chosen = sorted(intents[j] for j in np.argsort(-similarity[seed_intent])[:n_intents])
        # Each subset draws its rows with its own generator, so a subset is the same rows whatever --subsets is
        # (with one shared generator, --subsets 1 and 3 drew different rows for the same intents).
        rows_rng = random.Random(f"{seed}:{intents[seed_intent]}")
        train_rows, test_rows = [], []
        for intent in chosen:
            train_rows += [{"text": t, "label": intent} for t in rows_rng.sample(by_intent[intent]["train"], n_train)]
            test_rows += [{"text": t, "label": intent} for t in rows_rng.sample(by_intent[intent]["test"], n_test)]
        out.append((f"near {intents[seed_intent]}", train_rows, test_rows))
    return out


def fine_tune_accuracy(train_rows, test_rows, labels, data_dir, overrides, seed) -> dict:
    from ftutils.local.inference.engine import InferenceEngine
    from ftutils.local.training.config import TrainConfig
    from ftutils.local.training.loop import train

    system = system_prompt(labels)
    examples = from_text_label(train_rows, system_prompt=system)
    # n_epochs, batch_size and learning_rate_multiplier are job hyperparameters (auto unless --set names them).
    job_keys = ("n_epochs", "batch_size", "learning_rate_multiplier")
    hp = Hyperparameters(**{k: overrides[k] for k in job_keys if k in overrides}).resolve(len(examples))
    overrides = {k: v for k, v in overrides.items() if k not in job_keys}
    with tempfile.TemporaryDirectory() as tmp:
        train_file = Path(tmp) / "train.jsonl"
        train_file.write_text("".join(json.dumps({"messages": e["messages"]}) + "\n" for e in examples))
        config = TrainConfig(base_model=SMOLLM2, data_dir=data_dir, train_file=train_file, output_dir=Path(tmp) / "job",
                             n_epochs=hp.n_epochs, batch_size=hp.batch_size,
                             learning_rate_multiplier=hp.learning_rate_multiplier, seed=seed, **overrides)
        started = time.perf_counter()
        result = train(config, _QuietSink())
        train_seconds = time.perf_counter() - started
        engine = InferenceEngine(data_dir)
        started = time.perf_counter()
        exact = right = 0
        for row in test_rows:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": row["text"]}]
            text = engine.generate(SMOLLM2, result.adapter_dir, messages, temperature=0,
                                   max_tokens=16).choices[0].text
            exact += text.strip() == row["label"]
            right += normalize_answer(text, labels)[0] == row["label"]
        eval_seconds = time.perf_counter() - started
    return {"accuracy": right / len(test_rows), "exact": exact / len(test_rows), "train_seconds": train_seconds,
            "eval_seconds": eval_seconds, "steps": result.steps, "hp": hp, "loss": result.final_metrics.get("train_loss")}


class _QuietSink(SilentSink):
    def on_message(self, level, message):
        if level == "warn":
            print(f"  [{level}] {message}", flush=True)


def baseline_accuracy(train_rows, test_rows, seed) -> float:
    as_examples = lambda rows: [TestExample(f"ex-{i}", r["label"], [{"role": "user", "content": r["text"]}])  # noqa: E731
                                for i, r in enumerate(rows)]
    result = classify_baseline(as_examples(train_rows), as_examples(test_rows), seed)
    return sum(p.pred == p.label for p in result.predictions) / len(test_rows)


def parse_overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        out[name] = json.loads(value) if value[:1] in "0123456789-[{tf" or value in ("null",) else value
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", default=str(DEFAULT_SOURCE))
    parser.add_argument("--subsets", type=int, default=3)
    parser.add_argument("--intents", type=int, default=8)
    parser.add_argument("--train", type=int, default=20, help="training queries per intent")
    parser.add_argument("--test", type=int, default=30, help="test queries per intent (JSON source)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, nargs="+", metavar="K",
                        help="run only these subsets (0-based) of the --subsets drawn, e.g. to split them across processes")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a TrainConfig field")
    parser.add_argument("--data-dir", default=os.environ.get("FTUTILS_DATA_DIR", str(Path.home() / ".ftutils" / "local")))
    args = parser.parse_args()
    source = Path(args.source)
    overrides = parse_overrides(args.set)
    subsets = (subsets_from_json(source, args.subsets, args.intents, args.train, args.test, args.seed)
               if source.suffix == ".json" else subsets_from_csv(source))
    if args.only:
        subsets = [subsets[k] for k in args.only]
    print(f"source {source}, trainer overrides {overrides or 'none (defaults)'}")
    leads = []
    for name, train_rows, test_rows in subsets:
        labels = sorted({r["label"] for r in train_rows})
        tfidf = baseline_accuracy(train_rows, test_rows, args.seed)
        tuned = fine_tune_accuracy(train_rows, test_rows, labels, args.data_dir, overrides, args.seed)
        lead = 100 * (tuned["accuracy"] - tfidf)
        leads.append(lead)
        hp = tuned["hp"]
        print(f"{name}: {len(labels)} intents {labels}, {len(train_rows)} train / {len(test_rows)} test; "
              f"job {hp.n_epochs} epochs, batch {hp.batch_size}, lr x{hp.learning_rate_multiplier}: "
              f"{tuned['steps']} steps in {tuned['train_seconds']:.0f} s (test generation {tuned['eval_seconds']:.0f} s), "
              f"last train loss {tuned['loss']:.3f}",
              flush=True)
        print(f"  accuracy: fine-tuned {tuned['accuracy']:.3f} (exact answers {tuned['exact']:.3f}), "
              f"tfidf-logreg {tfidf:.3f}, lead {lead:+.1f} points", flush=True)
    print(f"mean lead {statistics.mean(leads):+.1f} points, smallest {min(leads):+.1f} "
          f"(target >= +{TARGET_POINTS:.0f} on each)")


if __name__ == "__main__":
    main()
