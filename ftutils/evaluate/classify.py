"""Asking a chat model for a label, two ways, through any OpenAI-compatible client.

`generate`: let the model answer (temperature 0, a few tokens) and map the text to a label:
exact, then case-insensitive, then a single label contained in the answer, then a close
spelling; anything else is "unparseable", its own outcome.

`score`: read the labels' probabilities from the answer's log-probabilities (the top 20 at
each position) instead of parsing text, asking only for the tokens the longest label needs.
The answer is followed token by token while it still spells a label, so labels that start
alike ("report_fraud", "report_lost_card") are told apart where they differ; every
alternative token that leads to one label only adds that label's probability. An answer
that leaves every label ("damaged_meal") is no label, as generation would say, unless a
label was likelier. An item still spelling a label when its tokens ran out is answered by
generation instead, with a note."""
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


@dataclass
class Prediction:
    id: str
    label: str
    pred: str | None
    """The label chosen, or None when the answer maps to no label."""
    raw: str
    """What the model said (the few tokens read, when scoring)."""
    how: str
    """exact | case | contained | fuzzy | unparseable (generation); score | no_label | no_label_token
    (scoring: a label, the answer left every label, no label-like token at all); error | baseline."""
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


def _norm(text: str) -> str:
    # Byte-level BPE vocabularies mark a leading space with Ġ (GPT-2) or ▁ (SentencePiece);
    # "report lost" and "Report-Lost" begin "report_lost_card" as much as "report_lost" does.
    text = text.replace("Ġ", " ").replace("▁", " ").casefold()
    return re.sub(r"[\s_-]+", " ", text).lstrip()


def _owners(text: str, keys: dict) -> list[str]:
    """The labels an answer beginning `text` may still become (a label the text already
    completes counts too: "refund." is refund)."""
    owners = [lab for lab, key in keys.items() if key.startswith(text)]
    return owners or [lab for lab, key in keys.items() if text.startswith(key)]


NO_LABEL = None  # the key `label_scores` gives an answer that leaves every label


def label_scores(steps: list[tuple[str, list[tuple[str, float]]]], labels: list[str],
                 ended: bool = True) -> tuple[dict, bool]:
    """Per label, the log-probability of the answer paths that spell it; and whether the
    answer ran out of tokens before it could be told which label it was.

    `steps` is the answer, position by position: (the token chosen, [(token, logprob)] the top
    alternatives there, the chosen one among them); `ended` says it stopped by itself (not at
    max_tokens). The chosen path is followed to the end of the label it spells, so it gets its
    full probability; an alternative that leads to one label only is credited with the
    probability up to it (the rest of that label, not asked for, is taken as certain). When the
    chosen path leaves every label ("damaged_meal" for "damaged_card"), its probability goes to
    NO_LABEL, which wins if it is the largest: the model's likeliest answer is no label."""
    keys = {lab: _norm(lab) for lab in labels}
    mass: dict = {}
    prefix, path, complete, unresolved = "", 0.0, None, False
    for chosen, top in steps:
        for token, logprob in top:
            text = _norm(prefix + token)
            owners = _owners(text, keys) if text else []
            if token != chosen and len(owners) == 1:
                mass.setdefault(owners[0], []).append(path + logprob)
        path += dict(top).get(chosen, 0.0)
        prefix += chosen
        text = _norm(prefix)
        if not text:
            continue  # leading whitespace: nothing said yet
        owners = _owners(text, keys)
        if not owners:
            mass.setdefault(NO_LABEL, []).append(path)
            break
        complete = next((lab for lab in owners if keys[lab] == text.rstrip(" .")), None)
        if complete and len(owners) == 1:
            mass.setdefault(complete, []).append(path)
            break
    else:
        if complete is not None and ended:
            mass.setdefault(complete, []).append(path)  # a label that a longer one begins, and then the end
        elif _norm(prefix) and not ended:
            unresolved = True  # still spelling a label at max_tokens: read more of it by generation
        elif _norm(prefix):
            mass.setdefault(NO_LABEL, []).append(path)  # stopped half-way through a label
    return {lab: math.log(sum(math.exp(lp) for lp in lps)) for lab, lps in mass.items()}, unresolved


def score_depth(model: str, labels: list[str]) -> int:
    """Answer tokens to read to spell the longest label, and one more (an end, or a stray
    continuation). Counted with tiktoken when it is the model's tokenizer; otherwise from the
    text, a word or a separator per token (an answer that needs more is generated instead)."""
    from ftutils.data.tokens import encoding_for

    encoding, approximate = encoding_for(model)
    if not approximate:
        return 1 + max(len(encoding.encode_ordinary(lab)) for lab in labels)
    return 1 + max(len(re.findall(r"[^\W_]+|[\W_]", lab)) for lab in labels)


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
                   concurrency: int = 1, policy: RetryPolicy | None = None,
                   depth: int | None = None) -> tuple[list[Prediction], list[int]]:
    """Predictions from the labels' log-probabilities along the answer's first `depth` tokens
    (`score_depth` when None), and the positions of the examples that could not be scored so."""
    depth = depth or score_depth(model, labels)

    def one(ex: TestExample) -> tuple[Prediction, bool]:
        response, latency, retries, error = _request(client, policy, ex, model=model, temperature=0, max_tokens=depth,
                                                     seed=seed, logprobs=True, top_logprobs=TOP_LOGPROBS)
        if error:
            return Prediction(ex.id, ex.label, None, error, "error", latency), False
        choice = response.choices[0]
        content = (choice.logprobs.content or []) if choice.logprobs else []
        steps = [(t.token, [(a.token, a.logprob) for a in (t.top_logprobs or [])] or [(t.token, t.logprob)])
                 for t in content]
        scores, unresolved = label_scores(steps, labels, choice.finish_reason != "length")
        pred = max(scores, key=scores.get) if scores else None
        how = "score" if pred else ("no_label" if scores else "no_label_token")
        return Prediction(ex.id, ex.label, pred, choice.message.content or "", how, latency, *_usage(response),
                          retries, {lab: v for lab, v in scores.items() if lab is not NO_LABEL}), unresolved

    pairs = run_all(one, examples, concurrency)
    return [p for p, _ in pairs], [i for i, (_, unresolved) in enumerate(pairs) if unresolved]


def classify(client, model: str, examples: list[TestExample], labels: list[str], method: str = "score",
             backend: str | None = None, concurrency: int | None = None, max_tokens: int = 20, seed: int = 0,
             policy: RetryPolicy | None = None) -> Classification:
    """Predict a label for every example with `method` ("score" or "generate"); when scoring,
    the items it cannot separate are answered by generation (the note says how many)."""
    if method not in ("score", "generate"):
        raise ValueError(f"method must be 'score' or 'generate', got {method!r}")
    concurrency = concurrency or default_concurrency(backend)
    if method == "generate":
        return Classification(model, "generate", classify_generate(client, model, examples, labels, max_tokens, seed,
                                                                    concurrency, policy), method)
    depth = score_depth(model, labels)
    predictions, unresolved = classify_score(client, model, examples, labels, seed, concurrency, policy, depth)
    notes = []
    if unresolved:
        generated = classify_generate(client, model, [examples[i] for i in unresolved], labels, max_tokens, seed,
                                      concurrency, policy)
        for i, p in zip(unresolved, generated):
            predictions[i] = p
        notes.append(f"{len(unresolved)} of {len(examples)} answers could not be scored within {depth} token"
                     f"{'s' if depth > 1 else ''} (still spelling a label when they ran out): answered by generation")
    missing = sum(p.how == "no_label_token" for p in predictions)
    if missing:
        notes.append(f"{missing} of {len(examples)} answers had no label's beginning among the top {TOP_LOGPROBS} "
                     "tokens")
    return Classification(model, "score", predictions, method, "; ".join(notes) or None)
