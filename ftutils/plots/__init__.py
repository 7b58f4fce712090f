"""Plot functions take data and return a matplotlib Figure; they never fetch data.

data.py: token lengths, label balance (02_prepare). training.py: loss and accuracy curves
(03_train). evaluation.py: confusion matrix, per-class F1, checkpoints (04_evaluate).
as_image (here): any of those figures as a PNG to display in a notebook.
"""
from __future__ import annotations


def as_image(fig):
    """A PNG of the figure: displays the same whatever matplotlib backend the kernel has
    (under MPLBACKEND=Agg a bare Figure shows only as text)."""
    import io

    from IPython.display import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return Image(data=buf.getvalue(), format="png")

