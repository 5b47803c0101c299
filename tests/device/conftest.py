"""Device-test fixtures: a small real model (int8 + float32 TFLite + metadata) and real faces.

``device_model`` is ``device/models/default/`` when the lead has shipped a model there.
Otherwise a tiny Keras CNN is fit for a couple of epochs on the real FER2013 sample faces
and converted with TensorFlow, inside the fixture only, so the device tests still run in a
venv without TensorFlow when the default model exists (and skip cleanly when neither does).
The built model is cached in pytest's cache folder, keyed by this builder's code and the data.
"""
from __future__ import annotations

import hashlib
import inspect
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_DIR = ROOT / "device" / "models" / "default"
MODEL_FILES = ("model_int8.tflite", "model_float32.tflite", "metadata.json")


def _build_tiny_model(out: Path, faces: np.ndarray, labels: np.ndarray) -> None:
    """A tiny Keras CNN fit for two epochs, exported by convert/ exactly as users' models are."""
    pytest.importorskip("tensorflow")
    import keras

    from convert.export import export_float32, export_int8
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
    model.fit(faces[..., None].astype(np.float32), labels, epochs=2, batch_size=32, verbose=0)
    export_float32(model, out)
    export_int8(model, out, faces)
    write_metadata(out, make_metadata("tiny", data="fer2013 sample.csv (test fixture)", epochs=2))


@pytest.fixture(scope="session")
def sample_faces(sample_csv) -> tuple[np.ndarray, np.ndarray]:
    # train.data needs only numpy and OpenCV, so this works in the TF-free device venv too.
    from train.data import load_fer2013
    ds = load_fer2013(sample_csv)
    return ds.faces, ds.labels


@pytest.fixture(scope="session")
def device_model(request, tmp_path_factory, sample_csv, sample_faces) -> Path:
    """A folder holding model_int8.tflite and metadata.json: the shipped default model when present."""
    if all((DEFAULT_MODEL_DIR / n).is_file() for n in ("model_int8.tflite", "metadata.json")):
        return DEFAULT_MODEL_DIR
    return _pair_model(request, tmp_path_factory, sample_csv, sample_faces)


@pytest.fixture(scope="session")
def pair_model(request, tmp_path_factory, sample_csv, sample_faces) -> Path:
    """A folder holding model_int8.tflite, model_float32.tflite and metadata.json (for bench).

    The shipped default has no float32 file (only the int8 file ships), so without TensorFlow
    to build the tiny pair this skips."""
    if all((DEFAULT_MODEL_DIR / n).is_file() for n in MODEL_FILES):
        return DEFAULT_MODEL_DIR
    return _pair_model(request, tmp_path_factory, sample_csv, sample_faces)


def _pair_model(request, tmp_path_factory, sample_csv, sample_faces) -> Path:
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


@pytest.fixture
def run_cli(capsys):
    """``device/run.py``'s ``main(argv)`` in-process, exactly as the script runs it (exit code, stdout, stderr)."""
    from device.run import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return SimpleNamespace(exit_code=code, stdout=out, stderr=err, output=out + err)
    return run


from mqtt_broker import broker, tls_broker, tls_files  # noqa: E402,F401  (a real mosquitto: test_telemetry*.py)
