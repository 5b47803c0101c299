"""Exponential moving average of class probabilities, per tracked face."""
from __future__ import annotations

from typing import Optional

import numpy as np


def ema(prev: Optional[np.ndarray], new: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * new + (1 - alpha) * prev``; ``new`` itself when there is no history.

    ``alpha`` in (0, 1]: the weight of the newest frame (1 = no smoothing). Works on one
    probability vector or a stack of them (rows with NaN history start fresh).
    """
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"smoothing alpha must be in (0, 1], got {alpha}")
    new = np.asarray(new, np.float32)
    if prev is None:
        return new.copy()
    prev = np.asarray(prev, np.float32)
    out = alpha * new + (1.0 - alpha) * prev
    fresh = np.isnan(prev)
    if fresh.any():
        out[fresh] = new[fresh]
    return out
