"""Preference (DPO) fine-tuning from the client side: launch a job, show a pair, compare answers.

The same calls run on OpenAI and on the local backend; `notebooks/06_preference.ipynb` uses them.
"""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from ftutils import openai_rules

log = logging.getLogger(__name__)
LN2 = math.log(2)  # DPO's loss before the model has moved from the reference
# Answers asked at once: the local engine batches concurrent requests on a model into shared
# forward passes (ftutils.local.inference.scheduler), so 4 prompts cost about what one does; OpenAI
# serves them in parallel. Its default rate limits are far above this.
CONCURRENT_REQUESTS = 16


def launch_dpo(client, training_file: str, validation_file: str | None = None, model: str = "auto",
               beta="auto", n_epochs="auto", batch_size="auto", learning_rate_multiplier="auto",
               suffix: str | None = None, seed: int | None = None, metadata: dict | None = None, *,
               backend: str | None = None, check_model: bool = True):
    """Create a DPO job (`method.type` "dpo") on a preference file. Values are checked against
    OpenAI's rules first, so a mistake raises HyperparameterError before anything is sent;
    "auto", the model's shutdown date and a refusal are handled as in `jobs.launch`."""
    openai_rules.check(n_epochs, batch_size, learning_rate_multiplier)
    openai_rules.check_beta(beta)
    openai_rules.check_suffix(suffix)
    openai_rules.check_metadata(metadata)
    method = {"type": "dpo", "dpo": {"hyperparameters": {
        "beta": beta, "n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": learning_rate_multiplier}}}
    extra = {k: v for k, v in (("validation_file", validation_file), ("suffix", suffix), ("seed", seed),
                               ("metadata", metadata)) if v is not None}
    from ftutils.train.jobs import create

    return create(client, model, training_file, method, extra, backend=backend, check=check_model)


def prompt_of(pair: dict) -> list[dict]:
    return (pair.get("input") or {}).get("messages") or []


def replies_of(pair: dict) -> tuple[str, str]:
    """(preferred, non-preferred) reply texts, in either of OpenAI's spellings."""
    out = []
    for key in ("preferred_output", "non_preferred_output"):
        reply = pair.get(key, pair.get(key.replace("output", "completion"))) or [{}]
        out.append(reply[0].get("content") or "")
    return out[0], out[1]


def pair_table(pair: dict) -> pd.DataFrame:
    """One preference example as rows: its prompt's messages, then the two replies."""
    rows = [{"part": f"input: {m.get('role')}", "text": m.get("content")} for m in prompt_of(pair)]
    preferred, rejected = replies_of(pair)
    rows += [{"part": "preferred_output", "text": preferred}, {"part": "non_preferred_output", "text": rejected}]
    return pd.DataFrame(rows, columns=["part", "text"])


def user_text(pair: dict) -> str:
    """The last user message of the pair's prompt: what the comparison tables show."""
    return next((m["content"] for m in reversed(prompt_of(pair)) if m.get("role") == "user"), "")


CUT = " [… cut at max_tokens]"  # marks an answer that ran out of tokens, so a reader knows it was not finished


def answers(client, model: str, pairs: list[dict], max_tokens: int = 48) -> list[str]:
    """The model's answer (temperature 0) to each pair's prompt, the requests sent concurrently;
    an answer that ran out of tokens ends with CUT."""
    return _ask(client, [(model, pair) for pair in pairs], max_tokens)


def transcript(table: pd.DataFrame, width: int = 100) -> str:
    """`compare_answers`' table as text, every answer whole (a DataFrame cuts cells at 50
    characters): per prompt, the user's message, then each column's reply, wrapped."""
    import textwrap

    blocks = []
    for i, row in enumerate(table.to_dict("records"), 1):
        lines = [f"{i}. user: {row['user']}"]
        for column, text in row.items():
            if column != "user":
                lines.append(textwrap.fill(str(text), width, initial_indent=f"   {column}: ",
                                           subsequent_indent=" " * (5 + len(column))))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def compare_answers(client, models: dict[str, str], pairs: list[dict], n: int | None = None,
                    max_tokens: int = 48) -> pd.DataFrame:
    """Each model's answer (temperature 0) to the first `n` pairs' prompts (all by default),
    beside the preferred and non-preferred replies. `models` maps a column name to a model
    id. Every request goes at once; add a later model's column with `answers`."""
    pairs = pairs[:n]
    replies = iter(_ask(client, [(model, pair) for model in models.values() for pair in pairs], max_tokens))
    table = pd.DataFrame({"user": [user_text(p) for p in pairs],
                          "preferred": [replies_of(p)[0] for p in pairs],
                          "non_preferred": [replies_of(p)[1] for p in pairs]})
    for name in models:
        table[name] = [next(replies) for _ in pairs]
    return table


def _ask(client, requests: list[tuple[str, dict]], max_tokens: int) -> list[str]:
    def one(request):
        model, pair = request
        reply = client.chat.completions.create(model=model, messages=prompt_of(pair), temperature=0,
                                               max_tokens=max_tokens)
        text = (reply.choices[0].message.content or "").strip()
        return text + CUT if reply.choices[0].finish_reason == "length" else text

    if not requests:
        return []
    with ThreadPoolExecutor(max_workers=min(CONCURRENT_REQUESTS, len(requests))) as pool:
        return list(pool.map(one, requests))  # in the requests' order; the first error raises here


def loss_summary(history: pd.DataFrame) -> dict:
    """First and last training loss, the best validation loss, and how far the first is from ln 2."""
    train = history["train_loss"].dropna() if "train_loss" in history else pd.Series(dtype=float)
    valid = history["full_valid_loss"].dropna() if "full_valid_loss" in history else pd.Series(dtype=float)
    out = {"first_train_loss": float(train.iloc[0]) if len(train) else None,
           "last_train_loss": float(train.iloc[-1]) if len(train) else None,
           "best_full_valid_loss": float(valid.min()) if len(valid) else None, "ln2": LN2}
    if out["first_train_loss"] is not None:
        out["first_minus_ln2"] = out["first_train_loss"] - LN2
    return out


def dpo_history(client, job_id: str) -> pd.DataFrame:
    """Every metric the job's `metrics` events carry, one row per step (DPO's reward accuracy
    and margin beside the losses, which `metrics.job_metrics` leaves out: OpenAI's result file
    has no such columns)."""
    from ftutils.train.metrics import list_all_events

    rows = [e.data for e in list_all_events(client, job_id) if getattr(e, "type", None) == "metrics" and e.data]
    if not rows:
        return pd.DataFrame(columns=["step"])
    frame = pd.DataFrame(rows).drop_duplicates(subset="step", keep="last").sort_values("step")
    return frame.apply(pd.to_numeric, errors="coerce").reset_index(drop=True)


def last_metrics(client, job_id: str) -> dict:
    """The data of the job's latest metrics event: every metric the service reported, DPO's
    own (`train_reward_accuracy`, `train_reward_margin` locally) included."""
    from ftutils.train.metrics import list_all_events

    records = [e.data for e in list_all_events(client, job_id) if getattr(e, "type", None) == "metrics" and e.data]
    return max(records, key=lambda d: d.get("step", 0)) if records else {}
