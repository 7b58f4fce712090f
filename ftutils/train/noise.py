"""How the suite tells a change from noise: per-step losses smoothed before they are read,
and percentile-bootstrap intervals of a mean (one sample of items) or of a paired mean
difference (the same items measured twice, e.g. at two epochs)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LEVEL = 0.95              # the intervals that decide whether a change clears its noise
RESAMPLES = 2000


def ema(values, span: int | None = None) -> np.ndarray:
    """Exponential moving average over about a tenth of the run (at least 2 points, so a
    short run is not smoothed into lagging far behind its last steps)."""
    series = pd.Series(values, dtype=float)
    span = span or max(2, len(series.dropna()) // 10)
    return series.ewm(span=span, adjust=True, ignore_na=True).mean().to_numpy()


def mean_interval(values, level: float = LEVEL, n_resamples: int = RESAMPLES, seed: int = 0) -> list[float]:
    """Percentile-bootstrap interval of a mean: how far the mean of these items could move by chance."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not len(values):
        return [math.nan, math.nan]
    means = values[np.random.default_rng(seed).integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return np.percentile(means, [tail, 100 - tail]).tolist()


def paired_difference(before: pd.Series, after: pd.Series, level: float = LEVEL, n_resamples: int = RESAMPLES,
                      seed: int = 0) -> dict:
    """Mean of `after - before` over the items both hold (Series indexed by item id), with a
    paired percentile-bootstrap interval: resampling items keeps each item's two losses
    together, so what the items share (some are simply hard) cancels out."""
    joined = pd.concat({"a": before, "b": after}, axis=1, join="inner").dropna()
    diff = (joined["b"] - joined["a"]).to_numpy(dtype=float)
    if not len(diff):
        return {"n": 0, "diff": math.nan, "ci": [math.nan, math.nan], "mean_from": math.nan, "mean_to": math.nan}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(n_resamples, len(diff)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return {"n": int(len(diff)), "diff": float(diff.mean()), "ci": np.percentile(means, [tail, 100 - tail]).tolist(),
            "mean_from": float(joined["a"].mean()), "mean_to": float(joined["b"].mean())}
