"""convert/temperature.py: the fit recovers a known temperature; a converted run carries it in its files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from convert.temperature import averaged_probs, choose, fit_temperature, log_probs, nll, view_logits


def _synthetic(t_true: float, n: int = 20_000, k: int = 7, seed: int = 0):
    """Labels drawn from softmax(g); the "model" says g * t_true: over-confident for t_true > 1, under below."""
    rng = np.random.default_rng(seed)
    g = rng.normal(0, 1.5, (n, k))
    p = averaged_probs(g[None], 1.0)
    labels = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return g * t_true, labels


@pytest.mark.parametrize("t_true", [0.6, 1.0, 2.5])
def test_fit_recovers_a_known_temperature(t_true):
    logits, labels = _synthetic(t_true)
    assert fit_temperature(logits[None], labels) == pytest.approx(t_true, rel=0.05)


def test_fit_calibrates_and_keeps_top1():
    from device.reliability import expected_calibration_error
    logits, labels = _synthetic(0.5)  # under-confident, as label smoothing leaves a network
    t, rec = choose(logits[None], labels)
    assert rec["method"] == "scalar"  # one T is all this miscalibration needs: the per-class vector must not pay
    assert rec["nll_after"] < rec["nll_before"]
    before, after = averaged_probs(logits[None], 1.0), averaged_probs(logits[None], t)
    assert expected_calibration_error(after, labels) < 0.02 < expected_calibration_error(before, labels)
    assert (before.argmax(1) == after.argmax(1)).all()


def test_fit_is_for_the_average_of_views():
    """Two views (a face and its mirror): T is fitted for mean(softmax(z_v / T)), what the file outputs."""
    logits, labels = _synthetic(0.5)
    rng = np.random.default_rng(1)
    views = np.stack([logits + rng.normal(0, 0.3, logits.shape), logits + rng.normal(0, 0.3, logits.shape)])
    t = fit_temperature(views, labels)
    grid = [t * f for f in (0.9, 0.95, 1.05, 1.1)]
    assert all(nll(views, labels, t) < nll(views, labels, x) for x in grid)


def test_log_probs_are_logits_up_to_a_constant():
    z = np.random.default_rng(0).normal(0, 3, (50, 7))
    p = averaged_probs(z[None], 1.0).astype(np.float32)
    np.testing.assert_allclose(averaged_probs(log_probs(p)[None], 0.7), averaged_probs(z[None], 0.7), atol=1e-5)


# --- a converted tiny run -------------------------------------------------------------------------

def _keras_model(run_dir):
    from convert.pipeline import load_keras_model
    return load_keras_model(run_dir / "model.keras", 7)


def _keras_probs(run_dir, faces):
    from convert.report import keras_predict
    return keras_predict(_keras_model(run_dir))(faces)


@pytest.mark.slow
def test_converted_run_carries_the_temperature(converted, tiny_run, sample_csv):
    from device.interpreter import TFLiteClassifier
    from train.data import load_fer2013
    out = converted.out_dir
    meta = json.loads((out / "metadata.json").read_text())
    t = meta["temperature"]
    assert np.all((0.05 < np.asarray(t)) & (np.asarray(t) < 20)) and meta["temperature_fit"]["split"] == "val"
    faces = load_fer2013(sample_csv).faces[::5]
    want = averaged_probs(view_logits([_keras_model(tiny_run)], faces, flip=False), t)  # softmax(logits / T)
    got = TFLiteClassifier(out / "model_float32.tflite").predict_batched(faces)
    np.testing.assert_allclose(got, want, atol=1e-4)

    r = converted.report
    assert r["temperature"]["calibrated"] and r["temperature"]["temperature"] == t
    assert r["temperature"]["nll_after"] <= r["temperature"]["nll_before"]
    assert set(r["temperature"]["keras_uncalibrated"]) == {"val", "test"}
    for name in ("keras", "float32", "int8"):
        rel = r["models"][name]["reliability"]
        assert set(rel) == {"val", "test"} and all(0 <= rel[s]["ece"] <= 1 and len(rel[s]["bins"]) == 10 for s in rel)
    assert r["models"]["int8"]["io"]["output"]["dtype"] == "int8" and r["models"]["int8"]["graph"]["int8_end_to_end"]
    for png in ("reliability_val.png", "reliability_test.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and png in r["files"]
    md = converted.paths["report_md"].read_text()
    assert "## Calibration" in md and "keras uncalibrated" in md and f"Temperature {t}" in md


@pytest.mark.slow
def test_no_calibrate_leaves_the_softmax_and_a_stale_temperature_goes(run_copy, sample_csv, capsys):
    from convert.cli import main
    from device.interpreter import TFLiteClassifier
    from train.data import load_fer2013
    original = (run_copy / "metadata.json").read_bytes()
    common = [str(run_copy), "--eval-limit", "20", "--latency-runs", "2", "--eval-faces", "0", "-q"]
    assert main(common) == 0
    assert "temperature" in json.loads((run_copy / "metadata.json").read_text())
    assert main([*common, "--no-calibrate"]) == 0
    assert (run_copy / "metadata.json").read_bytes() == original  # the run folder's own again
    faces = load_fer2013(sample_csv).faces[::5]
    got = TFLiteClassifier(run_copy / "model_float32.tflite").predict_batched(faces)
    np.testing.assert_allclose(got, _keras_probs(run_copy, faces), atol=1e-4)
    r = json.loads((run_copy / "report.json").read_text())
    assert r["temperature"]["calibrated"] is False and "keras_uncalibrated" not in r["temperature"]
    assert set(r["models"]["float32"]["reliability"]) == {"val", "test"}
    assert "Not calibrated (--no-calibrate)" in (run_copy / "report.md").read_text()


def test_a_model_without_a_softmax_probs_layer_is_refused():
    from convert import quiet_tensorflow
    quiet_tensorflow()
    import keras
    from convert.temperature import TemperatureError, fold
    inp = keras.Input((48, 48, 1))
    out = keras.layers.Dense(7, activation="softmax", name="other")(keras.layers.Flatten()(inp))
    with pytest.raises(TemperatureError, match="--no-calibrate"):
        fold(keras.Model(inp, out), 0.7)


def test_per_class_vector_only_when_it_pays_held_out():
    """Classes miscalibrated in opposite ways: one temperature cannot fix both, the held-out vector wins."""
    logits, labels = _synthetic(1.0, n=8000)
    scale = np.array([3.0, 3.0, 3.0, 0.4, 0.4, 0.4, 0.4])  # over-confident on three classes, under on four
    t, rec = choose((logits * scale)[None], labels)
    assert rec["method"] == "per-class" and rec["cv_nll"]["per_class"] < rec["cv_nll"]["scalar"]
    assert np.asarray(t) == pytest.approx(scale, rel=0.15)


def test_fold_divides_the_logits_by_a_scalar_or_per_class_temperature():
    from convert import quiet_tensorflow
    quiet_tensorflow()
    import keras
    from convert.temperature import fold
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(inp))
    x = np.random.default_rng(0).normal(0, 2, (16, 4)).astype(np.float32)
    w, b = model.get_weights()
    logits = x @ w + b
    for t in (0.5, np.array([0.5, 1.0, 2.0])):
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        fold(clone, t)
        np.testing.assert_allclose(np.asarray(clone(x)), averaged_probs(logits[None], t), atol=1e-5)
    np.testing.assert_allclose(np.asarray(model(x)), averaged_probs(logits[None], 1.0), atol=1e-5)  # untouched


def test_view_logits_are_the_dense_outputs_of_each_view():
    """What the fold divides: the "probs" Dense's pre-softmax outputs, face then mirror; the softmax comes back."""
    from convert import quiet_tensorflow
    quiet_tensorflow()
    import keras
    from convert.temperature import probs_layer, view_logits
    inp = keras.Input((48, 48, 1))
    model = keras.Model(inp, keras.layers.Dense(7, activation="softmax", name="probs")(
        keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inp))))
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48)).astype(np.uint8)
    w, b = model.get_weights()
    z = view_logits([model], faces, flip=True)
    want = [f.reshape(5, -1).astype(np.float64) / 255 @ w + b for f in (faces, faces[:, :, ::-1])]
    np.testing.assert_allclose(z, np.stack(want), atol=1e-4)
    assert probs_layer(model).activation.__name__ == "softmax"
