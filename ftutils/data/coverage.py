"""Is the test set representative, and is the training data diverse? Measured, not assumed.

- **Representative**: the test items should look like what users will send, and training
  should cover them. `label_coverage` counts every label in every part (a label the test
  holds and training does not is one no fine-tune can learn); `length_coverage` compares the
  lengths of the user messages (a test set of short messages says little about long ones).
- **Diverse**: many examples that say the same thing teach one thing. `clusters` links each
  part's near-duplicates and paraphrases (the word-set and 5-gram rules of `hygiene.siblings`)
  into groups, so 20 examples that form 8 groups are 8 ways of asking, not 20.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from ftutils.data.hygiene import prompt_text, similar_groups


def _label(example, label_key: str) -> str:
    if isinstance(example, dict) and example.get(label_key) is not None:
        return str(example[label_key])
    messages = example.get("messages") or [] if isinstance(example, dict) else []
    return str(messages[-1].get("content")) if messages else ""


def _user_words(example) -> int:
    messages = example.get("messages") or []
    return sum(len(str(m.get("content") or "").split()) for m in messages if m.get("role") == "user")


def label_coverage(parts: dict, label_key: str = "label") -> pd.DataFrame:
    """Rows: labels; columns: count per part, each part's share, and `in_train` (whether the
    training part has the label at all)."""
    counts = {name: Counter(_label(e, label_key) for e in items) for name, items in parts.items()}
    labels = sorted(set().union(*counts.values()))
    frame = pd.DataFrame({name: [c.get(lab, 0) for lab in labels] for name, c in counts.items()}, index=labels)
    for name in parts:
        total = frame[name].sum()
        frame[f"{name}_share"] = (frame[name] / total).round(3) if total else 0.0
    if "train" in frame:
        frame["in_train"] = frame["train"] > 0
    frame.index.name = "label"
    return frame


def length_coverage(parts: dict) -> pd.DataFrame:
    """Rows: parts; columns: n and the user message's length in words (min, median, 90th
    percentile, max), and for every part but train the share of its items shorter or longer than
    anything in train (`outside_train`)."""
    lengths = {name: np.array([_user_words(e) for e in items], dtype=float) for name, items in parts.items()}
    train = lengths.get("train")
    rows = []
    for name, values in lengths.items():
        row = {"part": name, "n": len(values)}
        if len(values):
            row.update(min=int(values.min()), median=float(np.median(values)), p90=float(np.percentile(values, 90)),
                       max=int(values.max()))
        if name != "train" and train is not None and len(train) and len(values):
            row["outside_train"] = float(((values < train.min()) | (values > train.max())).mean())
        rows.append(row)
    return pd.DataFrame(rows).set_index("part")


def clusters(examples, label_key: str = "label", threshold: float = 0.8) -> pd.DataFrame:
    """Per label of `examples`: examples, groups of near-duplicates and paraphrases (chains of
    siblings), the largest group, and `distinct` = groups / examples (1.0: no two alike)."""
    examples = list(examples)
    if not examples:
        return pd.DataFrame(columns=["examples", "groups", "largest", "distinct"])
    groups = similar_groups(examples, threshold)
    rows = {}
    for example, group in zip(examples, groups):
        rows.setdefault(_label(example, label_key), []).append(group)
    out = pd.DataFrame([{"label": lab, "examples": len(g), "groups": len(set(g)),
                         "largest": max(Counter(g).values()), "distinct": round(len(set(g)) / len(g), 3)}
                        for lab, g in sorted(rows.items())]).set_index("label")
    return out


def largest_cluster(examples, label: str | None = None, label_key: str = "label", threshold: float = 0.8) -> list[str]:
    """The user messages of the largest group of similar examples (of `label` only, when given), to read."""
    examples = list(examples)
    if not examples:
        return []
    groups = similar_groups(examples, threshold)
    if label is not None:
        kept = [(e, g) for e, g in zip(examples, groups) if _label(e, label_key) == label]
        examples, groups = [e for e, _ in kept], [g for _, g in kept]
    if not examples:
        return []
    top, _ = Counter(groups).most_common(1)[0]
    return [prompt_text(e).strip().splitlines()[-1] for e, g in zip(examples, groups) if g == top]
