"""Do a model's probabilities mean what they say? Expected calibration error and its reliability bins.

Numpy only, so the Pi's ``run.py bench`` and the workstation's ``convert`` report score it the same way.
Top-1 confidence is cut into equal-width bins; a bin's gap is |accuracy - mean confidence| of its faces,
and the ECE is those gaps weighted by the share of faces in each bin (Guo et al. 2017, "On Calibration
of Modern Neural Networks"). 0 is perfect; a model right 71% of the time that says 0.60 on average
has an ECE of at least 0.11.
"""
from __future__ import annotations

import numpy as np

DEFAULT_BINS = 10


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> dict:
    """ECE and the per-bin table (JSON-ready) of ``probs`` (N, K) against integer ``labels`` (N,).

    Bin i holds confidences in (i/bins, (i+1)/bins]; the first also holds 0."""
    probs, labels = np.asarray(probs, np.float64), np.asarray(labels, np.int64)
    if probs.ndim != 2 or len(probs) != len(labels) or not len(probs):
        raise ValueError(f"need (N, K) probabilities and N labels, N > 0; got {probs.shape} and {labels.shape}")
    conf = probs.max(axis=1)
    right = (probs.argmax(axis=1) == labels).astype(np.float64)
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    table, ece = [], 0.0
    for i in range(bins):
        inside = idx == i
        n = int(inside.sum())
        acc = float(right[inside].mean()) if n else None
        mean_conf = float(conf[inside].mean()) if n else None
        if n:
            ece += n / len(conf) * abs(acc - mean_conf)
        table.append({"lo": i / bins, "hi": (i + 1) / bins, "n": n, "accuracy": acc, "confidence": mean_conf})
    return {"ece": float(ece), "bins": table, "n": int(len(conf)), "accuracy": float(right.mean()),
            "mean_confidence": float(conf.mean())}


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = DEFAULT_BINS) -> float:
    return reliability(probs, labels, bins)["ece"]
