"""ErrorExplorer's filters, conversations and live form, built without a browser."""
import pytest

from ftutils.widgets.error_explorer import ErrorExplorer
from tests.evaluate.test_report import ev  # noqa: F401 (the module-scoped evaluation fixture)


def test_error_explorer_filters_and_shows_conversations(ev):
    errors = ErrorExplorer.from_evaluation(ev, "step-10")
    assert errors.filter()["id"].tolist() == ["t00", "t05", "t06", "t30"]
    assert errors.filter(true="billing", pred="shipping")["id"].tolist() == ["t05", "t06"]
    assert errors.filter(pred=None).empty
    assert len(errors.filter(errors_only=False)) == 40
    assert errors.conversation("t30") == ("user: ticket 30 about shipping\nexpected: shipping\n"
                                          "model said: 'billing' -> billing")
    with pytest.raises(KeyError):
        errors.conversation("nope")
    assert errors.static()["id"].tolist() == ["t00", "t05", "t06", "t30"]
    ui = errors.build()
    true, pred = ui.children[1].children
    true.value = "billing"
    assert ui.children[2].outputs[0]["data"]["text/html"].count("<pre") == 3
