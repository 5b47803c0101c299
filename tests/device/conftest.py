"""Device-test fixtures: a small real model (int8 + float32 TFLite + metadata) and real faces.

``device_model`` is ``device/models/default/`` when the lead has shipped a model there.
Otherwise a tiny Keras CNN is fit for a couple of epochs on the real FER2013 sample faces
and converted with TensorFlow, inside the fixture only, so the device tests still run in a
venv without TensorFlow when the default model exists (and skip cleanly when neither does).
The built model is cached in pytest's cache folder, keyed by this builder's code and the data.
"""
from __future__ import annotations

import csv
import hashlib
import inspect
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = ROOT / "device" / "models" / "default"
MODEL_FILES = ("model_int8.tflite", "model_float32.tflite", "metadata.json")


def read_sample(csv_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The Kaggle FER2013 csv (emotion,pixels,Usage) -> uint8 faces (N, 48, 48), int64 labels (N,)."""
    faces, labels = [], []
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            faces.append(np.asarray(row["pixels"].split(), np.uint8).reshape(48, 48))
            labels.append(int(row["emotion"]))
    return np.stack(faces), np.asarray(labels, np.int64)


def _build_tiny_model(out: Path, faces: np.ndarray, labels: np.ndarray) -> None:
    tf = pytest.importorskip("tensorflow")
    import keras

    from device.contract import INPUT_SHAPE, NUM_CLASSES
    from device.metadata import make_metadata, write_metadata

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input(INPUT_SHAPE),
        keras.layers.Rescaling(1.0 / 255),
        keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
        keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(NUM_CLASSES, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    x = faces[..., None].astype(np.float32)
    model.fit(x, labels, epochs=2, batch_size=32, verbose=0)

    out.mkdir(parents=True, exist_ok=True)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / "model_float32.tflite").write_bytes(conv.convert())

    def representative():
        for i in range(0, len(x), 4):
            yield [x[i:i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (out / "model_int8.tflite").write_bytes(conv.convert())
    write_metadata(out, make_metadata("tiny", data="fer2013 sample.csv (test fixture)", epochs=2))


@pytest.fixture(scope="session")
def sample_faces(sample_csv) -> tuple[np.ndarray, np.ndarray]:
    return read_sample(sample_csv)


@pytest.fixture(scope="session")
def device_model(request, tmp_path_factory, sample_csv, sample_faces) -> Path:
    """A folder holding model_int8.tflite, model_float32.tflite and metadata.json."""
    if all((DEFAULT_MODEL_DIR / n).is_file() for n in MODEL_FILES):
        return DEFAULT_MODEL_DIR
    key = hashlib.sha256(inspect.getsource(_build_tiny_model).encode()
                         + Path(sample_csv).read_bytes()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    base = Path(cache.mkdir("ferlite-tiny-model")) if cache is not None else tmp_path_factory.mktemp("model")
    cached = base / key
    if all((cached / n).is_file() for n in MODEL_FILES):
        return cached
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tmp = cached.with_name(cached.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _build_tiny_model(tmp, *sample_faces)
    shutil.rmtree(cached, ignore_errors=True)
    os.replace(tmp, cached)
    return cached


@pytest.fixture(scope="session")
def model_int8(device_model) -> Path:
    return device_model / "model_int8.tflite"
