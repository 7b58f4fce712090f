"""Dynamic batching for the chat engine (`engine`): concurrent requests on one model share forward passes.

One scheduler thread does every forward pass (the CPU has few cores; two passes at once
would only contend). Each step, per model: requests that arrived since the last step are
prefilled together (prompts left-padded to the longest, an attention mask hiding the
padding and position ids counting only real tokens), joined to the rows already decoding
(KV caches left-padded to one length), every row samples its next token with its own
request's settings, finished rows leave, and the rest decode one token in one pass.
So 16 clients scoring at once cost about one batched pass per token, not sixteen.

A request's prompt prefix that many requests repeat (the system prompt of every test item, and
any few-shot turns before it) is prefilled once and its KV cache reused (`PrefixCache`).

The scheduler knows nothing of sampling or text: a request's `consume(logits)` does that
(`engine._Request.consume`) and returns which of its rows are done.
"""
from __future__ import annotations

import atexit
import copy
import threading
import weakref
from collections import OrderedDict, deque

import torch

MAX_ROWS = 64  # rows decoding together per model: a decode step is memory-bound (it reads every weight),
# so on SmolLM2 it took 162 ms for 16 rows, 183 ms for 32, 254 ms for 64
PREFIX_MIN_TOKENS = 16  # a shorter shared prefix costs more to copy than to recompute
PREFIX_SLOTS = 8  # prefixes kept per engine


class PrefixCache:
    """KV caches of prompt prefixes (every turn before the last user message), per model, LRU."""

    def __init__(self, slots: int = PREFIX_SLOTS):
        self.slots = slots
        self._items: OrderedDict[tuple, object] = OrderedDict()
        self.hits = 0

    def get(self, model, prefix: tuple):
        key = (id(model), prefix)
        hit = self._items.get(key)
        if hit is not None and hit[0] is model:
            self._items.move_to_end(key)
            self.hits += 1
            return hit[1]
        return None

    def put(self, model, prefix: tuple, cache) -> None:
        self._items[(id(model), prefix)] = (model, cache)
        self._items.move_to_end((id(model), prefix))
        while len(self._items) > self.slots:
            self._items.popitem(last=False)


class _Batch:
    """Rows decoding together on one model: their requests, KV cache, mask and next logits."""

    def __init__(self, model):
        self.model = model
        self.waiting: deque = deque()
        self.rows: list = []  # the request of each row; a request's rows are contiguous
        self.admitting: list = []  # requests being prefilled this step
        self.cache = self.mask = self.logits = None


class Scheduler:
    """Runs requests' forward passes in batches on one thread. `forward(model, ids, cache,
    mask, positions)` returns (last-position logits [B, V], cache)."""

    def __init__(self, forward, max_rows: int = MAX_ROWS):
        self.forward, self.max_rows = forward, max_rows
        self.prefixes = PrefixCache()
        self._cv = threading.Condition()
        self._incoming: list = []
        self._batches: dict = {}  # model -> _Batch; a merged fine-tune is its own model
        self._thread = None
        self._closed = False
        atexit.register(_close, weakref.ref(self))  # a thread killed inside torch at exit aborts the process
        self.steps = 0  # decode/prefill steps run, for tests and benchmarks
        self.max_batch = 0  # most rows seen in one step

    def close(self) -> None:
        """Stop the thread once the requests it has are done (at exit)."""
        with self._cv:
            self._closed = True
            thread = self._thread
            self._cv.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def submit(self, request) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the inference engine is shutting down")
            self._incoming.append(request)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="ftutils-batcher", daemon=True)
                self._thread.start()
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._incoming and not self._batches:
                    if self._closed or not self._cv.wait(timeout=60):  # idle a minute: let the thread go
                        if not self._incoming and not self._batches:
                            self._thread = None
                            return
                incoming, self._incoming = self._incoming, []
            for request in incoming:
                batch = self._batches.get(request.model)
                if batch is None:
                    batch = self._batches[request.model] = _Batch(request.model)
                batch.waiting.append(request)
            for model, batch in list(self._batches.items()):  # one step per model: fair across models
                try:
                    with torch.inference_mode():
                        self._step(batch)
                except BaseException as exc:  # noqa: BLE001 (every waiting caller must hear of it)
                    for request in {id(r): r for r in batch.rows + batch.admitting}.values():
                        request.fail(exc)
                    batch.rows, batch.admitting, batch.cache, batch.mask, batch.logits = [], [], None, None, None
                if not batch.rows and not batch.waiting:
                    del self._batches[model]

    def _step(self, batch: _Batch) -> None:
        admit, room = [], self.max_rows - len(batch.rows)
        while batch.waiting and (batch.waiting[0].cancelled or batch.waiting[0].n <= room or not (batch.rows or admit)):
            request = batch.waiting.popleft()
            if not request.cancelled:
                admit.append(request)
                room -= request.n
        if admit:
            batch.admitting = admit
            self._admit(batch, admit)
            batch.admitting = []
        if not batch.rows:
            return
        self.steps += 1
        self.max_batch = max(self.max_batch, len(batch.rows))
        # Each request samples its own rows (its generator, temperature, stops, logprobs).
        keep, tokens, start = [], [], 0
        while start < len(batch.rows):
            request = batch.rows[start]
            end = start + 1
            while end < len(batch.rows) and batch.rows[end] is request:
                end += 1
            if request.cancelled:
                done, chosen = [True] * (end - start), [0] * (end - start)
            else:
                chosen, done = request.consume(batch.logits[start:end])
            for offset in range(end - start):
                if not done[offset]:
                    keep.append(start + offset)
                    tokens.append(int(chosen[offset]))
            start = end
        if len(keep) < len(batch.rows):
            batch.rows = [batch.rows[i] for i in keep]
            if not keep:
                batch.cache = batch.mask = batch.logits = None
                return
            index = torch.tensor(keep)
            batch.cache.batch_select_indices(index)
            batch.mask = batch.mask[index]
            _trim(batch)
        positions = batch.mask.sum(-1, keepdim=True)  # each row's next position counts only its real tokens
        batch.mask = torch.cat([batch.mask, torch.ones(len(keep), 1, dtype=batch.mask.dtype)], dim=-1)
        ids = torch.tensor(tokens).view(-1, 1)
        batch.logits, batch.cache = self.forward(batch.model, ids, batch.cache, batch.mask, positions)

    def _admit(self, batch: _Batch, requests: list) -> None:
        """Prefill the newcomers (grouped by a cached shared prefix) and join them to the batch."""
        groups: dict[tuple, list] = {}
        for request in requests:
            groups.setdefault(request.prefix, []).append(request)
        for prefix, shared in groups.items():
            for members in _by_length(shared, len(prefix) if len(prefix) >= PREFIX_MIN_TOKENS else 0):
                cache, mask, logits = self._prefill(batch.model, prefix, members)
                # n choices share one prefill: repeat each request's row n times
                repeats = torch.tensor([r.n for r in members])
                if int(repeats.max()) > 1:
                    index = torch.repeat_interleave(torch.arange(len(members)), repeats)
                    cache.batch_select_indices(index)
                    mask, logits = mask[index], logits[index]
                rows = [r for r in members for _ in range(r.n)]
                if not batch.rows:
                    batch.rows, batch.cache, batch.mask, batch.logits = rows, cache, mask, logits
                else:
                    batch.cache, batch.mask = _join(batch.cache, batch.mask, cache, mask)
                    batch.logits = torch.cat([batch.logits, logits])
                    batch.rows = batch.rows + rows

    def _prefill(self, model, prefix: tuple, members: list):
        base = None
        if len(prefix) >= PREFIX_MIN_TOKENS:
            base = self.prefixes.get(model, prefix)
            if base is None:
                _, base = self.forward(model, torch.tensor([list(prefix)]), None, torch.ones(1, len(prefix),
                                       dtype=torch.long), torch.arange(len(prefix)).view(1, -1))
                self.prefixes.put(model, prefix, base)
        skip = len(prefix) if base is not None else 0
        tails = [r.prompt_ids[skip:] for r in members]
        width = max(len(t) for t in tails)
        ids = torch.zeros(len(tails), width, dtype=torch.long)
        mask = torch.zeros(len(tails), width, dtype=torch.long)
        for row, tail in enumerate(tails):  # left-padded: every row's last token is in the last column
            ids[row, width - len(tail):] = torch.tensor(tail)
            mask[row, width - len(tail):] = 1
        cache = None
        if base is not None:
            cache = copy.deepcopy(base)
            cache.batch_repeat_interleave(len(tails))
            mask = torch.cat([torch.ones(len(tails), skip, dtype=torch.long), mask], dim=-1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, -width:]
        logits, cache = self.forward(model, ids, cache, mask, positions)
        return cache, mask, logits


PAD_SLACK = 1.25  # a prefill group may compute this many tokens per real one before it is split


def _by_length(requests: list, skip: int) -> list[list]:
    """Requests in prefill groups of similar prompt length, so left padding wastes little:
    one pass per group, a group split where padding would exceed PAD_SLACK (and a split
    still leaves 4 rows to batch)."""
    ordered = sorted(requests, key=lambda r: len(r.prompt_ids))
    groups, current = [], []
    for request in ordered:
        trial = current + [request]
        width = len(request.prompt_ids) - skip
        real = sum(len(r.prompt_ids) - skip for r in trial)
        if len(current) >= 4 and width * len(trial) > PAD_SLACK * real:
            groups.append(current)
            trial = [request]
        current = trial
    return groups + [current] if current else groups


def _close(ref) -> None:
    scheduler = ref()
    if scheduler is not None:
        scheduler.close()


def _layers(cache) -> list:
    return cache.layers


def _join(cache_a, mask_a, cache_b, mask_b):
    """Two batches' KV caches and masks as one, the shorter left-padded (masked out)."""
    width = max(mask_a.shape[1], mask_b.shape[1])

    def pad(t, dim_from_end, by):
        if not by:
            return t
        shape = list(t.shape)
        shape[-dim_from_end] = by
        return torch.cat([t.new_zeros(shape), t], dim=-dim_from_end)

    pad_a, pad_b = width - mask_a.shape[1], width - mask_b.shape[1]
    for la, lb in zip(_layers(cache_a), _layers(cache_b)):
        la.keys = torch.cat([pad(la.keys, 2, pad_a), pad(lb.keys, 2, pad_b)])
        la.values = torch.cat([pad(la.values, 2, pad_a), pad(lb.values, 2, pad_b)])
    return cache_a, torch.cat([pad(mask_a, 1, pad_a), pad(mask_b, 1, pad_b)])


def _trim(batch: _Batch) -> None:
    """Drop leading columns no remaining row attends to (left by rows that finished)."""
    used = batch.mask.any(dim=0)
    lead = int(used.int().argmax()) if bool(used.any()) else 0
    if lead:
        batch.mask = batch.mask[:, lead:]
        for layer in _layers(batch.cache):
            layer.keys = layer.keys[..., lead:, :]
            layer.values = layer.values[..., lead:, :]
