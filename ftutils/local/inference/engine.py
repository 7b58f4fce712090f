"""Chat completions from base models and their LoRA fine-tunes, as OpenAI samples them.

One engine per API process. A base model loads once; each fine-tune is a copy of its
base with the adapter merged in (decoding then costs what the base costs), kept in an
LRU of `max_cached`. Tokens are generated one at a time over the KV cache so streaming,
stop strings and logprobs all see each token as it comes (`decoding`); concurrent requests on
one model share those forward passes (`scheduler`), and a system prompt they repeat is
prefilled once. How a request samples is one `SamplingParams` (`sampling`), its
response_format a token mask per choice (`structured`).
"""
from __future__ import annotations

import copy
import queue
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import ftutils.threads  # noqa: F401  (before torch loads)

import torch  # noqa: E402

from ftutils.local.inference import structured  # noqa: E402
from ftutils.local.inference.decoding import ChoiceText, StreamDelta, TokenLogprob, Vocab  # noqa: E402
from ftutils.local.inference.sampling import InferenceError, SamplingParams, sample  # noqa: E402
from ftutils.local.inference.scheduler import Scheduler  # noqa: E402
from ftutils.local.models import catalog, chat_format  # noqa: E402
from ftutils.local.models.compat import cache_argument, forward_params, returned_cache  # noqa: E402
from ftutils.local.models.loading import load_base  # noqa: E402

DEFAULT_MAX_TOKENS = 256
_one_thread: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> runs on one thread (catalog rule)
__all__ = ["InferenceEngine", "InferenceError", "SamplingParams", "GenerationResult", "Choice", "StreamDelta",
           "TokenLogprob"]


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


class InferenceEngine:
    """Chat completions for the API process; safe to call from several threads.

    `max_cached` counts fine-tunes kept merged in memory besides the bases; each costs
    a copy of its base's non-embedding weights (~430 MB fp32 for SmolLM2-135M).
    """

    def __init__(self, data_dir, extra_models: dict[str, str] | None = None, max_cached: int = 4):
        self.data_dir, self.extra_models, self.max_cached = Path(data_dir), extra_models or {}, max_cached
        self._bases: dict[str, tuple] = {}
        self._vocabs: dict[str, Vocab] = {}
        self._tuned: OrderedDict[tuple[str, str], torch.nn.Module] = OrderedDict()
        self._load_lock = threading.Lock()
        # One thread runs every forward pass, batching concurrent requests per model: the
        # CPU has few cores and concurrent passes would only contend.
        self.scheduler = Scheduler(_step)

    @property
    def cached_fine_tunes(self) -> int:
        """Fine-tunes held merged in memory now."""
        return len(self._tuned)

    def generate(self, base_model: str, adapter_dir, messages: list[dict], params: SamplingParams | None = None,
                 **options) -> GenerationResult:
        """Every choice whole. `params`, or SamplingParams(**options) (e.g. temperature=0)."""
        params = params or SamplingParams(**options)
        runs = self._run(base_model, adapter_dir, messages, params)
        prompt_tokens = next(runs)
        n = params.n
        texts, lps, reasons = [""] * n, [[] for _ in range(n)], [None] * n
        completion_tokens = 0
        for row, delta, generated in runs:
            texts[row] += delta.text
            lps[row] += delta.logprobs or []
            reasons[row] = delta.finish_reason or reasons[row]
            completion_tokens += generated
        choices = [Choice(texts[i], reasons[i], lps[i] if params.logprobs else None) for i in range(n)]
        return GenerationResult(choices, prompt_tokens, completion_tokens)

    def stream(self, base_model: str, adapter_dir, messages: list[dict], params: SamplingParams | None = None,
               **options):
        """StreamDelta for one choice as tokens come; the last has finish_reason and usage.

        Bad arguments, an unknown model or a too-long prompt raise here, before the first
        delta, so a server can still answer with an error status.
        """
        params = params or SamplingParams(**options)
        if params.n != 1:
            raise InferenceError("streaming supports n=1 only", param="n")
        runs = self._run(base_model, adapter_dir, messages, params)
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

    def _vocab(self, base_model: str, tokenizer) -> Vocab:
        with self._load_lock:
            if base_model not in self._vocabs:
                self._vocabs[base_model] = Vocab(tokenizer)
            return self._vocabs[base_model]

    def _run(self, base_model, adapter_dir, messages, params: SamplingParams):
        """Yields the prompt's token count, then (row, StreamDelta, tokens generated) as tokens come."""
        model, tokenizer = self.model(base_model, adapter_dir)
        prompt = chat_format.render(tokenizer, chat_format.normalize_messages(messages), add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        entry = catalog.base_model(base_model)
        context = entry.context_length if entry else getattr(model.config, "max_position_embeddings", 2048)
        room = context - len(prompt_ids)
        if room <= 0:
            raise InferenceError(f"This model's maximum context length is {context} tokens; the messages have "
                                 f"{len(prompt_ids)}.", param="messages", code="context_length_exceeded")
        vocab = self._vocab(base_model, tokenizer)
        # One JSON matcher per choice (`structured`); a bad schema raises here.
        constraints = structured.constraints_for(params.response_format, messages, tokenizer, model.config.vocab_size,
                                                 vocab.stop_ids, params.n) if params.response_format else None
        request = _Request(model, prompt_ids, _prefix(tokenizer, messages, prompt_ids), params,
                           min(params.max_tokens or DEFAULT_MAX_TOKENS, room), vocab, constraints,
                           params.bias_tensors(model.config.vocab_size))
        yield len(prompt_ids)

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
    normalized = chat_format.normalize_messages(messages)
    first = max((i for i, m in enumerate(normalized) if m["role"] == "user"), default=0)
    if not 0 < first < len(normalized):
        return ()
    try:
        ids = tokenizer(chat_format.render(tokenizer, normalized[:first]), add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 (a template that renders no system-only conversation: no prefix, no harm)
        return ()
    return tuple(ids) if len(ids) < len(prompt_ids) and prompt_ids[:len(ids)] == ids else ()


class _Request:
    """One chat completion in the scheduler: its prompt, its n rows' sampling and text."""

    def __init__(self, model, prompt_ids, prefix, params: SamplingParams, limit: int, vocab: Vocab,
                 constraints=None, bias=None):
        self.model, self.prompt_ids, self.prefix, self.params, self.limit = model, prompt_ids, prefix, params, limit
        self.n, self.vocab, self.generator = params.n, vocab, params.generator()
        self.choices = [ChoiceText(list(params.stop), params.logprobs) for _ in range(params.n)]
        self.constraints = constraints  # per choice, or None: response_format's token masks
        self.bias = bias  # (token ids, values) of logit_bias, added to every row's logits
        self.alive = list(range(params.n))  # choices still generating, in row order
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
        chosen, chosen_lp, top = sample(logits, self.params, self.generator)
        self.count += 1
        done = []
        for j, index in enumerate(self.alive):
            token = chosen[j].item()
            entry = None
            if self.params.logprobs and token not in self.vocab.stop_ids:
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


def _step(model, ids, cache, mask, positions):
    """Next-token logits (fp32, on the CPU) after `ids` [rows, new tokens], and the grown KV
    cache; `mask` covers cache and ids (0 = padding), `positions` the ids' positions."""
    if model not in _one_thread:
        _one_thread[model] = model.device.type == "cpu" and catalog.one_thread(sum(p.numel() for p in model.parameters()))
    if _one_thread[model]:
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


def _merged(base, adapter_dir: str):
    """A copy of `base` with the LoRA adapter merged into its weights."""
    from peft import PeftModel

    # LoRA never touches embeddings, so the copy shares them (and the lm_head tied to
    # them): a third of SmolLM2's weights need no second copy.
    shared = {id(p): p for m in base.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters(recurse=False)}
    clone = copy.deepcopy(base, memo=shared)
    return PeftModel.from_pretrained(clone, adapter_dir).merge_and_unload().eval()
