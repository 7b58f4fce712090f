"""Scoring free-text answers (summaries, extractions, replies) against a reference.

Exact match is strict; normalized match forgives case, punctuation, articles and spacing
(SQuAD's normalisation); token F1 gives partial credit for overlapping words. None of them
knows that two different sentences can both be right, which is what an LLM judge with a
rubric is for: it is asked for a score in a fixed format, and an answer we cannot read a
score from is counted as such rather than guessed.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass

import pandas as pd

from ftutils.evaluate.calls import RetryPolicy, default_concurrency, run_all, with_retries

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)

DEFAULT_RUBRIC = (
    "5: fully correct and complete, same meaning as the reference.\n"
    "4: correct, with a minor omission or extra detail.\n"
    "3: partly correct: some key information right, some missing or wrong.\n"
    "2: mostly wrong, with a small correct part.\n"
    "1: wrong, off-topic or empty."
)
JUDGE_PROMPT = (
    "You grade an answer against a reference answer using this rubric:\n{rubric}\n\n"
    "Question or input:\n{question}\n\nReference answer:\n{reference}\n\nAnswer to grade:\n{answer}\n\n"
    "Reply with one line, exactly: Score: <number from {low} to {high}>"
)


def normalize_text(text: str) -> str:
    text = (text or "").casefold().translate(_PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(answer: str, reference: str) -> bool:
    return (answer or "").strip() == (reference or "").strip()


def normalized_match(answer: str, reference: str) -> bool:
    return normalize_text(answer) == normalize_text(reference)


def token_f1(answer: str, reference: str) -> float:
    """Harmonic mean of word precision and recall after normalisation (SQuAD's F1)."""
    a, r = normalize_text(answer).split(), normalize_text(reference).split()
    if not a or not r:
        return float(a == r)
    common = sum((Counter(a) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(r)
    return 2 * precision * recall / (precision + recall)


def parse_score(text: str, low: int = 1, high: int = 5) -> float | None:
    """The judge's score: the number after "Score:", else a lone in-range number; None if neither."""
    text = text or ""
    tagged = re.search(r"score\s*[:=]\s*(-?\d+(?:\.\d+)?)", text, re.IGNORECASE)
    if tagged:
        value = float(tagged.group(1))
        return value if low <= value <= high else None
    numbers = [float(n) for n in re.findall(r"(?<![\d.])-?\d+(?:\.\d+)?(?![\d.])", text)]
    in_range = [n for n in numbers if low <= n <= high]
    return in_range[0] if len(in_range) == 1 and len(numbers) == 1 else None


@dataclass
class Judgement:
    score: float | None
    """The parsed score, or None when the judge's reply held no readable score."""
    raw: str


def judge(client, model: str, question: str, reference: str, answer: str, rubric: str = DEFAULT_RUBRIC,
          scale: tuple[int, int] = (1, 5), seed: int = 0, policy: RetryPolicy | None = None) -> Judgement:
    """Ask `model` to grade `answer` against `reference` with `rubric`."""
    low, high = scale
    prompt = JUDGE_PROMPT.format(rubric=rubric, question=question, reference=reference, answer=answer, low=low, high=high)
    response, _ = with_retries(lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=12, seed=seed), policy)
    raw = response.choices[0].message.content or ""
    return Judgement(parse_score(raw, low, high), raw)


def evaluate_freetext(answers: list[str], references: list[str], questions: list[str] | None = None,
                      client=None, judge_model: str | None = None, rubric: str = DEFAULT_RUBRIC,
                      scale: tuple[int, int] = (1, 5), backend: str | None = None,
                      ids: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-answer metrics and their means; judged too when a client and judge model are given."""
    if len(answers) != len(references):
        raise ValueError(f"{len(answers)} answers but {len(references)} references")
    ids = ids or [str(i) for i in range(len(answers))]
    rows = pd.DataFrame({"id": ids, "answer": answers, "reference": references})
    rows["exact"] = [exact_match(a, r) for a, r in zip(answers, references)]
    rows["normalized"] = [normalized_match(a, r) for a, r in zip(answers, references)]
    rows["token_f1"] = [token_f1(a, r) for a, r in zip(answers, references)]
    summary = {"n": len(rows), "exact_match": float(rows["exact"].mean()) if len(rows) else float("nan"),
               "normalized_match": float(rows["normalized"].mean()) if len(rows) else float("nan"),
               "token_f1": float(rows["token_f1"].mean()) if len(rows) else float("nan")}
    if client is not None and judge_model:
        questions = questions or [""] * len(answers)
        items = list(zip(questions, references, answers))
        judged = run_all(lambda qra: judge(client, judge_model, *qra, rubric=rubric, scale=scale),
                         items, default_concurrency(backend))
        rows["judge_score"] = [j.score for j in judged]
        rows["judge_raw"] = [j.raw for j in judged]
        scored = rows["judge_score"].dropna()
        summary.update(judge_model=judge_model, judge_mean=float(scored.mean()) if len(scored) else None,
                       judge_unparseable=int(rows["judge_score"].isna().sum()))
    return rows, summary
