"""One function per TFLite target, each returning the path it wrote.

Every target is converted from the same concrete function: the Keras model
called in inference mode (``training=False``, so augmentation layers leave no
ops) on a float32 ``[None, 48, 48, 1]`` input holding raw 0..255 pixels. Files
are written atomically: a failed conversion leaves no file that looks finished.

    export_float32(model, out_dir)               -> model_float32.tflite (the reference)
    export_int8(model, out_dir, calib_faces)     -> model_int8.tflite    (full integer, int8 in/out)
    export_float16(model, out_dir)               -> model_float16.tflite (float16 weights)
    export_dynamic(model, out_dir)               -> model_dynamic.tflite (dynamic-range int8 weights)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from device import contract
from device.atomic import write_bytes
from device.errors import RunFailed

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

FILENAMES = {
    "float32": "model_float32.tflite",
    "int8": "model_int8.tflite",
    "float16": "model_float16.tflite",
    "dynamic": "model_dynamic.tflite",
}


class ConversionError(RunFailed):
    """The TFLite converter refused the model; the message is the converter's own."""


def _tf():
    from . import quiet_tensorflow
    return quiet_tensorflow()


def _converter(model):
    """A TFLiteConverter for ``model`` in inference mode (augmentation layers pass faces through).

    ``from_keras_model`` rather than a hand-made concrete function: with the latter, the
    converter leaves READ_VARIABLE ops in models without random layers (TF 2.21), and int8
    calibration then fails. The batch dimension stays dynamic ([-1, 48, 48, 1])."""
    return _tf().lite.TFLiteConverter.from_keras_model(model)


def _convert(converter, what: str) -> bytes:
    import contextlib
    import io

    from .console import captured_stderr
    try:  # stdout too: Keras's export prints every captured variable's TensorSpec (a hundred lines for vgg_cnn)
        with captured_stderr() as cap, contextlib.redirect_stdout(io.StringIO()):
            return bytes(converter.convert())
    except Exception as e:  # ConverterError, ValueError, RuntimeError: keep the converter's text
        msg = " ".join(str(e).split())
        if not msg:  # the converter printed its reason to stderr instead
            lines = [ln for ln in cap.text.splitlines() if "error" in ln.lower()]
            msg = " ".join(lines[-3:])
        raise ConversionError(f"{what} conversion failed: {msg[:2000] or type(e).__name__}") from None


def _write(out_dir, target: str, data: bytes) -> Path:
    if not data:
        raise ConversionError(f"{target} conversion produced an empty model")
    return write_bytes(Path(out_dir) / FILENAMES[target], data)


def export_float32(model, out_dir) -> Path:
    """The float32 reference model: builtin ops only, float32 in and out."""
    conv = _converter(model)
    conv.target_spec.supported_ops = [_tf().lite.OpsSet.TFLITE_BUILTINS]
    return _write(out_dir, "float32", _convert(conv, "float32"))


def representative_dataset(calib_faces: np.ndarray, progress: Callable[[int], None] | None = None):
    """The converter's representative dataset: one face per step, as the float model's input.

    ``calib_faces`` are (N, 48, 48) uint8 faces already checked by ``convert.calibration``;
    each goes through ``contract.as_batch`` exactly like every other model input.
    """
    faces = np.asarray(calib_faces)

    def gen() -> Iterable[list[np.ndarray]]:
        for face in faces:
            yield [contract.as_batch(face[None])]
            if progress is not None:
                progress(1)
    return gen


def export_int8(model, out_dir, calib_faces: np.ndarray, progress=None) -> Path:
    """Full-integer post-training quantization: int8 input and output, builtin int8 ops only."""
    tf = _tf()
    faces = np.asarray(calib_faces)
    if faces.dtype != np.uint8 or faces.ndim != 3 or faces.shape[1:] != contract.INPUT_SHAPE[:2] or not len(faces):
        raise ConversionError(f"int8 calibration needs (N, 48, 48) uint8 faces, got {faces.dtype} {faces.shape}")
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative_dataset(faces, progress)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return _write(out_dir, "int8", _convert(conv, "int8"))


def export_float16(model, out_dir) -> Path:
    """Float16 weights, float32 input and output (weights are dequantized at load time)."""
    tf = _tf()
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return _write(out_dir, "float16", _convert(conv, "float16"))


def export_dynamic(model, out_dir) -> Path:
    """Dynamic-range quantization: int8 weights, float32 activations, input and output."""
    tf = _tf()
    conv = _converter(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return _write(out_dir, "dynamic", _convert(conv, "dynamic"))


# target -> exporter(model, out_dir) -> path; int8 also takes (calib_faces, progress=).
EXPORTERS = {"float32": export_float32, "int8": export_int8,
             "float16": export_float16, "dynamic": export_dynamic}


# --- inspecting a written model --------------------------------------------------------------

def _interpreter(path):
    """An interpreter that shows the file's own ops: no default delegate (XNNPACK) folds them into DELEGATE."""
    import sys
    from device.interpreter import interpreter_class
    cls = interpreter_class()
    resolver = getattr(sys.modules.get(cls.__module__), "OpResolverType", None)
    if resolver is not None:
        return cls(model_path=str(path),
                   experimental_op_resolver_type=resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    return cls(model_path=str(path))


def graph_ops(path) -> list[dict]:
    """Every op of a ``.tflite`` file in execution order: name, and whether it runs in float.

    An op "runs in float" when any of its input or output tensors is float32 (so a
    DEQUANTIZE -> op -> QUANTIZE island in an int8 graph shows up as three float ops).
    Read with LiteRT's interpreter, the same runtime the Pi uses.
    """
    interp = _interpreter(path)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    out = []
    for op in interp._get_ops_details():
        idx = [int(i) for i in list(op["inputs"]) + list(op["outputs"]) if int(i) >= 0]
        dtypes = sorted({np.dtype(tensors[i]["dtype"]).name for i in idx if i in tensors})
        out.append({"index": int(op["index"]), "op": op["op_name"], "dtypes": dtypes,
                    "float": "float32" in dtypes})
    return out


def float_ops(path) -> list[dict]:
    """The ops of ``path`` that still run in float (empty for a graph that is integer end to end)."""
    return [op for op in graph_ops(path) if op["float"]]


def graph_stats(path, list_float_ops: bool = True) -> dict:
    """The report's summary of a written graph: op counts, the ops that run in float, integer shape ops.

    ``list_float_ops``: name each float op (for int8, where any is a finding; float targets are float
    throughout, so only their count is kept)."""
    ops = graph_ops(path)
    fl = [o for o in ops if o["float"]]
    counts: dict[str, int] = {}
    for o in ops:
        counts[o["op"]] = counts.get(o["op"], 0) + 1
    return {"n_ops": len(ops), "op_counts": counts, "n_float_ops": len(fl),
            "float_ops": fl if list_float_ops else [], "int8_end_to_end": not fl,
            # int32 shape arithmetic (e.g. Flatten on a dynamic batch): integer, but not int8
            "shape_ops": [o["op"] for o in ops if o["dtypes"] and set(o["dtypes"]) <= {"int32", "int64"}]}


def io_details(path) -> dict:
    """Input/output dtype, shape signature and (scale, zero_point) as stored in the file."""
    interp = _interpreter(path)

    def one(d):
        scale, zero = d.get("quantization", (0.0, 0))
        return {"dtype": np.dtype(d["dtype"]).name,
                "shape": [int(s) for s in d.get("shape_signature", d["shape"])],
                "scale": float(scale), "zero_point": int(zero)}
    return {"input": one(interp.get_input_details()[0]), "output": one(interp.get_output_details()[0])}
