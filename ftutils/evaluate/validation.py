"""Per-item validation losses of each epoch's model, through the chat API.

The service reports one validation loss per epoch: a mean over the validation file. Whether
a change of that mean from one epoch to another is more than chance needs the items
themselves, so each epoch's checkpoint answers every validation item once and we read, from
the answer's log-probabilities, how likely it found the right answer. An item's **answer
loss** is minus that log-probability, in nats: 0 for an answer given with certainty, ln 2 for
a coin flip. It is the same quantity as the training loss on these one-label answers, but
summed over the answer's tokens (not averaged per token) and without the end-of-turn token,
so it is not on the scale of the service's number; its changes between epochs, paired item
by item, are what `ftutils.train.diagnose` judges.

Labels absent from the top 20 log-probabilities at the token where the answer left them get
LOSS_CAP: their probability is below what the API shows, so the loss is at least that.
Works on OpenAI (fine-tuned models and checkpoints answer with log-probabilities) and locally.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ftutils.evaluate.calls import default_concurrency
from ftutils.evaluate.candidates import load_examples
from ftutils.evaluate.classify import classify_score, score_depth

LOSS_CAP = 10.0  # nats: a probability below about 1 in 22,000, beyond what the top 20 log-probabilities show
COLUMNS = ["step", "id", "label", "pred", "loss"]


def answer_losses(predictions, cap: float = LOSS_CAP) -> pd.DataFrame:
    """id, label, pred and the answer loss (-log p of the right label, capped) of scored predictions."""
    rows = []
    for p in predictions:
        logprob = (p.scores or {}).get(p.label)
        rows.append({"id": p.id, "label": p.label, "pred": p.pred,
                     "loss": cap if logprob is None else min(cap, max(0.0, -float(logprob)))})
    return pd.DataFrame(rows, columns=COLUMNS[1:])


def epoch_item_losses(client, models: dict[int, str], path: str | Path, labels: list[str] | None = None,
                      backend: str | None = None, concurrency: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Every validation item of `path` (a chat JSONL file) answered by each model of `models`
    ({step: model id}, e.g. a job's checkpoints): columns step, id, label, pred, loss."""
    examples = load_examples(path)
    labels = sorted(set(labels or []) | {ex.label for ex in examples})
    concurrency = concurrency or default_concurrency(backend)
    frames = []
    for step, model in sorted(models.items()):
        predictions, _ = classify_score(client, model, examples, labels, seed=seed, concurrency=concurrency,
                                        depth=score_depth(model, labels))
        frames.append(answer_losses(predictions).assign(step=int(step)))
    return pd.concat(frames, ignore_index=True)[COLUMNS] if frames else pd.DataFrame(columns=COLUMNS)


def epoch_models(checkpoints: pd.DataFrame, fine_tuned_model: str | None = None,
                 final_step: int | None = None, steps=None) -> dict[int, str]:
    """{step: model id} of a job's checkpoints (`jobs.checkpoints`; only `steps` when given), the
    last one called by the fine-tuned model's own id (the same weights, and the id 04_evaluate scores)."""
    models = {int(r.step): r.model for r in checkpoints.itertuples() if getattr(r, "model", None)}
    if fine_tuned_model and final_step is not None and int(final_step) in models:
        models[int(final_step)] = fine_tuned_model
    return {s: m for s, m in models.items() if steps is None or s in set(steps)}
