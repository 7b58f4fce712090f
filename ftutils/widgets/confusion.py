"""ConfusionWidget: the confusion matrix as a grid of counts; clicking a cell lists the
test items behind it, so "billing read as refund, 4 times" becomes four messages to read.

    cm = ConfusionWidget.from_evaluation(evaluation, "fine-tuned")
    cm                              # live grid in JupyterLab, the matrix as a table elsewhere
    cm.matrix()                     # -> DataFrame of counts (rows: true, columns: predicted)
    cm.cell("billing", "refund")    # -> DataFrame of those items: id, text, raw answer
"""
from __future__ import annotations

import html

import pandas as pd

from ftutils.evaluate.scores import UNPARSEABLE, as_frame
from ftutils.widgets.base import Widget

CELL_COLUMNS = ["id", "label", "pred", "text", "raw", "how"]


class ConfusionWidget(Widget):
    """`predictions` has id, label, pred (None for unparseable), and ideally text and raw."""

    def __init__(self, predictions, labels: list[str] | None = None, title: str = ""):
        self.predictions = as_frame(predictions)
        for column in ("text", "raw", "how"):
            if column not in self.predictions:
                self.predictions[column] = ""
        self.labels = list(labels) if labels is not None else sorted(set(self.predictions["label"]))
        self.title = title

    @classmethod
    def from_evaluation(cls, evaluation, name: str) -> "ConfusionWidget":
        return cls(evaluation.predictions(name), evaluation.labels, title=name)

    def matrix(self) -> pd.DataFrame:
        """Counts per (true, predicted) pair, every label on both axes and unparseable last."""
        columns = [*self.labels, UNPARSEABLE]
        counts = pd.crosstab(self.predictions["label"], self.predictions["pred"])
        counts = counts.reindex(index=self.labels, columns=columns, fill_value=0).astype(int)
        counts.index.name, counts.columns.name = "true", "predicted"
        return counts

    def cell(self, true: str, pred: str | None) -> pd.DataFrame:
        """The items whose truth is `true` and prediction `pred` (None or UNPARSEABLE: unparseable)."""
        pred = UNPARSEABLE if pred is None else pred
        for value, allowed in ((true, self.labels), (pred, [*self.labels, UNPARSEABLE])):
            if value not in allowed:
                raise KeyError(f"{value!r} is not one of {allowed}")
        rows = self.predictions[(self.predictions["label"] == true) & (self.predictions["pred"] == pred)]
        return rows[CELL_COLUMNS].reset_index(drop=True)

    def static(self):
        """The counts as a table: exact numbers, and it renders under any matplotlib backend."""
        return self.matrix()

    def build(self):
        import ipywidgets as w
        from IPython.display import HTML

        matrix = self.matrix()
        out = w.Output()
        peak = max(int(matrix.to_numpy().max()), 1)

        def show(true, pred):
            rows = self.cell(true, pred)
            out.outputs = ()
            items = "".join(f"<li><code>{html.escape(str(r.id))}</code> {html.escape(str(r.text))}"
                            f" <i>→ {html.escape(str(r.raw))}</i></li>" for r in rows.itertuples())
            out.append_display_data(HTML(f"<b>true {html.escape(true)}, predicted {html.escape(pred)}: "
                                         f"{len(rows)} item{'' if len(rows) == 1 else 's'}</b><ul>{items}</ul>"))

        cells = [w.Label("true \\ predicted")] + [w.Label(str(c)) for c in matrix.columns]
        for true, row in matrix.iterrows():
            cells.append(w.Label(str(true)))
            for pred, count in row.items():
                button = w.Button(description=str(count), layout=w.Layout(width="auto"),
                                  tooltip=f"true {true}, predicted {pred}", disabled=count == 0)
                shade = int(255 - 155 * count / peak)
                button.style.button_color = "#c8e6c9" if true == pred and count else f"rgb({shade},{shade},255)"
                button.on_click(lambda _b, t=true, p=pred: show(t, p))
                cells.append(button)
        grid = w.GridBox(cells, layout=w.Layout(grid_template_columns=f"repeat({len(matrix.columns) + 1}, auto)"))
        return w.VBox([w.HTML(f"<b>{html.escape(self.title)}</b> (click a cell to list its items)"), grid, out])
