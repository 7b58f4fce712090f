"""Asking a chat model for a label, two ways, through any OpenAI-compatible client.

`generate`: let the model answer (temperature 0, a few tokens) and map the text to a label:
exact, then case-insensitive, then a single label contained in the answer, then a close
spelling; anything else is "unparseable", its own outcome.

`score`: one request per example with max_tokens=1 and the top 20 log-probabilities of the
first answer token; the label whose first token is most likely wins. The model never gets
to ramble, so there is nothing to parse, and it costs one output token instead of several.
It needs labels that start with different tokens. For OpenAI models tiktoken tells us
before any request; for other models we learn it from the tokens that come back: when the
most likely label-like token is a prefix of two labels, scoring cannot separate them and
the model is evaluated by generation instead, with a note saying why.
"""
from __future__ import annotations

import difflib
import math
import re
import time
from dataclasses import asdict, dataclass, field

import pandas as pd

from ftutils.evaluate.calls import RetryPolicy, default_concurrency, run_all, with_retries
from ftutils.evaluate.candidates import TestExample

TOP_LOGPROBS = 20
FUZZY_CUTOFF = 0.8
AMBIGUOUS_SHARE = 0.05  # more ambiguous first tokens than this and scoring is not trusted


@dataclass
class Prediction:
    id: str
    label: str
    pred: str | None
    """The label chosen, or None when the answer maps to no label."""
    raw: str
    """What the model said (its first token when scoring)."""
    how: str
    """exact | case | contained | fuzzy | unparseable | score | no_label_token | error | baseline."""
    latency_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    retries: int = 0
    scores: dict = field(default_factory=dict)
    """Log-probability per label when scoring (labels absent from the top 20 are left out)."""


@dataclass
class Classification:
    model: str
    method: str
    """The method actually used: "score", "generate" or "baseline"."""
    predictions: list
    requested: str = ""
    """The method asked for; differs from `method` after a fallback."""
    note: str | None = None
    """Why the method differs, or anything else a reader must know about these numbers."""

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(p) for p in self.predictions])


def _clean(text: str) -> str:
    return text.strip().strip("\"'`*.:;!,()[]{} \n\t").strip()


def _words(text: str) -> str:
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def normalize_answer(answer: str | None, labels: list[str]) -> tuple[str | None, str]:
    """Map a model's answer to one of `labels`; returns (label or None, how it matched)."""
    text = _clean(answer or "")
    if not text:
        return None, "unparseable"
    if text in labels:
        return text, "exact"
    folded = {lab.casefold(): lab for lab in labels}
    if text.casefold() in folded:
        return folded[text.casefold()], "case"
    # A label counts as contained when it appears as a whole word (underscores and hyphens
    # may be spaces); "refund" inside "not a refund but billing" names two labels: ambiguous.
    words = f" {_words(text)} "
    found = [lab for lab in labels if f" {_words(lab)} " in words]
    found = [lab for lab in found if not any(lab != other and lab.casefold() in other.casefold() for other in found)]
    if len(found) == 1:
        return found[0], "contained"
    first_line = text.splitlines()[0].casefold()
    close = difflib.get_close_matches(first_line, list(folded), n=1, cutoff=FUZZY_CUTOFF)
    if close and not found:
        return folded[close[0]], "fuzzy"
    return None, "unparseable"


def _key(token: str) -> str:
    # Byte-level BPE vocabularies mark a leading space with Ġ (GPT-2) or ▁ (SentencePiece).
    return token.replace("Ġ", " ").replace("▁", " ").strip().casefold()


def label_scores(top: list[tuple[str, float]], labels: list[str]) -> tuple[dict, bool]:
    """Per label, the log of the summed probability of the returned tokens that begin it and
    no other label; and whether the most likely label-like token begins several labels."""
    keys = {lab: lab.casefold() for lab in labels}
    mass: dict[str, list[float]] = {}
    best_shared, best_unique = -math.inf, -math.inf
    for token, logprob in top:
        k = _key(token)
        if not k:
            continue
        owners = [lab for lab in labels if keys[lab].startswith(k)]
        if len(owners) == 1:
            mass.setdefault(owners[0], []).append(logprob)
            best_unique = max(best_unique, logprob)
        elif len(owners) > 1:
            best_shared = max(best_shared, logprob)
    scores = {lab: math.log(sum(math.exp(lp) for lp in lps)) for lab, lps in mass.items()}
    return scores, best_shared > best_unique


def tiktoken_first_tokens(model: str, labels: list[str]) -> dict | None:
    """Each label's first token under tiktoken, when tiktoken is this model's own tokenizer."""
    from ftutils.data.tokens import encoding_for

    encoding, approximate = encoding_for(model)
    if approximate:
        return None
    return {lab: encoding.decode(encoding.encode_ordinary(lab)[:1]) for lab in labels}


def _shared(first_tokens: dict) -> list[str]:
    by_token: dict[str, list[str]] = {}
    for lab, tok in first_tokens.items():
        by_token.setdefault(tok, []).append(lab)
    return [f"{', '.join(labs)} all start with {tok!r}" for tok, labs in by_token.items() if len(labs) > 1]


def _usage(response) -> tuple[int | None, int | None]:
    usage = getattr(response, "usage", None)
    return (getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))


def _request(client, policy, example: TestExample, **kwargs):
    import openai

    start = time.perf_counter()
    try:
        response, retries = with_retries(
            lambda: client.chat.completions.create(messages=example.prompt, **kwargs), policy)
    except openai.BadRequestError as exc:  # this example only (e.g. too long): count it, go on
        return None, time.perf_counter() - start, 0, str(exc)
    return response, time.perf_counter() - start, retries, None


def classify_generate(client, model: str, examples: list[TestExample], labels: list[str], max_tokens: int = 20,
                      seed: int = 0, concurrency: int = 1, policy: RetryPolicy | None = None) -> list[Prediction]:
    def one(ex: TestExample) -> Prediction:
        response, latency, retries, error = _request(client, policy, ex, model=model, temperature=0,
                                                     max_tokens=max_tokens, seed=seed)
        if error:
            return Prediction(ex.id, ex.label, None, error, "error", latency)
        raw = response.choices[0].message.content or ""
        pred, how = normalize_answer(raw, labels)
        return Prediction(ex.id, ex.label, pred, raw, how, latency, *_usage(response), retries)

    return run_all(one, examples, concurrency)


def classify_score(client, model: str, examples: list[TestExample], labels: list[str], seed: int = 0,
                   concurrency: int = 1, policy: RetryPolicy | None = None) -> tuple[list[Prediction], int]:
    """Predictions by first-token log-probability and how many examples were ambiguous."""
    def one(ex: TestExample) -> tuple[Prediction, bool]:
        response, latency, retries, error = _request(client, policy, ex, model=model, temperature=0, max_tokens=1,
                                                     seed=seed, logprobs=True, top_logprobs=TOP_LOGPROBS)
        if error:
            return Prediction(ex.id, ex.label, None, error, "error", latency), False
        choice = response.choices[0]
        content = (choice.logprobs.content or []) if choice.logprobs else []
        top = [(t.token, t.logprob) for t in (content[0].top_logprobs if content else [])]
        scores, shared = label_scores(top, labels)
        pred = max(scores, key=scores.get) if scores else None
        return Prediction(ex.id, ex.label, pred, choice.message.content or "", "score" if pred else "no_label_token",
                          latency, *_usage(response), retries, scores), shared

    pairs = run_all(one, examples, concurrency)
    return [p for p, _ in pairs], sum(shared for _, shared in pairs)


def classify(client, model: str, examples: list[TestExample], labels: list[str], method: str = "score",
             backend: str | None = None, concurrency: int | None = None, max_tokens: int = 20, seed: int = 0,
             policy: RetryPolicy | None = None) -> Classification:
    """Predict a label for every example with `method` ("score" or "generate"), falling back
    from scoring to generation when the labels' first tokens are not distinct."""
    if method not in ("score", "generate"):
        raise ValueError(f"method must be 'score' or 'generate', got {method!r}")
    concurrency = concurrency or default_concurrency(backend)
    note = None
    if method == "score":
        first = tiktoken_first_tokens(model, labels) if backend != "local" else None
        shared = _shared(first) if first else []
        if shared:
            note = f"scoring impossible under {model}'s tokenizer ({'; '.join(shared)}): used generation"
        else:
            predictions, ambiguous = classify_score(client, model, examples, labels, seed, concurrency, policy)
            if ambiguous <= AMBIGUOUS_SHARE * len(examples):
                missing = sum(p.how == "no_label_token" for p in predictions)
                if missing:
                    note = f"{missing} of {len(examples)} answers had no label's first token among the top {TOP_LOGPROBS}"
                return Classification(model, "score", predictions, method, note)
            note = (f"{ambiguous} of {len(examples)} answers began with a token shared by several labels, so "
                    f"scoring cannot separate them under {model}'s tokenizer: used generation")
    predictions = classify_generate(client, model, examples, labels, max_tokens, seed, concurrency, policy)
    return Classification(model, "generate", predictions, method, note)
