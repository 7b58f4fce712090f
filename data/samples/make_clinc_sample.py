"""Writes clinc150_subset.csv: eight confusable card and account intents of CLINC150, plus
out-of-scope queries, sized for training on a CPU.

CLINC150 (Larson et al., 2019, "An Evaluation Dataset for Intent Classification and
Out-of-Scope Prediction", EMNLP-IJCNLP; CC BY 3.0, see LICENSE-CLINC150 next to this file)
ships fixed train/val/test splits. Rows are drawn from each of those splits, never mixed, so
the subset keeps CLINC's own guarantee that no query is in two splits; which split a row
came from is in the `clinc_split` column and in its id.

How the committed CSV was made (the repository does not ship CLINC's full file):

    python data/samples/make_clinc_sample.py ../shared/datasets/clinc150/data_full.json

The same input and seed always give the same rows in the same order.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
from collections import Counter
from pathlib import Path

OUT = Path(__file__).with_name("clinc150_subset.csv")
SEED = 150
# Card and account troubles from CLINC's `banking` and `credit_cards` domains: people say
# "block", "lost", "stolen", "new card" and "declined" across several of them, so the words
# alone do not give the intent away (the TF-IDF baseline's figures: data/samples/README.md).
INTENTS = ("account_blocked", "card_declined", "damaged_card", "freeze_account", "new_card",
           "replacement_card_duration", "report_fraud", "report_lost_card")
OUT_OF_SCOPE = "out_of_scope"  # CLINC's "oos", spelt out so the label explains itself
# (CLINC key, label, `split` column, rows). Per intent: 20 to train on (the quality
# target), 8 to validate, 10 to test. Out-of-scope: 40 test queries, as an assistant meets
# them, and a pool shaped like one more intent (20 + 8) for a run that learns to refuse.
PLAN = (("train", None, "train", 20), ("val", None, "validation", 8), ("test", None, "test", 10),
        ("oos_test", OUT_OF_SCOPE, "test", 40), ("oos_train", OUT_OF_SCOPE, "pool", 20),
        ("oos_val", OUT_OF_SCOPE, "pool", 8))
COLUMNS = ("id", "text", "label", "split", "clinc_split")


def select(data: dict, intents=INTENTS, plan=PLAN, seed: int = SEED) -> list[dict]:
    """Rows of the subset: a seeded sample of each (CLINC split, intent), kept in CLINC's order.

    `id` is `<CLINC key>-<position in that list>`, so every row can be traced back."""
    rng = random.Random(seed)
    rows = []
    for key, label, part, n in plan:
        for intent in ((("oos",) if label else intents)):
            pool = [i for i, (_, name) in enumerate(data[key]) if name == intent]
            if len(pool) < n:
                raise ValueError(f"{key} has {len(pool)} rows of {intent!r}, {n} wanted")
            for i in sorted(rng.sample(pool, n)):
                rows.append({"id": f"{key}-{i:05d}", "text": data[key][i][0].strip(), "label": label or intent,
                             "split": part, "clinc_split": key})
    return rows


def write(rows: list[dict], path: Path = OUT) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_full", type=Path, help="CLINC150's data_full.json")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    raw = args.data_full.read_bytes()
    rows = select(json.loads(raw))
    write(rows, args.out)
    print(f"{args.data_full.name} sha256 {hashlib.sha256(raw).hexdigest()}")
    print(f"wrote {len(rows)} rows to {args.out}")
    for (part, key), n in sorted(Counter((r["split"], r["clinc_split"]) for r in rows).items()):
        print(f"  {part:>10} from {key:<9} {n:4d}")


if __name__ == "__main__":
    main()
