"""ErrorExplorer: the test items a model got wrong, filtered by true and predicted label,
each shown as the full conversation with the model's raw answer beside the expected one.

    errors = ErrorExplorer.from_evaluation(evaluation, "fine-tuned")
    errors.filter(true="billing")             # -> DataFrame of billing items it got wrong
    errors.filter(pred=None)                  # -> the unparseable answers
    errors.conversation("t0042")              # -> the whole exchange as text
"""
from __future__ import annotations

import html

import pandas as pd

from ftutils.evaluate.scores import UNPARSEABLE, as_frame
from ftutils.widgets.base import Widget

ANY = "(any)"
COLUMNS = ["id", "label", "pred", "text", "raw", "how"]


class ErrorExplorer(Widget):
    """`predictions` has id, label, pred, raw (and text); `examples` (TestExamples) give the
    full conversations, matched by id."""

    def __init__(self, predictions, examples=None, labels: list[str] | None = None, title: str = "",
                 page_size: int = 10):
        self.predictions = as_frame(predictions)
        for column in ("text", "raw", "how"):
            if column not in self.predictions:
                self.predictions[column] = ""
        self.examples = {ex.id: ex for ex in examples or []}
        self.labels = list(labels) if labels is not None else sorted(set(self.predictions["label"]))
        self.title, self.page_size = title, page_size

    @classmethod
    def from_evaluation(cls, evaluation, name: str) -> "ErrorExplorer":
        return cls(evaluation.predictions(name), evaluation.examples, evaluation.labels, title=name)

    def filter(self, true: str | None = None, pred: str | None = ANY, errors_only: bool = True) -> pd.DataFrame:
        """Items with truth `true` (None: any) and prediction `pred` (ANY: any; None: unparseable)."""
        rows = self.predictions
        if errors_only:
            rows = rows[rows["label"] != rows["pred"]]
        if true is not None:
            rows = rows[rows["label"] == true]
        if pred != ANY:
            rows = rows[rows["pred"] == (UNPARSEABLE if pred is None else pred)]
        return rows[COLUMNS].reset_index(drop=True)

    def conversation(self, item_id: str) -> str:
        """The prompt's messages, then the expected answer and the model's raw answer."""
        row = self.predictions[self.predictions["id"] == str(item_id)]
        if row.empty:
            raise KeyError(f"no prediction for id {item_id!r}")
        row = row.iloc[0]
        example = self.examples.get(str(item_id))
        lines = [f"{m.get('role')}: {m.get('content')}" for m in example.prompt] if example else [f"user: {row['text']}"]
        return "\n".join([*lines, f"expected: {row['label']}", f"model said: {row['raw']!r} -> {row['pred']}"])

    def static(self):
        """The first errors as a table: what papermill, nbval and terminals show."""
        return self.filter().head(self.page_size)

    def build(self):
        import ipywidgets as w
        from IPython.display import HTML

        true = w.Dropdown(options=[ANY, *self.labels], description="true")
        pred = w.Dropdown(options=[ANY, *self.labels, UNPARSEABLE], description="predicted")
        out = w.Output()

        def show(_=None):
            rows = self.filter(None if true.value == ANY else true.value,
                               None if pred.value == UNPARSEABLE else pred.value)
            out.outputs = ()
            blocks = [f"<p>{len(rows)} error{'' if len(rows) == 1 else 's'}{' (first ' + str(self.page_size) + ')' if len(rows) > self.page_size else ''}</p>"]
            for item_id in rows["id"].head(self.page_size):
                blocks.append("<pre style='white-space:pre-wrap;border:1px solid #ddd;padding:6px'>"
                              f"{html.escape(self.conversation(item_id))}</pre>")
            out.append_display_data(HTML("".join(blocks)))

        true.observe(show, "value")
        pred.observe(show, "value")
        show()
        return w.VBox([w.HTML(f"<b>Errors of {html.escape(self.title)}</b>"), w.HBox([true, pred]), out])
