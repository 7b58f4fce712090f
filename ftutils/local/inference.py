"""Chat completions from base models and their LoRA fine-tunes, as OpenAI samples them.

One engine per API process. A base model loads once; each fine-tune is a copy of its
base with the adapter merged in (decoding then costs what the base costs), kept in an
LRU of `max_cached`. Tokens are generated one at a time over the KV cache so streaming,
stop strings and logprobs all see each token as it comes; concurrent requests on one
model share those forward passes (ftutils.local.batching), and a system prompt they
repeat is prefilled once.

Text is assembled from each token's bytes: byte-level BPE splits a multi-byte character
across tokens, so a stream holds back an incomplete UTF-8 sequence until it completes.
"""
from __future__ import annotations

import codecs
import copy
import os
import queue
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import ftutils.threads  # noqa: F401  (before torch loads)

import torch  # noqa: E402

from ftutils.local import chatdata, structured  # noqa: E402
from ftutils.local.base_models import BASE_MODELS, cache_argument, forward_params, load_base, returned_cache  # noqa: E402
from ftutils.local.batching import Scheduler  # noqa: E402

DEFAULT_MAX_TOKENS = 256
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
SMALL_MODEL_PARAMS = 20_000_000  # below this a forward pass runs on one thread
_small: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> below SMALL_MODEL_PARAMS


@dataclass
class TokenLogprob:
    token: str
    """The token's text; bytes that are not whole UTF-8 characters appear as \\xNN escapes."""
    logprob: float
    bytes: list[int]
    top_logprobs: list[tuple[str, float, list[int]]]
    """The most likely tokens at this position, best first: (token, logprob, bytes)."""


@dataclass
class Choice:
    text: str
    finish_reason: str
    """"stop" (end of turn or a stop string) or "length" (max_tokens or the context)."""
    logprobs: list[TokenLogprob] | None


@dataclass
class GenerationResult:
    choices: list[Choice]
    prompt_tokens: int
    completion_tokens: int
    """Tokens generated over all choices, the end-of-turn token included."""


@dataclass
class StreamDelta:
    text: str
    logprobs: list[TokenLogprob] | None
    finish_reason: str | None
    prompt_tokens: int | None = None
    """Set on the last delta only, for a stream's usage chunk."""
    completion_tokens: int | None = None


class InferenceError(ValueError):
    """A request the model cannot serve; `param` and `code` as OpenAI's error would name them."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


class InferenceEngine:
    """Chat completions for the API process; safe to call from several threads.

    `max_cached` counts fine-tunes kept merged in memory besides the bases; each costs
    a copy of its base's non-embedding weights (~430 MB fp32 for SmolLM2-135M).
    """

    def __init__(self, data_dir, extra_models: dict[str, str] | None = None, max_cached: int = 4):
        self.data_dir, self.extra_models, self.max_cached = Path(data_dir), extra_models or {}, max_cached
        self._bases: dict[str, tuple] = {}
        self._vocabs: dict[str, _Vocab] = {}
        self._tuned: OrderedDict[tuple[str, str], torch.nn.Module] = OrderedDict()
        self._load_lock = threading.Lock()
        # One thread runs every forward pass, batching concurrent requests per model: the
        # CPU has few cores and concurrent passes would only contend.
        self.scheduler = Scheduler(_step)

    def generate(self, base_model: str, adapter_dir, messages: list[dict], *, max_tokens: int | None = None,
                 temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
                 stop: str | list[str] | None = None, n: int = 1, logprobs: bool = False,
                 top_logprobs: int = 0, response_format: dict | None = None,
                 logit_bias: dict | None = None) -> GenerationResult:
        runs = self._run(base_model, adapter_dir, messages, max_tokens, temperature, top_p, seed, stop, n,
                         logprobs, top_logprobs, response_format, logit_bias)
        prompt_tokens = next(runs)
        texts, lps, reasons = [""] * n, [[] for _ in range(n)], [None] * n
        completion_tokens = 0
        for row, delta, generated in runs:
            texts[row] += delta.text
            lps[row] += delta.logprobs or []
            reasons[row] = delta.finish_reason or reasons[row]
            completion_tokens += generated
        choices = [Choice(texts[i], reasons[i], lps[i] if logprobs else None) for i in range(n)]
        return GenerationResult(choices, prompt_tokens, completion_tokens)

    def stream(self, base_model: str, adapter_dir, messages: list[dict], *, max_tokens: int | None = None,
               temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None,
               stop: str | list[str] | None = None, n: int = 1, logprobs: bool = False, top_logprobs: int = 0,
               response_format: dict | None = None, logit_bias: dict | None = None):
        """StreamDelta for one choice as tokens come; the last has finish_reason and usage.

        Bad arguments, an unknown model or a too-long prompt raise here, before the first
        delta, so a server can still answer with an error status.
        """
        if n != 1:
            raise InferenceError("streaming supports n=1 only", param="n")
        runs = self._run(base_model, adapter_dir, messages, max_tokens, temperature, top_p, seed, stop, 1,
                         logprobs, top_logprobs, response_format, logit_bias)
        return self._deltas(runs, next(runs))

    @staticmethod
    def _deltas(runs, prompt_tokens):
        completion_tokens = 0
        for _, delta, generated in runs:
            completion_tokens += generated
            if delta.finish_reason:
                delta.prompt_tokens, delta.completion_tokens = prompt_tokens, completion_tokens
            if delta.text or delta.logprobs or delta.finish_reason:
                yield delta

    def model(self, base_model: str, adapter_dir=None):
        """(model, tokenizer): the base, or a cached copy with the adapter merged in."""
        with self._load_lock:
            if base_model not in self._bases:
                self._bases[base_model] = load_base(base_model, self.data_dir, self.extra_models)
            base, tokenizer = self._bases[base_model]
            if adapter_dir is None:
                return base, tokenizer
            key = (base_model, str(Path(adapter_dir).resolve()))
            if key in self._tuned:
                self._tuned.move_to_end(key)
                return self._tuned[key], tokenizer
            self._tuned[key] = _merged(base, key[1])
            while len(self._tuned) > self.max_cached:
                self._tuned.popitem(last=False)
            return self._tuned[key], tokenizer

    def _vocab(self, base_model: str, tokenizer) -> "_Vocab":
        with self._load_lock:
            if base_model not in self._vocabs:
                self._vocabs[base_model] = _Vocab(tokenizer)
            return self._vocabs[base_model]

    def _run(self, base_model, adapter_dir, messages, max_tokens, temperature, top_p, seed, stop, n,
             want_logprobs, top_logprobs, response_format=None, logit_bias=None):
        """Yields the prompt's token count, then (row, StreamDelta, tokens generated) as tokens come."""
        _check(temperature, top_p, n, top_logprobs, max_tokens)
        model, tokenizer = self.model(base_model, adapter_dir)
        prompt = chatdata.render(tokenizer, chatdata.normalize_messages(messages), add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        context = BASE_MODELS[base_model].context_length if base_model in BASE_MODELS else \
            getattr(model.config, "max_position_embeddings", 2048)
        room = context - len(prompt_ids)
        if room <= 0:
            raise InferenceError(f"This model's maximum context length is {context} tokens; the messages have "
                                 f"{len(prompt_ids)}.", param="messages", code="context_length_exceeded")
        limit = min(max_tokens or DEFAULT_MAX_TOKENS, room)
        stops = [stop] if isinstance(stop, str) else [s for s in (stop or []) if s]
        k = top_logprobs if want_logprobs else 0
        vocab = self._vocab(base_model, tokenizer)
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
        rows = [_Choice(stops, want_logprobs) for _ in range(n)]
        # One JSON matcher per choice (ftutils.local.structured); a bad schema raises here.
        constraints = structured.constraints_for(response_format, messages, tokenizer, model.config.vocab_size,
                                                 vocab.stop_ids, n) if response_format else None
        bias = _logit_bias(logit_bias, model.config.vocab_size)
        yield len(prompt_ids)

        request = _Request(model, prompt_ids, _prefix(tokenizer, messages, prompt_ids), n, limit, temperature,
                           top_p, generator, k, want_logprobs, rows, vocab, constraints)
        request.bias = bias
        self.scheduler.submit(request)
        try:
            while True:
                item = request.events.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item[0], item[1], 1
        finally:  # the caller stopped reading (a closed stream): its rows leave the batch
            request.cancelled = True


_DONE = object()


def _prefix(tokenizer, messages: list[dict], prompt_ids: list[int]) -> tuple:
    """Every turn before the last user message, as tokens, when they are a token prefix of
    the prompt: the part many requests share (a system prompt, or a system prompt and the
    same few solved examples before every test item), whose KV cache the scheduler keeps."""
    normalized = chatdata.normalize_messages(messages)
    first = max((i for i, m in enumerate(normalized) if m["role"] == "user"), default=0)
    if not 0 < first < len(normalized):
        return ()
    try:
        ids = tokenizer(chatdata.render(tokenizer, normalized[:first]), add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 (a template that renders no system-only conversation: no prefix, no harm)
        return ()
    return tuple(ids) if len(ids) < len(prompt_ids) and prompt_ids[:len(ids)] == ids else ()


class _Request:
    """One chat completion in the scheduler: its prompt, its n rows' sampling and text."""

    def __init__(self, model, prompt_ids, prefix, n, limit, temperature, top_p, generator, k, want_logprobs,
                 choices, vocab, constraints=None):
        self.model, self.prompt_ids, self.prefix, self.n, self.limit = model, prompt_ids, prefix, n, limit
        self.temperature, self.top_p, self.generator, self.k = temperature, top_p, generator, k
        self.want_logprobs, self.choices, self.vocab = want_logprobs, choices, vocab
        self.constraints = constraints  # per choice, or None: response_format's token masks
        self.bias = None  # (token ids, values) of logit_bias, added to every row's logits
        self.alive = list(range(n))  # choices still generating, in row order
        self.count = 0
        self.cancelled = False
        self.events = queue.SimpleQueue()  # (choice, StreamDelta), then _DONE or an exception

    def consume(self, logits: torch.Tensor):
        """Sample the next token of each live row from its logits [rows, vocab]; (tokens, done)."""
        if self.constraints or self.bias is not None:
            logits = logits.clone()  # the batch's tensor: change only this request's copy
        if self.bias is not None:
            logits[:, self.bias[0]] += self.bias[1]
        if self.constraints:
            for j, index in enumerate(self.alive):
                self.constraints[index].apply(logits[j])
        chosen, chosen_lp, top = _sample(logits, self.temperature, self.top_p, self.generator, self.k)
        self.count += 1
        done = []
        for j, index in enumerate(self.alive):
            token = chosen[j].item()
            entry = None
            if self.want_logprobs and token not in self.vocab.stop_ids:
                entry = self.vocab.logprob(token, chosen_lp[j].item(), list(zip(top[1][j].tolist(), top[0][j].tolist())))
            state = self.choices[index]
            if self.constraints and token not in self.vocab.stop_ids:
                self.constraints[index].advance(token)
            self.events.put((index, state.push(token, entry, self.vocab, final=self.count == self.limit)))
            done.append(state.done)
        self.alive = [index for index, d in zip(self.alive, done) if not d]
        if not self.alive:
            self.events.put(_DONE)
        return chosen.tolist(), done

    def fail(self, exc: BaseException) -> None:
        self.events.put(exc)


class _Choice:
    """One choice's text so far: byte decoding, stop strings, and what may be released."""

    def __init__(self, stops: list[str], want_logprobs: bool):
        self.stops, self.want_logprobs = stops, want_logprobs
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text, self.released, self.done = "", 0, False

    def push(self, token: int, entry, vocab: "_Vocab", final: bool) -> StreamDelta:
        logprobs = [entry] if entry else ([] if self.want_logprobs else None)
        if token in vocab.stop_ids:
            return self._finish("stop", logprobs)
        start = len(self.text)
        self.text += self.decoder.decode(vocab.bytes(token))
        cuts = [self.text.find(stop, max(0, start - len(stop) + 1)) for stop in self.stops]
        cuts = [cut for cut in cuts if cut >= 0]
        if cuts:
            cut = min(cuts)
            self.text = self.text[:cut]
            # The token that completed the stop string is reported only if part of it
            # stays in the answer.
            return self._finish("stop", logprobs if start < cut else ([] if self.want_logprobs else None), flush=False)
        if final:
            return self._finish("length", logprobs)
        # Hold back an ending that could still grow into a stop string.
        held = max((n for s in self.stops for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)
        safe = len(self.text) - held
        text, self.released = self.text[self.released:safe], max(self.released, safe)
        return StreamDelta(text, logprobs, None)

    def _finish(self, reason: str, logprobs, flush: bool = True) -> StreamDelta:
        if flush:  # an incomplete UTF-8 sequence at the very end becomes U+FFFD
            self.text += self.decoder.decode(b"", final=True)
        self.done = True
        return StreamDelta(self.text[self.released:], logprobs, reason)


class _Vocab:
    """Token bytes and stop ids for a tokenizer, worked out as tokens first appear."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        ends = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
                tokenizer.convert_tokens_to_ids("<|endoftext|>")}
        self.stop_ids = {i for i in ends if isinstance(i, int) and i != tokenizer.unk_token_id}
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"
        self.byte_of = {c: b for b, c in _bytes_to_unicode().items()}
        self._bytes: dict[int, bytes] = {}

    def bytes(self, token: int) -> bytes:
        if token not in self._bytes:
            piece = self.tokenizer.convert_ids_to_tokens(token)
            if token in self.special or piece is None:
                raw = (piece or "").encode()
            elif self.byte_level and all(c in self.byte_of for c in piece):
                raw = bytes(self.byte_of[c] for c in piece)
            elif piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:  # SentencePiece byte fallback
                raw = bytes([int(piece[3:5], 16)])
            else:
                raw = piece.replace("\u2581", " ").encode()
            self._bytes[token] = raw
        return self._bytes[token]

    def logprob(self, token: int, logprob: float, top: list[tuple[int, float]]) -> TokenLogprob:
        def text(i):
            return self.bytes(i).decode("utf-8", errors="backslashreplace")

        return TokenLogprob(text(token), logprob, list(self.bytes(token)),
                            [(text(i), v, list(self.bytes(i))) for i, v in top])


def _step(model, ids, cache, mask, positions):
    """Next-token logits (fp32, on the CPU) after `ids` [rows, new tokens], and the grown KV
    cache; `mask` covers cache and ids (0 = padding), `positions` the ids' positions."""
    if model not in _small:
        _small[model] = model.device.type == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    if _small[model]:
        # A tiny model's matmuls are too small to split across threads, and on a CPU shared
        # with the training worker the second thread mostly waits (we saw 100x slower ops).
        # Only the scheduler's thread runs forward passes, so no other one sees this setting.
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _forward(model, ids, cache, mask, positions)
        finally:
            torch.set_num_threads(saved)
    return _forward(model, ids, cache, mask, positions)


def _forward(model, ids, cache, mask, positions):
    extra = {"logits_to_keep": 1} if "logits_to_keep" in forward_params(model) else {}  # skip the prompt's logits
    device = model.device
    out = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                use_cache=True, **cache_argument(model, cache), **extra)
    return out.logits[:, -1].float().cpu(), returned_cache(out)


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator, k: int):
    """Chosen ids, their logprobs, and the top-k (logprobs, ids), per row.

    Logprobs are those of the model's own distribution (temperature 1), as OpenAI
    reports them, whatever temperature and top_p did to the sampling.
    """
    logprobs = torch.log_softmax(logits, dim=-1)
    if temperature == 0:
        chosen = logits.argmax(dim=-1)
    else:
        probs = torch.softmax(logits / temperature, dim=-1)
        if top_p < 1:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            outside = sorted_p.cumsum(dim=-1) - sorted_p >= top_p  # mass before it already reaches top_p
            outside[:, 0] = False
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    chosen_lp = logprobs.gather(-1, chosen[:, None]).squeeze(-1)
    top = logprobs.topk(k, dim=-1) if k else (torch.empty(len(logits), 0), torch.empty(len(logits), 0, dtype=torch.long))
    return chosen, chosen_lp, top


def _merged(base, adapter_dir: str):
    """A copy of `base` with the LoRA adapter merged into its weights."""
    from peft import PeftModel

    # LoRA never touches embeddings, so the copy shares them (and the lm_head tied to
    # them): a third of SmolLM2's weights need no second copy.
    shared = {id(p): p for m in base.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters(recurse=False)}
    clone = copy.deepcopy(base, memo=shared)
    return PeftModel.from_pretrained(clone, adapter_dir).merge_and_unload().eval()


def _logit_bias(logit_bias: dict | None, vocab_size: int):
    """OpenAI's logit_bias ({"token id": -100..100}) as (ids, values) to add to the logits,
    before sampling and before logprobs are taken, as OpenAI applies it."""
    if not logit_bias:
        return None
    ids, values = [], []
    for key, value in logit_bias.items():
        try:
            token = int(key)
        except (TypeError, ValueError):
            raise InferenceError(f"Invalid key in 'logit_bias': {key!r} is not a token id.", param="logit_bias",
                                 code="invalid_value") from None
        if not 0 <= token < vocab_size:
            raise InferenceError(f"Invalid key in 'logit_bias': token id {token} is not in this model's vocabulary "
                                 f"(0..{vocab_size - 1}).", param="logit_bias", code="invalid_value")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
            raise InferenceError(f"Invalid value for 'logit_bias' token {key}: {value!r}; a bias is between -100 and "
                                 "100.", param="logit_bias", code="invalid_value")
        ids.append(token)
        values.append(float(value))
    return torch.tensor(ids), torch.tensor(values)


def _check(temperature, top_p, n, top_logprobs, max_tokens):
    if not 0 <= temperature <= 2:
        raise InferenceError(f"temperature must be between 0 and 2, got {temperature}", param="temperature")
    if not 0 < top_p <= 1:
        raise InferenceError(f"top_p must be greater than 0 and at most 1, got {top_p}", param="top_p")
    if not isinstance(n, int) or n < 1:
        raise InferenceError(f"n must be a positive integer, got {n!r}", param="n")
    if not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
        raise InferenceError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise InferenceError(f"max_tokens must be a positive integer, got {max_tokens!r}", param="max_tokens")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character table, which byte-level BPE vocabularies are written in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars
