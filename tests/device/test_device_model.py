"""The test model itself: loads through the device wrapper, shape and labels as the contract says."""
from __future__ import annotations

import numpy as np

from device.contract import LABELS
from device.interpreter import TFLiteClassifier


def test_device_model_loads_and_predicts(pair_model, sample_faces):
    device_model = pair_model
    faces, _ = sample_faces
    for name in ("model_int8.tflite", "model_float32.tflite"):
        clf = TFLiteClassifier(device_model / name, threads=1)
        assert clf.labels == list(LABELS)
        probs = clf.predict(faces[:5])
        assert probs.shape == (5, len(LABELS))
        assert np.allclose(probs.sum(1), 1.0, atol=0.05)
    assert TFLiteClassifier(device_model / "model_int8.tflite").quantized


def test_default_model_is_shipped_and_runs(sample_faces):
    """device/run.py works with no --model: the default int8 model and its metadata are in the repo."""
    from pathlib import Path
    default = Path(__file__).resolve().parents[2] / "device" / "models" / "default"
    clf = TFLiteClassifier(default / "model_int8.tflite", threads=1)
    assert clf.quantized and clf.labels == list(LABELS)
    assert (default / "model_int8.tflite").stat().st_size <= 4_000_000  # convert ship's --max-bytes default
    faces, labels = sample_faces
    acc = float((clf.predict_batched(faces).argmax(1) == labels).mean())
    assert acc > 0.4  # Training faces; a real trained model, far above the 1/7 of chance
