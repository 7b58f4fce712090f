"""What the chat benchmarks share: the committed CLINC150 subset as chat examples, the
system prompt that names its intents, and the key their throwaway servers use."""
from __future__ import annotations

import csv
import random
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "samples" / "clinc150_subset.csv"
KEY = "bench-key-not-a-secret"
SYSTEM = ("Classify the banking message into exactly one intent: account_blocked, card_declined, damaged_card, "
          "freeze_account, new_card, out_of_scope, replacement_card_duration, report_fraud or report_lost_card. "
          "Answer with the intent only.")


def chats(seed: int = 0) -> list[dict]:
    """Every row of the sample as a chat example (system, user, the label as the answer), shuffled."""
    with open(SAMPLE, newline="") as f:
        rows = list(csv.DictReader(f))
    random.Random(seed).shuffle(rows)
    return [{"id": r["id"], "label": r["label"], "messages": [
        {"role": "system", "content": SYSTEM}, {"role": "user", "content": r["text"]},
        {"role": "assistant", "content": r["label"]}]} for r in rows]
