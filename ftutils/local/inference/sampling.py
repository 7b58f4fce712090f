"""How a chat completion samples: one `SamplingParams`, checked once when it is made.

The API builds it from the request (`ftutils.local.api.completions`), tests and benchmarks
from keywords (`engine.generate(..., temperature=0)`); the engine and its scheduler only read
it. A value OpenAI would refuse raises `InferenceError` naming the parameter as OpenAI's 400
does. `logit_bias` is checked against the model's vocabulary when the model is known
(`bias_tensors`). Light to import (torch loads with the first tensor): the API builds these
and answers InferenceError before any model is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

MAX_TOP_LOGPROBS = 20  # OpenAI's limit
MAX_STOPS = 4  # OpenAI's limit


class InferenceError(ValueError):
    """A request the model cannot serve; `param` and `code` as OpenAI's error would name them."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.param, self.code = param, code


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    """Most tokens to generate per choice; None: the engine's default, within the context."""
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    """Fixes the sampling: the same seed, the same answer (None: a fresh one each time)."""
    stop: tuple[str, ...] = ()
    """Strings that end a choice (not included in its text); at most MAX_STOPS."""
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    response_format: dict | None = None
    """text | json_object | json_schema: constrained decoding (`structured`)."""
    logit_bias: dict | None = None
    """{"token id": -100..100}, added to the logits before sampling and logprobs."""

    def __post_init__(self):
        stops = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        self.stop = tuple(s for s in stops if s)  # an empty string stops nothing
        if not 0 <= self.temperature <= 2:
            raise InferenceError(f"temperature must be between 0 and 2, got {self.temperature}", param="temperature")
        if not 0 < self.top_p <= 1:
            raise InferenceError(f"top_p must be greater than 0 and at most 1, got {self.top_p}", param="top_p")
        if not isinstance(self.n, int) or self.n < 1:
            raise InferenceError(f"n must be a positive integer, got {self.n!r}", param="n")
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            raise InferenceError(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}", param="top_logprobs")
        if self.max_tokens is not None and (not isinstance(self.max_tokens, int) or self.max_tokens < 1):
            raise InferenceError(f"max_tokens must be a positive integer, got {self.max_tokens!r}", param="max_tokens")
        if self.top_logprobs and not self.logprobs:
            raise InferenceError("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value")
        if len(stops) > MAX_STOPS:
            raise InferenceError(f"'stop' takes at most {MAX_STOPS} sequences.", "stop", "invalid_value")

    @property
    def k(self) -> int:
        """How many alternatives each token's logprobs list."""
        return self.top_logprobs if self.logprobs else 0

    def generator(self):
        import torch

        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator

    def bias_tensors(self, vocab_size: int):
        """OpenAI's logit_bias as (ids, values) to add to the logits, before sampling and before
        logprobs are taken, as OpenAI applies it; None without one."""
        if not self.logit_bias:
            return None
        import torch

        ids, values = [], []
        for key, value in self.logit_bias.items():
            try:
                token = int(key)
            except (TypeError, ValueError):
                raise InferenceError(f"Invalid key in 'logit_bias': {key!r} is not a token id.", param="logit_bias",
                                     code="invalid_value") from None
            if not 0 <= token < vocab_size:
                raise InferenceError(f"Invalid key in 'logit_bias': token id {token} is not in this model's "
                                     f"vocabulary (0..{vocab_size - 1}).", param="logit_bias", code="invalid_value")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not -100 <= value <= 100:
                raise InferenceError(f"Invalid value for 'logit_bias' token {key}: {value!r}; a bias is between -100 "
                                     "and 100.", param="logit_bias", code="invalid_value")
            ids.append(token)
            values.append(float(value))
        return torch.tensor(ids), torch.tensor(values)


def sample(logits, params: SamplingParams, generator):
    """Chosen ids, their logprobs, and the top-k (logprobs, ids), per row of `logits` [rows, vocab].

    Logprobs are those of the model's own distribution (temperature 1), as OpenAI
    reports them, whatever temperature and top_p did to the sampling.
    """
    import torch

    logprobs = torch.log_softmax(logits, dim=-1)
    if params.temperature == 0:
        chosen = logits.argmax(dim=-1)
    else:
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            outside = sorted_p.cumsum(dim=-1) - sorted_p >= params.top_p  # mass before it already reaches top_p
            outside[:, 0] = False
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p.masked_fill(outside, 0.0))
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    chosen_lp = logprobs.gather(-1, chosen[:, None]).squeeze(-1)
    k = params.k
    top = logprobs.topk(k, dim=-1) if k else (torch.empty(len(logits), 0), torch.empty(len(logits), 0, dtype=torch.long))
    return chosen, chosen_lp, top
