"""A first look at a fine-tuned model's answers, beside what the data expects (03_train's
last check before the full evaluation in 04_evaluate)."""
from __future__ import annotations

import pandas as pd


def sample_answers(client, model: str, examples: list[dict], n: int = 5, max_tokens: int = 32) -> pd.DataFrame:
    """Ask `model` the first `n` examples (chat format, the last assistant turn held back) at
    temperature 0, beside the answer the data expects."""
    rows = []
    for ex in examples[:n]:
        messages = ex["messages"]
        prompt = messages[:-1] if messages and messages[-1]["role"] == "assistant" else messages
        reply = client.chat.completions.create(model=model, messages=prompt, temperature=0, max_tokens=max_tokens)
        user = next((m["content"] for m in reversed(prompt) if m["role"] == "user"), "")
        rows.append({"id": ex.get("id"), "user": user, "expected": messages[-1]["content"] if prompt is not messages else None,
                     "answer": (reply.choices[0].message.content or "").strip()})
    return pd.DataFrame(rows, columns=["id", "user", "expected", "answer"])
