"""One colour per candidate, the same in every plot of a run (04_evaluate and 05_iterate).

Candidates have fixed names (`ftutils.evaluate.candidates`): base, zero-shot, few-shot-K,
fine-tuned, step-N (checkpoints), tfidf-logreg. Checkpoints get shades of the fine-tune's
hue, light (early) to dark (late), so a plot reads epochs in order without a legend lookup.
"""
from __future__ import annotations

import re

from matplotlib import colormaps, colors

FIXED = {
    "base": "#7f7f7f",          # grey: what you start from
    "zero-shot": "#e7a12b",     # amber: the base model, prompted
    "few-shot": "#b5651d",      # brown: prompted with examples
    "fine-tuned": "#1f5fbf",    # blue: the fine-tune
    "tfidf-logreg": "#2a9d3f",  # green: the classic baseline
}
CHECKPOINTS = "Purples"
"""Colormap for checkpoints; a separate hue from the final model so the two never look alike."""


def _step(name: str) -> int | None:
    match = re.fullmatch(r"step-(\d+)", str(name))
    return int(match.group(1)) if match else None


def candidate_colours(names) -> dict[str, str]:
    """{name: colour} for the candidates of one evaluation; unknown names get tab10 colours."""
    names = list(dict.fromkeys(map(str, names)))
    steps = sorted(s for s in map(_step, names) if s is not None)
    cmap = colormaps[CHECKPOINTS]
    out, spare = {}, iter(colors.TABLEAU_COLORS.values())
    for name in names:
        step = _step(name)
        if step is not None:
            share = (steps.index(step) + 1) / (len(steps) + 1)
            out[name] = colors.to_hex(cmap(0.35 + 0.6 * share))
        elif name in FIXED:
            out[name] = FIXED[name]
        elif name.startswith("few-shot"):
            out[name] = FIXED["few-shot"]
        else:
            out[name] = next(spare, "#333333")
    return out
