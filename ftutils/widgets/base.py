"""What every ftutils widget shares: knowing whether a live front end is there, and
showing itself either as an ipywidget or as static output."""
from __future__ import annotations

import os


def interactive() -> bool:
    """True in a Jupyter kernel that can show live widgets.

    papermill and nbval run a real kernel but nobody clicks, so they set
    FTUTILS_INTERACTIVE=0 (ftutils' own runners and tests do); a terminal has no kernel.
    """
    flag = os.environ.get("FTUTILS_INTERACTIVE")
    if flag is not None:
        return flag.strip().lower() not in ("0", "false", "no", "")
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


class Widget:
    """Base for ftutils widgets.

    Subclasses build `self.widget` in `build()` (only called when interactive) and give a
    static rendering in `static()` (a DataFrame, a Figure, or anything IPython displays).
    Their data methods return plain data, so tests need no browser.
    """

    widget = None

    def build(self):
        raise NotImplementedError

    def static(self):
        raise NotImplementedError

    def _ipython_display_(self):
        from IPython.display import display

        if interactive():
            if self.widget is None:
                self.widget = self.build()
            display(self.widget)
        else:
            display(self.static())
