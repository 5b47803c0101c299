"""device/reliability.py: expected calibration error and its bins, by hand."""
from __future__ import annotations

import numpy as np
import pytest

from device.reliability import expected_calibration_error, reliability


def test_ece_by_hand():
    # two faces at confidence 0.9 (one right), two at 0.6 (both right): |0.5 - 0.9| / 2 + |1.0 - 0.6| / 2
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = np.array([0, 1, 1, 1])
    rel = reliability(probs, labels)
    assert rel["ece"] == pytest.approx(0.5 * 0.4 + 0.5 * 0.4)
    assert [b["n"] for b in rel["bins"]] == [0, 0, 0, 0, 0, 2, 0, 0, 2, 0]  # 0.6 in (0.5, 0.6], 0.9 in (0.8, 0.9]
    assert rel["accuracy"] == 0.75 and rel["mean_confidence"] == pytest.approx(0.75) and rel["n"] == 4


def test_calibrated_sampling_gives_small_ece_and_under_confidence_large():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7) * 0.5, 50_000)
    labels = np.array([rng.choice(7, p=p) for p in probs])  # labels drawn from the probabilities themselves
    assert expected_calibration_error(probs, labels) < 0.01
    flat = (probs + 1.0) / (1.0 + 7.0)  # same top-1, confidence pulled towards 1/7: under-confident
    assert expected_calibration_error(flat, labels) > 0.2


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        reliability(np.zeros((0, 7)), np.zeros(0))
    with pytest.raises(ValueError):
        reliability(np.ones((3, 7)) / 7, np.zeros(2))
