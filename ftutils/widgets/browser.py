"""DatasetBrowser: page through training examples, filtered by label, length or finding.

Reading examples is the check no script replaces: a label that does not match its text, a
system prompt pasted twice, an answer in the wrong format. The browser puts the examples a
check flagged, or the longest ones, or one class, in front of you a page at a time.

    browser = DatasetBrowser(examples, findings=report.findings, stats=token_stats(examples))
    browser                                  # live UI in JupyterLab, first page as a table elsewhere
    browser.filter(label="refund", min_tokens=40)   # -> indices, for code and tests
    browser.page(0)                          # -> DataFrame of the current selection's first page
"""
from __future__ import annotations

import html
import math
from collections import defaultdict

from ftutils.data.tokens import content_text, example_messages
from ftutils.widgets.base import Widget

ALL = "(all)"
PREVIEW_CHARS = 160  # table cells: enough to recognise an example, short enough to scan a page
ROLE_COLORS = {"system": "#6b7280", "developer": "#6b7280", "user": "#1d4ed8", "assistant": "#047857",
               "tool": "#92400e", "function": "#92400e"}


def _findings_of(findings) -> list:
    """Findings from a list, a ValidationReport, or several of either."""
    if findings is None:
        return []
    if hasattr(findings, "findings"):
        return list(findings.findings)
    out = []
    for item in findings:
        out.extend(item.findings if hasattr(item, "findings") else [item])
    return out


def _shared_system_prompt(examples: list[dict]) -> str | None:
    """The text of the system message when all (two or more) examples have the same one."""
    texts = set()
    for example in examples:
        prompt, _ = example_messages(example)
        system = [content_text(m.get("content")) for m in prompt if isinstance(m, dict) and m.get("role") == "system"]
        if len(system) != 1:
            return None
        texts.add(system[0])
        if len(texts) > 1:
            return None
    return texts.pop() if texts and len(examples) > 1 else None


def _short(text: str, n: int = PREVIEW_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


class DatasetBrowser(Widget):
    """Pages of chat examples with filters; `findings` are matched to examples by their `line`
    (1-based position in `examples`), `stats` is `token_stats(examples)` (computed if absent)."""

    def __init__(self, examples: list[dict], findings=None, stats=None, page_size: int = 10,
                 model: str | None = None):
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.examples = list(examples)
        for i, example in enumerate(self.examples):
            if not isinstance(example, dict):
                raise TypeError(f"example {i} is a {type(example).__name__}, not a dict; "
                                "browse examples that decoded to JSON objects")
        self.page_size = page_size
        self.model = model
        if stats is not None and len(stats) != len(self.examples):
            raise ValueError(f"stats has {len(stats)} rows but there are {len(self.examples)} examples; "
                             "pass token_stats() of these same examples")
        self._stats = stats
        self._lengths: list[int] | None = None
        self.codes_by_index: dict[int, list[str]] = defaultdict(list)
        self.messages_by_index: dict[int, list[str]] = defaultdict(list)  # shown on hover in the live UI
        for f in _findings_of(findings):
            if f.line is None or not 1 <= f.line <= len(self.examples):
                continue
            if f.code not in self.codes_by_index[f.line - 1]:
                self.codes_by_index[f.line - 1].append(f.code)
            self.messages_by_index[f.line - 1].append(f"{f.code}: {f.message}")
        self.selection: list[int] = list(range(len(self.examples)))
        self.current_page = 0
        self.shared_system = _shared_system_prompt(self.examples)
        """The system prompt when every example has the same one: shown once, not on every card."""

    # --- data -------------------------------------------------------------------------

    @property
    def n_tokens(self) -> list[int]:
        """Tokens per example, counted once (on first use when no `stats` were given)."""
        if self._lengths is None:
            if self._stats is None:
                from ftutils.data.tokens import token_stats

                self._stats = token_stats(self.examples, self.model)
            self._lengths = [int(n) for n in self._stats["n_tokens"]]
        return self._lengths

    @property
    def labels(self) -> list[str]:
        """Labels present, sorted; examples without one are left out."""
        return sorted({str(e["label"]) for e in self.examples if e.get("label") is not None})

    @property
    def codes(self) -> list[str]:
        return sorted({c for codes in self.codes_by_index.values() for c in codes})

    @property
    def n_pages(self) -> int:
        return max(1, math.ceil(len(self.selection) / self.page_size))

    def filter(self, label: str | None = None, min_tokens: int | None = None, max_tokens: int | None = None,
               code: str | None = None) -> list[int]:
        """Indices of examples matching every criterion given (None means any)."""
        lengths = self.n_tokens if (min_tokens is not None or max_tokens is not None) else None
        keep = []
        for i, example in enumerate(self.examples):
            if label is not None and str(example.get("label")) != str(label):
                continue
            if lengths is not None and ((min_tokens is not None and lengths[i] < min_tokens)
                                        or (max_tokens is not None and lengths[i] > max_tokens)):
                continue
            if code is not None and code not in self.codes_by_index.get(i, ()):
                continue
            keep.append(i)
        return keep

    def select(self, **criteria) -> list[int]:
        """Make `filter(**criteria)` the current selection, back at its first page."""
        self.selection = self.filter(**criteria)
        self.current_page = 0
        return self.selection

    def page(self, i: int = 0):
        """Page `i` (0-based) of the current selection: one row per example."""
        import pandas as pd

        if not 0 <= i < self.n_pages:
            raise IndexError(f"page {i} does not exist: the selection has {self.n_pages} page(s)")
        lengths = self.n_tokens
        rows = []
        for idx in self.selection[i * self.page_size:(i + 1) * self.page_size]:
            example = self.examples[idx]
            prompt, completion = example_messages(example)
            messages = [m for m in [*prompt, *completion] if isinstance(m, dict)]
            last_user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
            answer = next((m for m in reversed(messages) if m.get("role") == "assistant"), {})
            rows.append({"index": idx, "id": example.get("id"), "label": example.get("label"),
                         "user": _short(content_text(last_user.get("content"))),
                         "assistant": _short(content_text(answer.get("content"))),
                         "n_messages": len(messages), "n_tokens": lengths[idx],
                         "findings": ", ".join(self.codes_by_index.get(idx, ()))})
        columns = ["index", "id", "label", "user", "assistant", "n_messages", "n_tokens", "findings"]
        return pd.DataFrame(rows, columns=columns).set_index("index")

    # --- rendering ----------------------------------------------------------------------

    def render_html(self, i: int = 0) -> str:
        """Page `i` as readable conversations: every message, role-coloured, text escaped."""
        lengths = self.n_tokens
        parts = [f"<div style='font-size:12px;color:#555'>{len(self.selection)} of {len(self.examples)} "
                 f"examples &middot; page {i + 1} of {self.n_pages}</div>"]
        if self.shared_system is not None:
            parts.append(f"<div style='font-size:12px;color:#555;margin:4px 0'><span style='color:{ROLE_COLORS['system']};"
                         f"font-weight:bold'>system</span> (the same in every example, so not repeated below): "
                         f"{html.escape(self.shared_system)}</div>")
        for idx in self.selection[i * self.page_size:(i + 1) * self.page_size]:
            example = self.examples[idx]
            head = [f"<b>#{idx}</b>"]
            if example.get("id") is not None:
                head.append(f"id {html.escape(str(example['id']))}")
            if example.get("label") is not None:
                head.append(f"label <code>{html.escape(str(example['label']))}</code>")
            head.append(f"{lengths[idx]} tokens")
            tip = html.escape("\n".join(self.messages_by_index.get(idx, ())), quote=True)
            head += [f"<span title=\"{tip}\" style='background:#fde68a;padding:0 4px'>{html.escape(c)}</span>"
                     for c in self.codes_by_index.get(idx, ())]
            body = []
            prompt, completion = example_messages(example)
            for m in [*prompt, *completion]:
                role = str(m.get("role")) if isinstance(m, dict) else "?"
                text = content_text(m.get("content")) if isinstance(m, dict) else repr(m)
                if role == "system" and self.shared_system is not None and text == self.shared_system:
                    continue
                color = ROLE_COLORS.get(role, "#b91c1c")  # an unknown role stands out
                body.append(f"<div><span style='color:{color};font-weight:bold'>{html.escape(role)}</span>: "
                            f"<span style='white-space:pre-wrap'>{html.escape(text)}</span></div>")
            if not body:
                body.append("<div style='color:#b91c1c'>(no messages)</div>")
            parts.append("<div style='border:1px solid #ddd;border-radius:4px;margin:6px 0;padding:6px'>"
                         f"<div style='margin-bottom:4px'>{' &middot; '.join(head)}</div>{''.join(body)}</div>")
        return "".join(parts)

    def static(self):
        """The first page as a table: what papermill, nbval and terminals show."""
        return self.page(0)

    def build(self):
        import ipywidgets as w
        from IPython.display import HTML

        lengths = self.n_tokens or [0]
        lo, hi = min(lengths), max(lengths)
        label = w.Dropdown(options=[ALL, *self.labels], description="label")
        code = w.Dropdown(options=[ALL, *self.codes], description="finding")
        tokens = w.IntRangeSlider(value=(lo, hi), min=lo, max=max(hi, lo + 1), description="tokens",
                                  continuous_update=False)
        prev, nxt = w.Button(description="◀ prev"), w.Button(description="next ▶")
        out = w.Output()  # its first line says which page of how many examples: no second status line

        def show():
            prev.disabled = self.current_page == 0
            nxt.disabled = self.current_page >= self.n_pages - 1
            # Replace, then append: works the same from a callback or a background thread.
            out.outputs = ()
            out.append_display_data(HTML(self.render_html(self.current_page)))

        def refilter(_=None):
            self.select(label=None if label.value == ALL else label.value,
                        code=None if code.value == ALL else code.value,
                        min_tokens=tokens.value[0], max_tokens=tokens.value[1])
            show()

        def turn(step):
            def handler(_):
                self.current_page = min(max(0, self.current_page + step), self.n_pages - 1)
                show()
            return handler

        for control in (label, code, tokens):
            control.observe(refilter, names="value")
        prev.on_click(turn(-1))
        nxt.on_click(turn(+1))
        show()
        self.controls = {"label": label, "code": code, "tokens": tokens, "prev": prev, "next": nxt, "output": out}
        return w.VBox([w.HBox([label, code]), tokens, w.HBox([prev, nxt]), out])
