"""vgg_cnn_norm: per-face contrast normalisation as a layer in the model (train/layers.py FaceStandardize),
started from a vgg_cnn's weights, converted to an int8 file that stays integer."""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from device.contract import LABELS  # noqa: E402
from train.config import TrainConfig  # noqa: E402
from train.layers import FaceStandardize  # noqa: E402
from train.models import build_model  # noqa: E402
from train.warm_start import WarmStartError, check_init_run, transfer_weights  # noqa: E402

RNG = np.random.default_rng(0)


def face_batch(n=4):
    """Smooth, face-like images (not uniform noise) on the 0..1 scale."""
    yy, xx = np.mgrid[0:48, 0:48] / 47.0
    base = 0.3 + 0.4 * np.sin(3 * xx + RNG.uniform(0, 3, (n, 1, 1))) * np.cos(2 * yy)
    return base[..., None].astype("float32")


def test_a_face_and_the_same_face_darker_or_washed_out_come_out_the_same():
    layer = FaceStandardize()
    faces = face_batch()
    out = np.asarray(layer(faces))
    np.testing.assert_allclose(out.mean(axis=(1, 2, 3)), 0.5, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2, 3)), 0.21, rtol=1e-2)
    for gain, offset in ((0.3, 0.0), (0.4, 0.5), (1.3, -0.1)):  # low light, washed out, more contrast
        np.testing.assert_allclose(np.asarray(layer(faces * gain + offset)), out, atol=2e-3)
    flat = np.full((1, 48, 48, 1), 0.2, "float32")
    np.testing.assert_allclose(np.asarray(layer(flat)), 0.5, atol=1e-4)  # no NaN, no blown-up noise


def test_the_normalised_net_starts_from_a_vgg_cnn_and_ignores_the_light():
    src = build_model("vgg_cnn", augment=False, seed=1)
    rng = np.random.default_rng(1)
    for w in src.weights:  # off the initialisation (BatchNorm statistics included), so the light matters to it
        w.assign(w.numpy() + rng.normal(0, 0.05, w.shape).astype("float32"))
    dst = build_model("vgg_cnn_norm", augment=False, seed=2)
    transfer_weights(src, dst, LABELS, LABELS)
    for a, b in zip(src.weights, dst.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    faces = face_batch() * 255.0

    def moved(model):  # how far a dark cabin moves the probabilities
        return np.abs(model.predict(faces * 0.25, verbose=0) - model.predict(faces, verbose=0)).max()
    assert moved(dst) < 1e-3 and moved(src) > 10 * moved(dst)


def fake_run(path, model: str, cfg: TrainConfig):
    path.mkdir()
    (path / "model.keras").write_bytes(b"")
    (path / "config.json").write_text(json.dumps({"model": model, "split": cfg.split, "seed": cfg.seed,
                                                  "val_fraction": cfg.val_fraction}))
    (path / "metadata.json").write_text(json.dumps({"data": {"sha256": "abc"}}))
    return path


def test_init_from_accepts_the_network_whose_weights_it_holds_and_no_other(tmp_path):
    cfg = TrainConfig(model="vgg_cnn_norm", init_from=str(fake_run(tmp_path / "vgg", "vgg_cnn", TrainConfig())))
    assert check_init_run(cfg, "abc") == tmp_path / "vgg" / "model.keras"
    cfg = TrainConfig(model="vgg_cnn_norm", init_from=str(fake_run(tmp_path / "res", "residual_cnn", TrainConfig())))
    with pytest.raises(WarmStartError, match="it is a residual_cnn"):
        check_init_run(cfg, "abc")


def test_the_int8_file_is_integer_and_light_blind(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from convert.export import export_int8
    model = build_model("vgg_cnn_norm", augment=False, seed=0)
    calib = (face_batch(64)[..., 0] * 255).astype("uint8")
    path = export_int8(model, tmp_path, calib)
    interp = Interpreter(str(path))
    interp.allocate_tensors()
    ops = {op["op_name"] for op in interp._get_ops_details()}
    assert {"MEAN", "RSQRT"} <= ops and not ops & {"DEQUANTIZE", "QUANTIZE"}, ops
