"""Training files into what a step trains on: encoded chats (supervised) and pairs (DPO).

Files are read through the validator's own line reader (`ftutils.data.validate.iter_lines`:
the same BOM, UTF-8, NUL and surrogate rules), so a file `ftutils validate` passes reads the
same here. What cannot train (no assistant message left to learn from, a reply cut to nothing)
is skipped, and what is cut at `max_length` is kept; each is said once, as a job event.
"""
from __future__ import annotations

from dataclasses import dataclass

from ftutils.local.models import chat_format
from ftutils.local.models.chat_format import Encoded


def read_jsonl(path) -> list[dict]:
    """The examples of a training file. Blank lines are skipped (the validator warns of them);
    any other bad line raises DataError with its line."""
    from ftutils.data.load import DataError
    from ftutils.data.validate import iter_lines

    rows = []
    for line, obj, error, code, field in iter_lines(path):
        if obj is not None:
            rows.append(obj)
        elif code != "blank_line":
            raise DataError(f"{code}: {error}", path, line, field or None)
    return rows


def warn_dropped(sink, what: str, noun: str, max_length: int, truncated: int, skipped: int, why: str) -> None:
    """One event each for the items of a file cut at `max_length` and those skipped (`why`)."""
    if truncated:
        sink.on_message("warn", f"{truncated} {what} {noun} are longer than {max_length} tokens and were truncated.")
    if skipped:
        sink.on_message("warn", f"{skipped} {what} {noun} {why} and were skipped.")


def load_chats(path, tokenizer, max_length: int, sink, what: str) -> list[Encoded]:
    """The chats of a supervised file, encoded with their trained tokens labelled."""
    rows = read_jsonl(path)

    def encoded(row: dict) -> Encoded | None:
        try:
            example = chat_format.encode(tokenizer, row.get("messages") or [], max_length)
        except ValueError:
            return None
        return example if example.n_trained else None
    chats = _kept(rows, encoded, sink, what, "examples", max_length,
                  "have no assistant message with weight 1 (left after truncation)")
    with_tools = sum(bool(row.get("tools") or row.get("functions")) for row in rows)
    if with_tools:
        sink.on_message("warn", f"{with_tools} {what} examples define tools; local models have no tool format, so "
                                f"tool definitions are ignored and tool calls are trained as JSON text.")
    return chats


def _kept(rows: list[dict], encode, sink, what: str, noun: str, max_length: int, why: str) -> list:
    """`encode(row)` of each row that gives something to train on; the cut and the skipped said once."""
    kept, truncated, skipped = [], 0, 0
    for row in rows:
        item = encode(row)
        if item is None:
            skipped += 1
            continue
        truncated += bool(item.truncated)
        kept.append(item)
    warn_dropped(sink, what, noun, max_length, truncated, skipped, why)
    return kept


@dataclass
class Pair:
    """A preference example: the prompt with its preferred and its non-preferred reply."""

    chosen: Encoded
    """Prompt + preferred reply; labels only on the reply."""
    rejected: Encoded
    """Prompt + non-preferred reply."""
    reference: tuple[float, float] | None = None
    """The reference model's log-probabilities of (chosen, rejected), once scored."""

    @property
    def input_ids(self) -> list[int]:
        """Both sequences' tokens: what a step processes (batching by length, trained tokens)."""
        return self.chosen.input_ids + self.rejected.input_ids

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


def encode_pair(tokenizer, row: dict, max_length: int) -> Pair | None:
    """A preference line as two encoded conversations; None when a reply has no token left
    to learn from (after truncation)."""
    prompt = (row.get("input") or {}).get("messages") or []
    # Only the final reply is compared: earlier assistant turns in the prompt are context.
    prompt = [{**m, "weight": 0} if m.get("role") == "assistant" else m for m in prompt]
    replies = []
    for key in ("preferred_output", "non_preferred_output"):
        reply = row.get(key, row.get(key.replace("output", "completion"))) or []
        replies.append(chat_format.encode(tokenizer, [*prompt, {**reply[0], "weight": 1}], max_length))
    pair = Pair(*replies)
    return pair if pair.chosen.n_trained and pair.rejected.n_trained else None


def load_pairs(path, tokenizer, max_length: int, sink, what: str) -> list[Pair]:
    """The pairs of a preference file."""
    return _kept(read_jsonl(path), lambda row: encode_pair(tokenizer, row, max_length), sink, what, "pairs",
                 max_length, "have a reply with no tokens left after truncation")
