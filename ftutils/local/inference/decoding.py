"""Tokens into text as OpenAI streams it: bytes, stop strings, and logprob entries.

Text is assembled from each token's bytes: byte-level BPE splits a multi-byte character
across tokens, so a choice holds back an incomplete UTF-8 sequence until it completes, and an
ending that could still grow into a stop string until it cannot.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass


@dataclass
class TokenLogprob:
    token: str
    """The token's text; bytes that are not whole UTF-8 characters appear as \\xNN escapes."""
    logprob: float
    bytes: list[int]
    top_logprobs: list[tuple[str, float, list[int]]]
    """The most likely tokens at this position, best first: (token, logprob, bytes)."""


@dataclass
class StreamDelta:
    text: str
    logprobs: list[TokenLogprob] | None
    finish_reason: str | None
    prompt_tokens: int | None = None
    """Set on the last delta only, for a stream's usage chunk."""
    completion_tokens: int | None = None


class ChoiceText:
    """One choice's text so far: byte decoding, stop strings, and what may be released."""

    def __init__(self, stops: list[str], want_logprobs: bool):
        self.stops, self.want_logprobs = stops, want_logprobs
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text, self.released, self.done = "", 0, False

    def push(self, token: int, entry, vocab: "Vocab", final: bool) -> StreamDelta:
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


class Vocab:
    """Token bytes and stop ids for a tokenizer, worked out as tokens first appear."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special = set(tokenizer.all_special_ids)
        ends = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>"),
                tokenizer.convert_tokens_to_ids("<|endoftext|>")}
        self.stop_ids = {i for i in ends if isinstance(i, int) and i != tokenizer.unk_token_id}
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel"
        self.byte_of = {c: b for b, c in bytes_to_unicode().items()}
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


def bytes_to_unicode() -> dict[int, str]:
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
