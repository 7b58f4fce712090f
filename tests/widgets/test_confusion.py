"""ConfusionWidget's plain methods and its live form, built without a browser."""
import pytest

from ftutils.evaluate.scores import UNPARSEABLE
from ftutils.widgets.confusion import ConfusionWidget
from tests.evaluate.test_report import ev  # noqa: F401 (the module-scoped evaluation fixture)


def test_confusion_widget_cells_list_their_items(ev, monkeypatch):
    cm = ConfusionWidget.from_evaluation(ev, "base")
    assert cm.matrix().to_numpy().tolist() == ev.metrics("base")["confusion"]["matrix"]
    cell = cm.cell("billing", None)
    assert cell["id"].tolist() == ["t00", "t02", "t04"] and set(cell["raw"]) == {"Hmm"}
    assert cm.cell("refund", "billing")["id"].tolist() == [f"t{i}" for i in range(14, 27, 2)]
    assert cm.cell("shipping", "refund").empty
    with pytest.raises(KeyError, match="'cat' is not one of"):
        cm.cell("cat", "billing")
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    assert cm.static().equals(cm.matrix())

    ui = cm.build()  # the live form, exercised through its buttons without a browser
    grid, out = ui.children[1], ui.children[2]
    button = next(b for b in grid.children if getattr(b, "tooltip", None) == f"true billing, predicted {UNPARSEABLE}")
    button.click()
    assert "3 items" in out.outputs[0]["data"]["text/html"] and "t04" in out.outputs[0]["data"]["text/html"]
