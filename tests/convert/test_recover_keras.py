"""convert/recover.py (python -m convert recover): a converted int8 vgg_cnn back into a Keras run folder that computes what it did."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convert import recover as recover_keras

ROOT = Path(__file__).resolve().parents[2]
CALIB = 100  # as conftest's tiny runs: the sample's training side has ~300 faces


def vgg_cnn(seed: int):
    import keras

    from train.models import build_model
    keras.utils.set_random_seed(seed)
    return build_model("vgg_cnn")


@pytest.fixture
def vgg_converted(tmp_path_factory, sample_csv, new_run):
    """A real vgg_cnn run (two epochs on the sample: BatchNorm statistics that are not the identity),
    converted to int8 with the mirror average inside the file, as the shipped default is."""
    from convert.pipeline import run
    tmp = tmp_path_factory.mktemp("recover")
    run_dir = new_run(tmp / "vgg", sample_csv, epochs=2, build=vgg_cnn, name="vgg_cnn")
    result = run(run_dir, int8=True, out=tmp / "converted", calib=CALIB, latency_runs=2, eval_faces=50,
                 progress=False, flip_tta=True)
    return run_dir, Path(result.out_dir)


def recover(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convert", "recover", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_the_rebuilt_model_computes_what_the_file_does(vgg_converted, tmp_path, sample_csv):
    from convert import calibration as cal
    from convert.pipeline import check_member, load_keras_model, read_config
    from convert.report import keras_predict
    from convert.temperature import fold
    from device.metadata import read_metadata
    from device.provenance import file_sha256
    run_dir, conv = vgg_converted
    out, tflite = tmp_path / "recovered", conv / "model_int8.tflite"  # the int8 file: all the shipped default has
    check = recover_keras.recover(str(tflite), out, None)
    assert check["mirror_average"] and check["agreement"] >= recover_keras.MIN_AGREEMENT

    cfg, meta = read_config(out), read_metadata(out)
    assert cfg["recovered_from"] == {"model": str(tflite), "sha256": file_sha256(tflite)}
    assert "test_time_augmentation" not in meta and meta["model"] == "vgg_cnn"
    assert json.loads((out / "metrics.json").read_text())["recovery_check"] == check  # finished: ship, archive take it
    check_member(out, run_dir, read_metadata(run_dir), read_config(run_dir))  # same faces held out: a member

    # the rebuilt network is the trained one up to int8 weight rounding: the same probabilities, nearly
    rd = cal.load_run_data(run_dir, read_config(run_dir), read_metadata(run_dir))
    faces = cal.preprocess(rd.faces[:64])
    original = load_keras_model(run_dir / "model.keras", 7)
    fold(original, read_metadata(conv)["temperature"])  # the file is calibrated (a scalar or per-class temperature)
    want = keras_predict(original)(faces)
    got = keras_predict(load_keras_model(out / "model.keras", 7))(faces)
    assert np.abs(got - want).max() < 0.05
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.95

    # fine-tunable: each BatchNormalization computes nearly the same in training mode (batch statistics)
    # as at inference, so train --init-from starts where the file is, not from re-standardised channels
    import keras
    from keras import layers as kl
    model = keras.models.load_model(out / "model.keras", compile=False)
    norms = [l for l in model.layers if isinstance(l, kl.BatchNormalization)]
    batch = cal.preprocess(rd.faces[rd.train[:128]])
    for norm, x in zip(norms, keras.Model(model.inputs, [n.input for n in norms])(batch)):
        train, infer = np.asarray(norm(x, training=True)), np.asarray(norm(x, training=False))
        assert np.abs(train - infer).max() <= 0.1 * np.abs(infer).max(), norm.name

    # a folder: its float32 file, as train --teacher reads one; no rounding, so the very same probabilities
    recover_keras.recover(str(conv), tmp_path / "from_float", None)
    assert read_config(tmp_path / "from_float")["recovered_from"]["model"] == str(conv / "model_float32.tflite")
    exact = keras_predict(load_keras_model(tmp_path / "from_float" / "model.keras", 7))(faces)
    np.testing.assert_allclose(exact, want, atol=1e-4)


def test_dequantize_per_channel_and_float():
    q = np.array([[[[-127]]], [[[64]]]], np.int8)  # two output channels, (out, h, w, in)
    detail = {"quantization_parameters": {"scales": [0.5, 0.25], "zero_points": [0, 0], "quantized_dimension": 0}}
    np.testing.assert_allclose(recover_keras.dequantize(detail, q).ravel(), [-63.5, 16.0])
    f = np.ones((2, 3), np.float32)
    assert recover_keras.dequantize({"quantization_parameters": {"scales": []}}, f) is not f
    np.testing.assert_array_equal(recover_keras.dequantize({}, f), f)


@pytest.mark.slow
def test_bad_input_is_one_line_and_writes_nothing(converted, tmp_path):
    taken = tmp_path / "taken"
    taken.mkdir()
    for args, code, words in (([converted.out_dir, "--out", taken], 2, "already exists"),
                              ([tmp_path / "missing.tflite", "--out", tmp_path / "a"], 3, "no such file"),
                              ([converted.out_dir, "--out", tmp_path / "b"], 3, "cannot rebuild")):
        r = recover(*args)
        assert r.returncode == code, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1 and words in lines[0], r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and not any(taken.iterdir())
