"""The test model itself: loads through the device wrapper, shape and labels as the contract says."""
from __future__ import annotations

import numpy as np

from device.contract import LABELS
from device.interpreter import TFLiteClassifier


def test_device_model_loads_and_predicts(device_model, sample_faces):
    faces, _ = sample_faces
    for name in ("model_int8.tflite", "model_float32.tflite"):
        clf = TFLiteClassifier(device_model / name, threads=1)
        assert clf.labels == list(LABELS)
        probs = clf.predict(faces[:5])
        assert probs.shape == (5, len(LABELS))
        assert np.allclose(probs.sum(1), 1.0, atol=0.05)
    assert TFLiteClassifier(device_model / "model_int8.tflite").quantized
