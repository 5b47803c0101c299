"""The LiteRT interpreter wrapper that every ``.tflite`` prediction in ferlite goes through.

The model contract is read from the file: input shape and dtype, int8 scale and
zero-point for input and output. Labels come from ``metadata.json`` beside it.
The interpreter is built once; ``predict`` only copies a batch in and out.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import contract
from .errors import EnvironmentMissing, InputError
from .metadata import read_metadata

INSTALL_HINT = ("no LiteRT interpreter found: install one with 'pip install ai-edge-litert' "
                "(or on older systems 'pip install tflite-runtime \"numpy<2\"')")


class ModelError(InputError):
    """A model file is missing, unreadable, or not a 48x48x1 ferlite classifier."""


class InterpreterMissing(EnvironmentMissing):
    """No LiteRT interpreter package is installed (the message names the install command)."""


def interpreter_class():
    """LiteRT's Interpreter: ``ai_edge_litert`` first, ``tflite_runtime`` as fallback. Never TensorFlow."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise InterpreterMissing(INSTALL_HINT) from None
    return Interpreter


def _quant(detail) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class TFLiteClassifier:
    """A ``.tflite`` face classifier: (N, 48, 48) uint8 faces in, (N, classes) probabilities out."""

    def __init__(self, model_path: str | Path, threads: int | None = None, labels=None):
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}")
        self.labels = list(labels) if labels is not None else list(read_metadata(self.path)["labels"])
        interpreter = interpreter_class()  # InterpreterMissing names the pip command
        try:
            self.interpreter = interpreter(model_path=str(self.path), num_threads=threads)
        except Exception as e:  # LiteRT raises ValueError/RuntimeError with its own text
            raise ModelError(f"{self.path}: not a loadable TFLite model ({str(e).strip().splitlines()[0]})") from None
        inp = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{self.path}: expected one input and one output, found {len(inp)} and {len(out)}")
        self._in, self._out = inp[0], out[0]
        shape = tuple(int(d) for d in self._in["shape"][1:])
        if shape != contract.INPUT_SHAPE:
            raise ModelError(f"{self.path}: model input is {shape}, ferlite models take {contract.INPUT_SHAPE} faces")
        n_out = int(self._out["shape"][-1])
        if n_out != len(self.labels):
            raise ModelError(f"{self.path}: model has {n_out} outputs but its metadata names {len(self.labels)} labels")
        self.input_dtype = np.dtype(self._in["dtype"])
        self.output_dtype = np.dtype(self._out["dtype"])
        self.input_scale, self.input_zero_point = _quant(self._in)
        self.output_scale, self.output_zero_point = _quant(self._out)
        if self.input_dtype not in (np.float32, np.int8, np.uint8):
            raise ModelError(f"{self.path}: unsupported input dtype {self.input_dtype}")
        # uint8 pixels map to int8 by flipping the top bit when the quantizer chose scale 1,
        # zero point -128 (what calibration on 0..255 faces gives): no float round trip per frame.
        self._xor_fast_path = (self.input_dtype == np.int8 and self.input_scale == 1.0
                               and self.input_zero_point == -128)
        self._batch = int(self._in["shape"][0])
        self.interpreter.allocate_tensors()

    @property
    def quantized(self) -> bool:
        return self.input_dtype != np.float32

    def _resize(self, n: int) -> None:
        if n != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], [n, *contract.INPUT_SHAPE])
            self.interpreter.allocate_tensors()
            self._batch = n

    def quantize(self, faces: np.ndarray) -> np.ndarray:
        """(N, 48, 48[, 1]) uint8 faces -> the model's input tensor, using the file's own scale/zero-point."""
        faces = np.asarray(faces)
        if faces.ndim == 3:
            faces = faces[..., None]
        if faces.shape[1:] != contract.INPUT_SHAPE or faces.dtype != np.uint8:
            raise ValueError(f"expected uint8 faces of shape (N, 48, 48), got {faces.dtype} {faces.shape}")
        if self.input_dtype == np.float32:
            return faces.astype(np.float32)
        if self._xor_fast_path:
            return (faces ^ np.uint8(0x80)).view(np.int8)
        info = np.iinfo(self.input_dtype)
        q = np.round(faces.astype(np.float32) / self.input_scale) + self.input_zero_point
        return np.clip(q, info.min, info.max).astype(self.input_dtype)

    def dequantize(self, raw: np.ndarray) -> np.ndarray:
        if self.output_dtype == np.float32:
            return raw.astype(np.float32, copy=False)
        return (raw.astype(np.float32) - self.output_zero_point) * self.output_scale

    def predict(self, faces: np.ndarray) -> np.ndarray:
        """(N, 48, 48) uint8 faces -> (N, classes) float32 probabilities."""
        x = self.quantize(faces)
        self._resize(len(x))
        self.interpreter.set_tensor(self._in["index"], x)
        self.interpreter.invoke()
        return self.dequantize(self.interpreter.get_tensor(self._out["index"]))

    def predict_batched(self, faces: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """``predict`` over many faces in fixed-size chunks (one resize, not one per call)."""
        return np.concatenate([self.predict(faces[i:i + batch_size])
                               for i in range(0, len(faces), batch_size)]) if len(faces) else \
            np.zeros((0, len(self.labels)), np.float32)
