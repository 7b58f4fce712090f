"""OpenAI's rules for a fine-tuning request: hyperparameter ranges and how "auto" resolves,
the suffix and metadata limits, the shape of fine-tuned model ids, and the dates of OpenAI's
fine-tuning wind-down (which models shut down when, and until when jobs may be created).

One module for the client (checks before anything is sent, cost estimates) and the
local server (which refuses the same values and writes resolved ones back, as OpenAI does).
"""
from __future__ import annotations

import datetime as dt
import math
import os
import re
from dataclasses import dataclass
from typing import Literal, get_args

# OpenAI's documented ranges for supervised fine-tuning.
N_EPOCHS_RANGE = (1, 50)
BATCH_SIZE_RANGE = (1, 256)

# The "auto" epoch heuristic: aim for 3 epochs, but keep examples x epochs within
# 100..25000 billed example-passes, and the epochs themselves within 1..25.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25

# OpenAI does not publish its batch-size and learning-rate rules; these follow what its
# jobs report back: batch size grows with the data (~0.2 % of it, at most 256), and the
# multiplier is 2 for small batches and smaller for large ones.
AUTO_BATCH_FRACTION = 0.002


class HyperparameterError(ValueError):
    """A hyperparameter outside OpenAI's range; `param` names it as the API would."""

    def __init__(self, param: str, message: str):
        super().__init__(message)
        self.param = param


def auto_n_epochs(n_examples: int) -> int:
    """OpenAI's default epochs for a training file of `n_examples` examples."""
    if n_examples <= 0:
        return TARGET_EPOCHS
    epochs = TARGET_EPOCHS
    if n_examples * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, math.ceil(MIN_TARGET_EXAMPLES / n_examples))
    elif n_examples * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return epochs


def auto_batch_size(n_examples: int) -> int:
    return max(BATCH_SIZE_RANGE[0], min(BATCH_SIZE_RANGE[1], math.ceil(AUTO_BATCH_FRACTION * n_examples)))


def auto_learning_rate_multiplier(batch_size: int) -> float:
    return 2.0 if batch_size <= 8 else 1.0


@dataclass
class Hyperparameters:
    """Supervised hyperparameters as the API takes them: a value or the string "auto"."""

    n_epochs: int | str = "auto"
    """Passes over the training file, 1..50."""
    batch_size: int | str = "auto"
    """Examples per optimizer step, 1..256."""
    learning_rate_multiplier: float | str = "auto"
    """Scales the base learning rate; any positive number."""

    def __post_init__(self):
        check(self.n_epochs, self.batch_size, self.learning_rate_multiplier)

    def resolve(self, n_examples: int) -> "Hyperparameters":
        """The concrete values a job with `n_examples` training examples would use."""
        n_epochs = auto_n_epochs(n_examples) if self.n_epochs == "auto" else int(self.n_epochs)
        batch_size = auto_batch_size(n_examples) if self.batch_size == "auto" else int(self.batch_size)
        lr = (auto_learning_rate_multiplier(batch_size) if self.learning_rate_multiplier == "auto"
              else float(self.learning_rate_multiplier))
        return Hyperparameters(n_epochs, batch_size, lr)

    def to_dict(self) -> dict:
        return {"n_epochs": self.n_epochs, "batch_size": self.batch_size,
                "learning_rate_multiplier": self.learning_rate_multiplier}


def check(n_epochs="auto", batch_size="auto", learning_rate_multiplier="auto") -> None:
    """Raise HyperparameterError naming the first value outside OpenAI's ranges."""
    prefix = "hyperparameters."
    for name, value, lo, hi in (("n_epochs", n_epochs, *N_EPOCHS_RANGE),
                                ("batch_size", batch_size, *BATCH_SIZE_RANGE)):
        if value == "auto":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise HyperparameterError(prefix + name, f"{name} must be an integer from {lo} to {hi} or 'auto', got {value!r}.")
    lr = learning_rate_multiplier
    if lr != "auto":
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise HyperparameterError(prefix + "learning_rate_multiplier",
                                      f"learning_rate_multiplier must be a number greater than 0 or 'auto', got {lr!r}.")


# DPO's beta: OpenAI takes 0 < beta <= 2 or "auto"; auto is the DPO paper's usual 0.1.
BETA_RANGE = (0, 2)
AUTO_BETA = 0.1


def check_beta(beta="auto") -> None:
    if beta == "auto":
        return
    lo, hi = BETA_RANGE
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or not lo < beta <= hi:
        raise HyperparameterError("hyperparameters.beta",
                                  f"beta must be a number greater than {lo} and at most {hi}, or 'auto', got {beta!r}.")


# ---- suffix and metadata --------------------------------------------------------------

SUFFIX_MAX = 64
# The suffix becomes part of the model id `ft:base:org:suffix:id`, so no colons or spaces.
SUFFIX_RE = re.compile(r"[A-Za-z0-9_.-]+")
METADATA_MAX_PAIRS, METADATA_KEY_MAX, METADATA_VALUE_MAX = 16, 64, 512


def check_suffix(suffix: str | None) -> None:
    if suffix is None:
        return
    if not isinstance(suffix, str) or not 1 <= len(suffix) <= SUFFIX_MAX:
        raise HyperparameterError("suffix", f"suffix must be 1 to {SUFFIX_MAX} characters, got {suffix!r}.")
    if not SUFFIX_RE.fullmatch(suffix):
        raise HyperparameterError(
            "suffix", f"suffix may hold only letters, digits, '-', '_' and '.' (it becomes part of the model id), got {suffix!r}.")


def check_metadata(metadata: dict | None) -> None:
    if metadata is None:
        return
    if not isinstance(metadata, dict) or len(metadata) > METADATA_MAX_PAIRS:
        raise HyperparameterError("metadata", f"metadata must be a dict of at most {METADATA_MAX_PAIRS} pairs.")
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise HyperparameterError("metadata", f"metadata keys and values must be strings: {key!r}.")
        if len(key) > METADATA_KEY_MAX or len(value) > METADATA_VALUE_MAX:
            raise HyperparameterError(
                "metadata", f"metadata keys are at most {METADATA_KEY_MAX} characters and values {METADATA_VALUE_MAX}: {key!r}.")


# ---- the models OpenAI fine-tunes -----------------------------------------------------
# From the platform docs ("Which models can be fine-tuned?"); the spec's enum names only
# gpt-4o-mini and gpt-3.5-turbo besides the two completion models. A short name stands for
# the snapshot it trains today.

FINE_TUNABLE_CHAT_SNAPSHOTS = (
    "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4.1-nano-2025-04-14", "gpt-4o-2024-08-06",
    "gpt-4o-mini-2024-07-18", "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-3.5-turbo-0613",
)
FINE_TUNABLE_SHORT_NAMES = {
    "gpt-4.1": "gpt-4.1-2025-04-14", "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14", "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-3.5-turbo": "gpt-3.5-turbo-0125",
}
COMPLETION_MODELS = ("davinci-002", "babbage-002")
"""Fine-tunable too, but on prompt/completion files, not chat."""
FINE_TUNABLE_MODELS = FINE_TUNABLE_CHAT_SNAPSHOTS + COMPLETION_MODELS


# ---- fine-tuned model ids -------------------------------------------------------------
# `ft:BASE:ORG:SUFFIX:ID` for a job's model, `...:ckpt-step-N` for one of its checkpoints.

CHECKPOINT_MARK = ":ckpt-step-"


def fine_tuned_model_id(base: str, org: str, suffix: str | None, job_id: str) -> str:
    return f"ft:{base}:{org}:{suffix or ''}:{job_id.removeprefix('ftjob-')[:8]}"


def checkpoint_model_id(model_id: str, step: int) -> str:
    return f"{model_id}{CHECKPOINT_MARK}{step}"


def is_fine_tuned(model: str | None) -> bool:
    return bool(model) and model.startswith("ft:")


def is_checkpoint(model: str | None) -> bool:
    return is_fine_tuned(model) and CHECKPOINT_MARK in model


def base_of(model: str) -> str:
    """The base model of a fine-tuned or checkpoint id, or the id itself."""
    return model.split(":")[1] if is_fine_tuned(model) else model


def suffix_of(model: str | None) -> str | None:
    """The suffix a fine-tuned (or checkpoint) id was made with, None when it has none."""
    parts = model.split(":") if is_fine_tuned(model) else []
    return (parts[3] or None) if len(parts) >= 5 else None


# ---- job statuses ---------------------------------------------------------------------
# FineTuningJob.status. "paused" is not in the spec's enum (nor openai-python's Literal), yet
# the spec's own pause example answers with it, and so does OpenAI; the client passes it
# through unvalidated. The local server's job service (ftutils.local.store.jobs) moves jobs
# between them; the client waits for a terminal one.

JobStatus = Literal["validating_files", "queued", "running", "succeeded", "failed", "cancelled", "paused"]
JOB_STATUSES: tuple[str, ...] = get_args(JobStatus)
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
"""Final: nothing changes a job in one of these any more."""


# ---- OpenAI's models: the defaults, token limits and training prices ----------------------
# What the client counts, checks and estimates against (`ftutils.data.tokens`, `ftutils.data.cost`,
# `ftutils.train`). The local backend's own base models have their facts in one table of their
# own (`ftutils.local.models.catalog`).

DEFAULT_MODEL = "gpt-4o-mini-2024-07-18"
"""What the client counts tokens for unless told otherwise. Fine-tuning on OpenAI defaults to
"auto": a model the live list can still fine-tune (`AUTO_PREFERENCE`, `train.availability`)."""

# context window, longest training example, tiktoken encoding: from OpenAI's fine-tuning guide
# (token limits table) and model pages.
TOKEN_LIMITS: dict[str, tuple[int, int, str]] = {
    "gpt-4o-mini-2024-07-18": (128_000, 65_536, "o200k_base"),
    "gpt-4o-2024-08-06": (128_000, 65_536, "o200k_base"),
    "gpt-4.1-2025-04-14": (1_047_576, 65_536, "o200k_base"),
    "gpt-4.1-mini-2025-04-14": (1_047_576, 65_536, "o200k_base"),
    "gpt-4.1-nano-2025-04-14": (1_047_576, 65_536, "o200k_base"),
    "gpt-3.5-turbo-0125": (16_385, 16_385, "cl100k_base"),
}

# Which tiktoken encoding counts a model of each family: tiktoken's own prefix table misses the
# dated ids of some families, so `ftutils.data.tokens` checks these first.
FAMILY_ENCODINGS = (("gpt-4o", "o200k_base"), ("gpt-4.1", "o200k_base"), ("gpt-4.5", "o200k_base"),
                    ("gpt-5", "o200k_base"), ("chatgpt-4o", "o200k_base"), ("o1", "o200k_base"),
                    ("o3", "o200k_base"), ("o4", "o200k_base"), ("gpt-4", "cl100k_base"),
                    ("gpt-3.5", "cl100k_base"), ("gpt-35", "cl100k_base"))

PRICE_DATE = "2025-06-01"
# Training, USD per 1M tokens (openai.com/api/pricing, fine-tuning section).
TRAINING_PRICES: dict[str, float] = {
    "gpt-4o-mini-2024-07-18": 3.00,
    "gpt-4o-2024-08-06": 25.00,
    "gpt-4.1-2025-04-14": 25.00,
    "gpt-4.1-mini-2025-04-14": 5.00,
    "gpt-4.1-nano-2025-04-14": 1.50,
    "gpt-3.5-turbo-0125": 8.00,
}


# ---- hyperparameters per method -------------------------------------------------------------
# A supervised job takes the three above; a DPO job takes them and beta. The server checks a
# request with `checked_hyperparameters` and its worker writes `resolved_hyperparameters` back,
# as OpenAI's jobs report theirs.

SHARED_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs")
METHOD_HYPERPARAMETERS = {"supervised": SHARED_HYPERPARAMETERS, "dpo": ("beta", *SHARED_HYPERPARAMETERS)}


def checked_hyperparameters(method: str, given: dict) -> dict:
    """`given` with "auto" for what it leaves out, in METHOD_HYPERPARAMETERS' order; raises
    HyperparameterError naming the first value outside OpenAI's ranges (unknown keys are the
    caller's to refuse)."""
    values = {name: given.get(name, "auto") for name in METHOD_HYPERPARAMETERS[method]}
    check(**{name: values[name] for name in SHARED_HYPERPARAMETERS})
    if "beta" in values:
        check_beta(values["beta"])
    return values


def resolved_hyperparameters(method: str, given: dict, n_examples: int) -> dict:
    """The concrete values a job of `method` with `n_examples` training examples uses."""
    shared = Hyperparameters(**{k: given.get(k, "auto") for k in SHARED_HYPERPARAMETERS}).resolve(n_examples)
    values = {k: shared.to_dict()[k] for k in SHARED_HYPERPARAMETERS}
    if method == "dpo":
        beta = given.get("beta", "auto")
        values = {"beta": AUTO_BETA if beta in (None, "auto") else beta, **values}
    return values


# ---- OpenAI's fine-tuning wind-down ---------------------------------------------------
# Facts with their source, and what the client, notebooks, local server and `ftutils migrate` ask of them:
# a model's shutdown date, and may it be fine-tuned on OpenAI on a given day. A service's `GET /v1/models`
# (its `shutdown_date`) is the authority; these are what the suite knows without asking.

DEPRECATIONS_PAGE = "https://developers.openai.com/api/docs/deprecations"
"""OpenAI's deprecations page: "Update to OpenAI's self-serve fine-tuning" (notice of 2026-05-07),
the Evals platform and the model shutdowns below."""
MODEL_OBJECT_REFERENCE = "https://developers.openai.com/api/reference/resources/models/methods/list"
"""The Model object's `shutdown_date`: "optional string or null", format date (YYYY-MM-DD), "null if not
announced"; openai-python types it `shutdown_date: Optional[str] = None` (types/model.py, 3.63)."""

WIND_DOWN_NOTICE = NEVER_FINE_TUNED_CUTOFF = dt.date(2026, 5, 7)
INACTIVE_CUTOFF = dt.date(2026, 7, 2)
INACTIVE_DAYS = 60
EVALS_READ_ONLY = dt.date(2026, 10, 31)
EVALS_SHUTDOWN = dt.date(2026, 11, 30)
JOB_CREATION_ENDS = dt.date(2027, 1, 6)  # from this day no organisation can create a fine-tuning job on OpenAI
LAST_BASES_SHUTDOWN = dt.date(2027, 1, 14)  # the last fine-tunable bases shut down, with every fine-tune on them
LAST_BASES = ("gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18", "gpt-4.1-2025-04-14", "gpt-4.1-mini-2025-04-14")


@dataclass(frozen=True)
class Milestone:
    date: dt.date
    what: str
    source: str = DEPRECATIONS_PAGE


WIND_DOWN: tuple[Milestone, ...] = (  # in date order
    Milestone(NEVER_FINE_TUNED_CUTOFF, "organisations that never ran fine-tuning can no longer create fine-tuning jobs"),
    Milestone(INACTIVE_CUTOFF, f"nor can organisations with no inference on a fine-tuned model in the past "
                               f"{INACTIVE_DAYS} days"),
    Milestone(dt.date(2026, 10, 23), "gpt-4.1-nano(-2025-04-14) and o4-mini shut down, with every fine-tune on them"),
    Milestone(EVALS_READ_ONLY, "the hosted Evals platform becomes read-only"),
    Milestone(EVALS_SHUTDOWN, "the Evals dashboard and API shut down, and the graders with them"),
    Milestone(JOB_CREATION_ENDS, "no organisation can create new fine-tuning jobs"),
    Milestone(LAST_BASES_SHUTDOWN, f"{', '.join(LAST_BASES[:-1])} and {LAST_BASES[-1]} shut down, with every "
                                   "fine-tuned model built on them; the replacement offered cannot be fine-tuned"),
)

SHUTDOWN_DATES: dict[str, dt.date] = {
    "gpt-4.1-nano-2025-04-14": dt.date(2026, 10, 23),
    "o4-mini-2025-04-16": dt.date(2026, 10, 23),
    # gpt-3.5-turbo(-0125) with the same date: the deprecations page as quoted on 2026-10-15
    # (dev.to/importstatic, "Every OpenAI model shutdown date until January 2027").
    "gpt-3.5-turbo-0125": dt.date(2026, 10, 23),
    **{model: LAST_BASES_SHUTDOWN for model in LAST_BASES},
}
"""Snapshot -> the day it shuts down (DEPRECATIONS_PAGE). No date is known here for gpt-3.5-turbo-1106/-0613,
davinci-002 or babbage-002; their service says, and from JOB_CREATION_ENDS none can be fine-tuned on OpenAI."""
REINFORCEMENT_BASE = "o4-mini-2025-04-16"  # what OpenAI's reinforcement fine-tuning trained (Evals API graders)
SHORT_NAMES = {**FINE_TUNABLE_SHORT_NAMES, "o4-mini": REINFORCEMENT_BASE}

# Which bases each method trains on OpenAI (its fine-tuning guides), cheapest first: the
# order "auto" picks in among those the live model list still carries.
AUTO_PREFERENCE = {
    "supervised": ("gpt-4o-mini-2024-07-18", "gpt-4.1-nano-2025-04-14", "gpt-4.1-mini-2025-04-14",
                   "gpt-3.5-turbo-0125", "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14"),
    "dpo": ("gpt-4.1-nano-2025-04-14", "gpt-4.1-mini-2025-04-14", "gpt-4o-mini-2024-07-18",
            "gpt-4o-2024-08-06", "gpt-4.1-2025-04-14"),
}
TODAY_ENV = "FTUTILS_TODAY"


def today() -> dt.date:
    """The clock's date, or FTUTILS_TODAY (YYYY-MM-DD) when set: tests and "what if" runs
    inject the day through it, including in servers and notebook kernels they start."""
    text = os.environ.get(TODAY_ENV, "").strip()
    return parse_date(text, TODAY_ENV) if text else dt.date.today()


def parse_date(text: str | None, what: str = "shutdown_date") -> dt.date | None:
    """A `shutdown_date` as OpenAI writes it (YYYY-MM-DD) as a date; None stays None."""
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        raise ValueError(f"{what} must be a date written YYYY-MM-DD, got {text!r}") from None


def shutdown_date(model: str | None) -> dt.date | None:
    """The day OpenAI shuts `model` down, if known: a short name has its snapshot's, a
    fine-tuned model or checkpoint its base's (they shut down together)."""
    base = base_of(model) if model else None
    return SHUTDOWN_DATES.get(SHORT_NAMES.get(base, base))


@dataclass(frozen=True)
class Verdict:
    """The answer to "may this model be fine-tuned on OpenAI on this day?": `allowed` False when no
    organisation may (True means only that OpenAI's rules leave room for it); `reason`, one sentence
    with the dates that decide it."""
    allowed: bool
    reason: str


def may_fine_tune(model: str, on: dt.date | None = None) -> Verdict:
    """Whether OpenAI could still create a fine-tuning job on `model` on `on` (default today). Even
    when allowed, OpenAI decides per organisation (see WIND_DOWN): the reason says so."""
    day = on or today()
    if day >= JOB_CREATION_ENDS:
        return Verdict(False, f"OpenAI creates no fine-tuning jobs for any organisation since "
                              f"{JOB_CREATION_ENDS.isoformat()} ({DEPRECATIONS_PAGE}).")
    base = base_of(model)
    if not is_fine_tuned(model) and SHORT_NAMES.get(base, base) not in FINE_TUNABLE_MODELS:
        return Verdict(False, f"{model} is not a model OpenAI fine-tunes.")
    date = shutdown_date(model)
    if date is not None and date <= day:
        whose = f"its base {base}" if is_fine_tuned(model) else model
        return Verdict(False, f"{whose} shut down on OpenAI on {date.isoformat()} ({DEPRECATIONS_PAGE}).")
    until = f"; it shuts down on {date.isoformat()}" if date else ""
    return Verdict(True, f"Only for an organisation that may still create fine-tuning jobs: not one that never "
                         f"fine-tuned (since {NEVER_FINE_TUNED_CUTOFF.isoformat()}), nor one with no inference on a "
                         f"fine-tuned model in the past {INACTIVE_DAYS} days (since {INACTIVE_CUTOFF.isoformat()}), "
                         f"and nobody from {JOB_CREATION_ENDS.isoformat()}{until}.")
