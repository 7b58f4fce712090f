"""Validate a fine-tuning training file before it is uploaded (or, on the local server,
before it is trained on).

One streaming pass: decode a line, check it (`checks.py`), count its tokens, forget it.
Memory stays flat however long the file; findings are capped per code (`counts` has the
totals). File-level problems (empty, binary, not UTF-8, not JSONL, too few examples,
mixed formats) are findings too, so a caller never sees a traceback for bad data.
"""
from __future__ import annotations

import json
from pathlib import Path

from ftutils.data.checks import check_line, json_kind
from ftutils.data.codes import CODES
from ftutils.data.findings import Finding, ValidationReport
from ftutils.data.tokens import TokenCounter, base_model, count_tokens, limits_for

__all__ = ["Finding", "ValidationReport", "validate_file", "validate_examples", "iter_lines", "CODES", "MIN_EXAMPLES",
           "METHOD_FORMATS"]

MIN_EXAMPLES = 10  # OpenAI rejects training files with fewer
META_KEYS = frozenset(("id", "label"))  # what ftutils.data.convert adds to examples (see docs/architecture.md)
# A job's `method.type` -> the line format its files must have.
METHOD_FORMATS = {"supervised": "chat", "dpo": "preference", "reinforcement": "reinforcement"}
_SNIFF = 8192
_MAGIC = {b"PK\x03\x04": "a ZIP archive (an .xlsx or .docx?)", b"%PDF": "a PDF", b"\x1f\x8b": "gzip-compressed",
          b"\x89PNG": "a PNG image", b"\xff\xd8\xff": "a JPEG image", b"SQLite format 3": "an SQLite database"}


class _Pass:
    """State of one validation pass; `feed` each line, then `finish`."""

    def __init__(self, model: str | None, method: str | None, source: str | None):
        if method is not None and method not in METHOD_FORMATS:
            raise ValueError(f"method must be one of {', '.join(METHOD_FORMATS)} or None, got {method!r}")
        self.report = ValidationReport(source=source, model=base_model(model))
        self.method = method
        self.expected = METHOD_FORMATS.get(method)
        self.counter = TokenCounter(model)
        self.limits, self.limit_note = limits_for(model)
        self.limit = self.limits.max_training_tokens
        self._emit = self.emit  # one bound method, not one per line
        self.formats: dict[str, int] = {}   # format -> first line seen
        self.line = 0
        self.n_lines = 0
        self.total = self.max = self.trained = self.cut = self.over = self.counted = 0
        # chat examples; those with a trained assistant token; those whose every assistant has weight 0
        self.n_chat = self.n_trainable = self.n_unweighted = 0

    def emit(self, code: str, field: str, message: str, line: int | None = -1) -> None:
        severity, fix = CODES[code]
        self.report.add(Finding(code, severity, self.line if line == -1 else line, field, message, fix))

    def feed(self, line: int, obj, error: str | None = None, code: str | None = None, field: str = "") -> None:
        self.line = line
        self.n_lines += 1
        if obj is None:
            self.emit(code or "invalid_json", field, error or "not a JSON object")
            return
        self.report.n_examples += 1
        fmt = check_line(obj, self._emit, self.method)
        if fmt == "unknown":
            return
        if fmt not in self.formats:
            self.formats[fmt] = line
        if self.expected and fmt != self.expected:
            self.emit("wrong_format", "", f"a {fmt} example in a file for {self.method} fine-tuning, "
                      f"which takes {self.expected} examples")
        self.counted += 1
        n, assistant, trained = count_tokens(obj, self.counter)
        if fmt == "chat":
            self.n_chat += 1
            if trained:
                self.n_trainable += 1
            elif assistant:
                self.n_unweighted += 1
                self.emit("no_trained_tokens", "messages", "every assistant message has weight 0")
        self.total += n
        self.trained += trained
        if n > self.max:
            self.max = n
        if n > self.limit:
            self.over += 1
            self.cut += n - self.limit  # OpenAI truncates, so it neither trains on nor bills these
            self.emit("over_token_limit", "", f"{n:,} tokens, over the {self.limit:,}-token "
                      f"training limit of {self.report.model}; {n - self.limit:,} would be cut")

    def finish(self) -> ValidationReport:
        report, n = self.report, self.report.n_examples
        self.line = None
        if self.n_lines and not n and set(report.counts) <= {"invalid_json", "invalid_utf8", "blank_line"}:
            if set(report.counts) == {"blank_line"}:
                self.emit("empty_file", "", "the file has only blank lines")
            elif "invalid_json" not in report.counts:
                self.emit("not_utf8", "", "no line is valid UTF-8: the file is in another encoding "
                          "(Windows-1252 or Latin-1, as Excel writes CSV?)")
            else:
                self.emit("not_jsonl", "", _not_jsonl_reason(self.report.source))
        elif 0 < n < MIN_EXAMPLES:
            self.emit("too_few_examples", "", f"{n} example(s); OpenAI requires at least {MIN_EXAMPLES}")
        if self.n_unweighted and not self.n_trainable and self.expected in (None, "chat"):
            # The trainer would skip every example and have nothing to run on.
            self.emit("nothing_to_train", "", f"none of the {self.n_chat} chat example(s) has an assistant message "
                      "with weight 1: there is nothing to train on")
        if len(self.formats) > 1 and not self.expected:  # with a method, wrong_format already names each line
            (first, _), *others = sorted(self.formats.items(), key=lambda kv: kv[1])
            for fmt, line in others:
                self.emit("mixed_formats", "", f"a {fmt} example, but the file starts with {first} examples", line=line)
        report.format = (next(iter(self.formats)) if len(self.formats) == 1
                         else "mixed" if self.formats else "unknown")
        for note in (self.counter.note, self.limit_note):
            if note and self.formats:
                self.emit("approximate_token_count", "", note)
        report.tokens = {"n": self.counted, "total": self.total, "max": self.max, "mean": self.total / max(1, self.counted),
                         "trained": self.trained, "billed_per_epoch": self.total - self.cut, "n_over_limit": self.over,
                         "limit": self.limits.max_training_tokens, "encoding": self.counter.encoding.name}
        # Findings arrive in file order except file-level ones; keep file order, file-level first.
        report.findings.sort(key=lambda f: (f.line is not None, f.line or 0))
        return report


_DECODE = json.JSONDecoder().decode
try:
    import orjson

    # Parses bytes directly (UTF-8 checked on the way), about 3x json's speed on these lines;
    # any line it refuses goes through _decode, which explains the failure or accepts what
    # only the standard library takes (NaN, huge integers).
    _FAST_DECODE = orjson.loads
except ImportError:  # an optional speed-up
    def _FAST_DECODE(raw: bytes):
        if b"\\u" in raw:  # may hide a lone surrogate (orjson refuses those itself): the slow path checks
            raise ValueError("escape")
        return _DECODE(raw.decode("utf-8"))


def _not_jsonl_reason(source: str | None) -> str:
    """Why no line decoded: often the file is one JSON document spread over many lines."""
    reason = "no line is a JSON object: this does not look like a JSONL file"
    try:
        if source and Path(source).stat().st_size < 64 * 2**20:
            whole = json.loads(Path(source).read_bytes())
            return f"the whole file is one JSON {json_kind(whole).split()[-1]} (pretty-printed?), not one object per line"
    except (ValueError, RecursionError, OSError):
        pass
    return reason


def _bad_string(value, at: str = "") -> str | None:
    """The field path of the first string (or key) in `value` that is not Unicode text: a
    lone surrogate such as "\\ud800" is legal JSON but no tokenizer can encode it."""
    stack = [(value, at)]
    while stack:
        value, at = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return at
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                path = f"{at}.{key}" if at else str(key)
                if _bad_string(key) is not None:
                    return path
                stack.append((item, path))
        elif isinstance(value, list):
            stack.extend((item, f"{at}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None


def _decode(raw: bytes):
    """(object, error, code, field) for one line. Not load.iter_jsonl: the validator wants a
    stable code per failure, and this is its hot path."""
    try:
        value = _DECODE(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, (f"not valid UTF-8 (byte {exc.object[exc.start]:#04x} at column {exc.start + 1}); "
                      "save the file as UTF-8"), "invalid_utf8", ""
    except json.JSONDecodeError as exc:
        if not raw.strip():
            return None, "blank line", "blank_line", ""
        # exc.colno would count the line's own newline as a line break; the offset is what a reader wants.
        at = "at the end of the line" if exc.pos >= len(exc.doc.rstrip("\r\n")) else f"column {exc.pos + 1}"
        return None, f"not valid JSON: {exc.msg} ({at})", "invalid_json", ""
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {exc}", "invalid_json", ""
    if b"\\" in raw:  # only an escape can produce a lone surrogate from valid UTF-8
        field = _bad_string(value)
        if field is not None:
            return None, ("a lone UTF-16 surrogate escape (\\ud800-\\udfff without its pair): legal JSON, "
                          "but not Unicode text"), "invalid_unicode", field
    if isinstance(value, dict):
        return value, None, None, ""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return None, (f"expected a JSON object per line, got an array of {len(value)} objects "
                      "(a .json file? write one object per line)"), "not_an_object", ""
    return None, f"expected a JSON object per line, got {json_kind(value)}", "not_an_object", ""


def _sniff(path: Path, run: _Pass) -> bool:
    """File-level problems visible in the first bytes; True when the lines are worth reading."""
    with open(path, "rb") as f:
        head = f.read(_SNIFF)
    if not head.strip():
        run.emit("empty_file", "", "the file is empty" if not head else "the file has only whitespace", line=None)
        return False
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        run.emit("not_utf8", "", "the file is UTF-16 encoded", line=None)
        return False
    kind = next((what for magic, what in _MAGIC.items() if head.startswith(magic)), None)
    # A NUL byte alone does not make a file binary: in a JSONL file it is a bad line like any
    # other (invalid_json, with its line, wherever it is). Binary is when nothing looks like JSONL.
    if kind or (b"\x00" in head and not any(part.lstrip().startswith((b"{", b"[")) for part in head.split(b"\n"))):
        run.emit("binary_file", "", f"this is {kind or 'a binary file'}, not JSONL text", line=None)
        return False
    return True


def iter_lines(path):
    """(line, object, error, code, field) for each line of a JSONL file: the one reading of a
    training file's bytes, shared by the validator and the trainer (ftutils.local.training.examples).
    A UTF-8 BOM before the first line is skipped; `object` is None for a line that is not a
    JSON object of Unicode text, and then error/code/field say why and where."""
    with open(path, "rb") as f:
        first = f.readline()
        if not first:
            return
        if first.startswith(b"\xef\xbb\xbf"):  # UTF-8 BOM (Excel, Notepad)
            first = first[3:]
        yield 1, *_decode(first)
        for number, raw in enumerate(f, 2):
            try:  # the good line inline; any failure is re-decoded slowly to say why
                obj = _FAST_DECODE(raw)
            except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
                obj = None
            if type(obj) is dict:
                yield number, obj, None, None, ""
            else:
                yield number, *_decode(raw)


def validate_file(path, model: str | None = None, method: str | None = None) -> ValidationReport:
    """Validate a JSONL training file for `model` (default gpt-4o-mini) without loading it whole.

    `method` is the job's method type when known ("supervised", "dpo", "reinforcement"):
    lines of another format are then errors (`wrong_format`). None detects chat or preference
    per line (a file mixing them is an error); reinforcement lines look like chat lines without
    the reply, so they are only recognised with method="reinforcement". Raises
    FileNotFoundError for a missing path (IsADirectoryError for a folder); every problem with
    the contents is a finding."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    run = _Pass(model, method, str(path))
    if _sniff(path, run):
        feed = run.feed
        for item in iter_lines(path):
            feed(*item)
    return run.finish()


def validate_examples(examples, model: str | None = None, method: str | None = None) -> ValidationReport:
    """Validate in-memory examples; `line` in findings is the 1-based position in the list.

    The converters' top-level "id" and "label" are not flagged here: write_jsonl(strict=True)
    drops them, and validate_file flags them if they reach a training file anyway."""
    run = _Pass(model, method, None)
    for number, example in enumerate(examples, 1):
        if isinstance(example, dict) and (field := _bad_string(example)) is not None:
            run.feed(number, None, "a lone UTF-16 surrogate: not Unicode text", "invalid_unicode", field)
        elif isinstance(example, dict):
            if not META_KEYS.isdisjoint(example):  # ftutils' own keys, dropped by write_jsonl(strict=True)
                example = {k: v for k, v in example.items() if k not in META_KEYS}
            run.feed(number, example)
        else:
            kind = type(example).__name__
            run.feed(number, None, f"expected a dict per example, got {kind}", "not_an_object")
    if not run.n_lines:
        run.emit("empty_file", "", "no examples", line=None)
    return run.finish()
