"""Small helpers for the toolkit's figures."""

from __future__ import annotations

import numpy as np


def error_bars(centre, low, high) -> np.ndarray:
    """Matplotlib's ``yerr`` (2, n) from a centre and its interval.

    A mean of equal values can land one rounding step outside its own min/max, and
    matplotlib refuses negative error bars: the lengths are clipped at zero.

    Args:
        centre: the plotted values (mean, median, fraction).
        low: the interval's lower ends.
        high: the interval's upper ends.
    """
    centre = np.asarray(centre, dtype=float)
    lengths = np.vstack([centre - np.asarray(low, float), np.asarray(high, float) - centre])
    return np.maximum(lengths, 0.0)
