"""convert/: round trip, int8 file contract, report fields, calibration refusals, bad inputs."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest


ROOT = Path(__file__).resolve().parents[2]
CALIB = 100  # as in conftest.py's ``converted`` fixture


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())

# Tolerances for the three predictors on the same real faces (the tiny model's probabilities).
FLOAT32_VS_KERAS_MAX_ABS = 1e-4   # same float math, different kernels
INT8_VS_FLOAT32_MEAN_ABS = 0.02   # int8 activations and output (output step 1/256)
INT8_VS_FLOAT32_MAX_ABS = 0.10
INT8_TOP1_AGREEMENT = 0.90


def _eval_faces(converted):
    with np.load(converted.paths["eval_faces"]) as z:
        return {k: z[k] for k in z.files}


# --- round trip ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_round_trip_three_predictors_agree(converted, tiny_run, sample_csv):
    from convert.pipeline import load_keras_model
    from convert.temperature import averaged_probs, view_logits
    from device.contract import LABELS
    from device.interpreter import TFLiteClassifier
    from train.data import load_fer2013

    out = converted.out_dir
    for name in ("model_float32.tflite", "model_int8.tflite", "metadata.json", "report.json", "report.md",
                 "eval_faces.npz", "confusion_keras.png", "confusion_float32.png", "confusion_int8.png"):
        assert (out / name).is_file(), name
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"
    meta = read_json(out / "metadata.json")  # the run's, and the temperature baked into the files
    assert {k: v for k, v in meta.items() if not k.startswith("temperature")} == read_json(tiny_run / "metadata.json")

    faces = load_fer2013(sample_csv).faces[::3]  # 140 real faces, all classes
    logits = view_logits([load_keras_model(tiny_run / "model.keras", len(LABELS))], faces, flip=False)
    keras_p = averaged_probs(logits, meta["temperature"]).astype(np.float32)  # softmax(logits / T)
    f32 = TFLiteClassifier(out / "model_float32.tflite").predict_batched(faces)
    i8 = TFLiteClassifier(out / "model_int8.tflite").predict_batched(faces)
    assert keras_p.shape == f32.shape == i8.shape == (len(faces), len(LABELS))
    assert np.abs(f32 - keras_p).max() <= FLOAT32_VS_KERAS_MAX_ABS
    assert (f32.argmax(1) == keras_p.argmax(1)).all()
    d = np.abs(i8 - f32)
    assert d.mean() <= INT8_VS_FLOAT32_MEAN_ABS and d.max() <= INT8_VS_FLOAT32_MAX_ABS, (d.mean(), d.max())
    assert (i8.argmax(1) == f32.argmax(1)).mean() >= INT8_TOP1_AGREEMENT


@pytest.mark.slow
def test_int8_file_contract(converted):
    from convert.export import graph_ops, io_details
    from device.interpreter import TFLiteClassifier

    io = io_details(converted.paths["int8"])
    assert io["input"]["dtype"] == "int8" and io["output"]["dtype"] == "int8"
    assert io["input"]["shape"] == [-1, 48, 48, 1] and io["output"]["shape"] == [-1, 7]
    # calibrated on 0..255 faces: uint8 -> int8 is a top-bit flip
    assert io["input"]["scale"] == 1.0 and io["input"]["zero_point"] == -128
    assert io["output"]["scale"] == pytest.approx(1 / 256) and io["output"]["zero_point"] == -128
    clf = TFLiteClassifier(converted.paths["int8"])
    assert clf.quantized and clf._xor_fast_path
    assert clf.input_scale == io["input"]["scale"] and clf.output_zero_point == io["output"]["zero_point"]

    f32 = io_details(converted.paths["float32"])
    assert f32["input"]["dtype"] == "float32" and f32["output"]["dtype"] == "float32"

    ops = graph_ops(converted.paths["int8"])
    assert ops and not [o for o in ops if o["float"]], "int8 graph should be integer end to end"
    names = {o["op"] for o in ops}
    assert not names & {"QUANTIZE", "DEQUANTIZE", "SQUARE"}
    # inference mode: the RandomFlip layer leaves nothing behind
    for path in (converted.paths["int8"], converted.paths["float32"]):
        assert not [o["op"] for o in graph_ops(path) if "RANDOM" in o["op"] or o["op"] in ("CUSTOM", "FLEX")]


@pytest.mark.slow
def test_report_fields(converted):
    from device.paths import portable_record
    r = read_json(converted.paths["report_json"])  # written with its paths portable (device/paths.py)
    assert r == json.loads(json.dumps(portable_record(converted.report), default=lambda o: o.tolist()))
    for key in ("date", "machine", "versions", "run", "evaluation", "calibration", "models", "notes", "files"):
        assert key in r, key
    assert r["machine"]["cpu_count"] == os.cpu_count()
    assert r["evaluation"]["split"] == "random80-test" and r["evaluation"]["n"] > 0
    assert r["calibration"]["n"] == CALIB and r["calibration"]["median_neighbour_correlation"] > 0.5
    assert set(r["models"]) == {"keras", "float32", "int8"}
    for name, m in r["models"].items():
        assert 0 <= m["accuracy"] <= 1 and 0 <= m["macro_f1"] <= 1 and m["n"] == r["evaluation"]["n"]
        assert m["size_bytes"] > 0 and m["confusion_png"] == f"confusion_{name}.png"
        assert np.asarray(m["confusion"]).sum() == m["n"]
    i8 = r["models"]["int8"]
    drop = i8["drop_vs_float32"]
    assert drop["accuracy_pp"] == pytest.approx(100 * (r["models"]["float32"]["accuracy"] - i8["accuracy"]), abs=1e-3)
    assert set(drop["per_class_recall_pp"]) == set(r["models"]["keras"]["per_class"])
    assert 0 <= i8["vs_float32"]["top1_agreement"] <= 1 and i8["vs_float32"]["mean_abs_prob_delta"] >= 0
    assert i8["checks"] == {"input_int8": True, "output_int8": True,
                            "input_scale_1_zero_point_minus_128": True, "builtin_ops_only": True}
    assert i8["graph"]["float_ops"] == [] and i8["graph"]["int8_end_to_end"]
    for name in ("float32", "int8"):
        lat = r["models"][name]["latency"]
        assert {x["threads"] for x in lat} == {1, os.cpu_count()}
        assert all(x["median_ms"] > 0 and x["fps"] > 0 for x in lat)
    md = converted.paths["report_md"].read_text()
    for text in ("## Accuracy", "int8 against float32", "top-1 agreement", "## Latency", "Ops that run in float",
                 "scale 1 zero-point -128"):
        assert text in md, text

    ev = _eval_faces(converted)
    assert set(ev) == {"faces", "labels", "split", "label_names"}
    assert ev["faces"].dtype == np.uint8 and ev["faces"].shape[1:] == (48, 48)
    assert ev["labels"].dtype == np.int64 and len(ev["labels"]) == len(ev["faces"]) == 50
    assert str(ev["split"]) == "random80-test" and list(ev["label_names"]) == r["models"]["keras"]["labels"]


@pytest.mark.slow
def test_default_out_is_run_folder_float32_only(run_copy, capsys):
    from convert.pipeline import run
    res = run(run_copy, eval_limit=20, latency_runs=2, eval_faces=0, progress=False)
    assert "TensorSpec" not in capsys.readouterr().out  # Keras's export chatter stays out of the user's terminal
    assert res.out_dir == run_copy and (run_copy / "model_float32.tflite").is_file()
    assert not (run_copy / "model_int8.tflite").exists() and not (run_copy / "eval_faces.npz").exists()
    assert set(res.report["models"]) == {"keras", "float32"} and res.report["evaluation"]["n"] == 20
    assert res.report["calibration"] is None and (run_copy / "report.json").is_file()



@pytest.mark.slow
def test_flip_tta_averages_face_and_mirror_in_its_own_folder(run_copy):
    """--flip-tta: the file holds mean(model(face), model(mirror)); it never lands beside model.keras."""
    import keras
    from convert.pipeline import run
    from convert.temperature import averaged_probs, view_logits
    from device.errors import UsageError
    from device.interpreter import TFLiteClassifier
    from device.metadata import read_metadata
    with pytest.raises(UsageError, match="own folder"):
        run(run_copy, flip_tta=True, out=run_copy, progress=False)
    res = run(run_copy, flip_tta=True, int8=True, calib=CALIB, eval_limit=40, latency_runs=2,
                      eval_faces=0, progress=False)
    assert res.out_dir == run_copy / "flip-tta" and res.report["run"]["flip_tta"] is True
    assert read_metadata(res.out_dir)["test_time_augmentation"] == "flip"
    assert not (run_copy / "model_float32.tflite").exists()  # the run folder is untouched
    assert res.report["models"]["int8"]["graph"]["int8_end_to_end"]
    plain = keras.saving.load_model(run_copy / "model.keras", compile=False)
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    logits = view_logits([plain], faces[..., 0].astype(np.uint8), flip=True)  # the face, then its mirror
    want = averaged_probs(logits, read_metadata(res.out_dir)["temperature"])  # each view calibrated, averaged
    clf = TFLiteClassifier(res.paths["float32"])
    got = clf.predict(faces[..., 0].astype(np.uint8))
    np.testing.assert_allclose(got, want, atol=1e-4)


@pytest.mark.slow
def test_member_runs_average_into_one_file(run_copy, tmp_path, sample_csv, new_run):
    """--member: the file holds the mean of every member's probabilities (and mirrors with --flip-tta)."""
    import keras
    from convert.pipeline import ConvertError, run
    from convert.temperature import averaged_probs, view_logits
    from device.errors import UsageError
    from device.interpreter import TFLiteClassifier
    from device.metadata import read_metadata
    other = new_run(tmp_path / "other", sample_csv, epochs=3, init_seed=7)
    res = run(run_copy, members=(other,), flip_tta=True, int8=True, calib=CALIB, eval_limit=40, latency_runs=2,
              eval_faces=0, progress=False)
    assert res.out_dir == run_copy / "ensemble-flip-tta" and res.report["run"]["members"] == [str(other)]
    meta = read_metadata(res.out_dir)
    assert meta["ensemble"] == [str(run_copy), str(other)] and meta["test_time_augmentation"] == "flip"
    assert res.report["models"]["int8"]["graph"]["int8_end_to_end"]
    assert "ensemble: the mean of" in res.paths["report_md"].read_text()
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48, 1)).astype(np.float32)
    logits = view_logits([keras.saving.load_model(d / "model.keras", compile=False) for d in (run_copy, other)],
                         faces[..., 0].astype(np.uint8), flip=True)
    want = averaged_probs(logits, meta["temperature"])  # one temperature fitted for the average, in every member
    np.testing.assert_allclose(TFLiteClassifier(res.paths["float32"]).predict(faces[..., 0].astype(np.uint8)),
                               want, atol=1e-4)
    # refused before any work: the run itself, the run folder as output, a member on another split
    with pytest.raises(UsageError, match="the run itself"):
        run(run_copy, members=(run_copy,), progress=False)
    with pytest.raises(UsageError, match="own folder"):
        run(run_copy, members=(other,), out=run_copy, progress=False)
    leak = new_run(tmp_path / "leak", sample_csv, epochs=1, seed=3)
    with pytest.raises(ConvertError, match="seed differ"):
        run(run_copy, members=(leak,), progress=False)


# --- calibration ----------------------------------------------------------------------------------

def test_calibration_is_seeded_real_training_faces(sample_csv):
    from convert.calibration import calibration_faces
    from train.data import load_fer2013, make_split
    ds = load_fer2013(sample_csv)
    split = make_split(ds, "random80", 0, 0.1)
    faces, idx, stats = calibration_faces(ds.faces, split.train, 50, seed=3)
    assert faces.shape == (50, 48, 48) and faces.dtype == np.uint8
    assert set(idx) <= set(split.train) and len(set(idx)) == 50
    assert np.array_equal(faces, ds.faces[idx])
    again, idx2, _ = calibration_faces(ds.faces, split.train, 50, seed=3)
    assert np.array_equal(idx, idx2)
    assert not np.array_equal(idx, np.sort(idx)) or True  # shuffled order is allowed either way
    assert stats["n"] == 50 and stats["median_neighbour_correlation"] > 0.8


def test_refuses_random_constant_and_small_calibration(sample_csv):
    from convert.calibration import CalibrationError, calibration_faces, check_calibration
    from train.data import load_fer2013
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 48, 48), dtype=np.uint8)
    with pytest.raises(CalibrationError, match="noise"):
        check_calibration(noise, 300)
    gauss = np.clip(rng.normal(128, 40, (300, 48, 48)), 0, 255).astype(np.uint8)
    with pytest.raises(CalibrationError, match="noise"):
        check_calibration(gauss, 300)
    with pytest.raises(CalibrationError, match="constant"):
        check_calibration(np.full((300, 48, 48), 7, np.uint8), 300)
    real = load_fer2013(sample_csv).faces
    check_calibration(real[:300], 300)
    with pytest.raises(CalibrationError, match="fewer than"):
        check_calibration(real[:100], 300)
    with pytest.raises(CalibrationError, match="fewer than"):
        calibration_faces(real, np.arange(100), 300)
    with pytest.raises(CalibrationError, match="uint8"):
        check_calibration(real[:300].astype(np.float32), 300)


@pytest.mark.slow
def test_missing_or_wrong_data_is_refused(run_copy, tmp_path, sample_csv):
    from convert.calibration import CalibrationError
    from convert.pipeline import run
    cfg = read_json(run_copy / "config.json")
    cfg["data"] = str(tmp_path / "moved.csv")
    (run_copy / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CalibrationError, match="--data"):
        run(run_copy, int8=True, calib=CALIB, progress=False)
    other = tmp_path / "other.csv"
    other.write_bytes(b"".join(sample_csv.read_bytes().splitlines(keepends=True)[:-1]))  # one row less
    with pytest.raises(CalibrationError, match="sha256"):
        run(run_copy, int8=True, calib=CALIB, data=other, progress=False)
    assert not list(run_copy.glob("*.tflite"))


# --- failures ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_failed_conversion_leaves_no_finished_file(tiny_run, tmp_path, monkeypatch):
    from convert import export, quiet_tensorflow
    from convert.pipeline import load_keras_model
    quiet_tensorflow()
    model = load_keras_model(tiny_run / "model.keras", 7)

    def boom():
        raise RuntimeError("converter says no: op FOO is neither a custom op nor a flex op")
    refusing = types.SimpleNamespace(convert=boom, target_spec=types.SimpleNamespace())
    monkeypatch.setattr(export, "_converter", lambda model: refusing)
    faces = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (10, 48, 1))
    with pytest.raises(export.ConversionError, match="int8 conversion failed: converter says no"):
        export.export_int8(model, tmp_path, faces)
    assert list(tmp_path.iterdir()) == []


def _main(argv, capsys):
    from convert.cli import main
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("extra, code, needle", [
    (["--max-drop", "1"], 2, "needs --int8"),
    (["--calib", "10"], 2, "needs --int8"),
    (["--int8", "--frobnicate"], 2, "No such option"),
    (["--int8", "--calib", "0"], 2, "--calib"),
    (["--int8", "--calib", "100000"], 3, "fewer than"),
    (["--member", "no/such/run"], 3, "run folder not found: no/such/run"),
])
@pytest.mark.slow
def test_bad_flags_one_line(tiny_run, capsys, extra, code, needle):
    rc, err = _main([str(tiny_run), "-q", *extra], capsys)
    assert rc != 0 and len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    assert rc == code and needle in err[0], err


@pytest.mark.slow
def test_bad_run_folders_one_line(tmp_path, run_copy, capsys):
    rc, err = _main([str(tmp_path / "nope"), "--int8"], capsys)
    assert rc == 3 and err == [f"error: run folder not found: {tmp_path / 'nope'}"]

    no_meta = tmp_path / "no_meta"
    no_meta.mkdir()
    (no_meta / "model.keras").write_bytes((run_copy / "model.keras").read_bytes())
    rc, err = _main([str(no_meta), "--int8"], capsys)
    assert rc == 3 and len(err) == 1 and err[0].startswith("error: no metadata.json")

    (run_copy / "model.keras").write_text("this is not a keras file")
    rc, err = _main([str(run_copy), "--int8", "-q"], capsys)
    assert rc == 3 and len(err) == 1 and "not a Keras model" in err[0], err

    import zipfile
    with zipfile.ZipFile(run_copy / "model.keras", "w") as z:  # a zip, but not a Keras archive
        z.writestr("hello.txt", "hi")
    rc, err = _main([str(run_copy), "--int8", "-q"], capsys)
    assert rc == 3 and len(err) == 1 and "not a loadable Keras model" in err[0], err


def test_gate_exit_code(monkeypatch, capsys, tmp_path):
    from convert import cli, pipeline
    report = {"gate": {"max_drop_pp": 1.0, "drop_pp": 2.5, "against": "float32", "passed": False}, "models": {}}
    fake = pipeline.ConvertResult(out_dir=tmp_path, paths={"report_md": tmp_path / "report.md"}, report=report,
                                  gate_passed=False)
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: fake)
    monkeypatch.setattr(cli.rep, "summary", lambda r, md: "")
    rc, err = _main([str(tmp_path), "--int8", "--max-drop", "1", "-q"], capsys)
    assert rc == 5 and err == [f"error: int8 accuracy drop +2.50 pp exceeds --max-drop 1.0 pp "
                               f"(report: {tmp_path / 'report.md'})"]


@pytest.mark.slow
def test_cli_records_what_ran(run_copy, capsys):
    """report.json holds the command as typed (the one docs/RESULTS.md shows) and the options it resolved to."""
    argv = [str(run_copy), "--eval-limit", "20", "--latency-runs", "2", "--eval-faces", "0", "-q"]
    rc, err = _main(argv, capsys)
    assert rc == 0, err
    prov = read_json(run_copy / "report.json")["provenance"]
    assert prov["command"] == "python -m convert " + shlex.join(argv) and prov["argv"] == argv
    from convert.calibration import DEFAULT_CALIB
    assert prov["options"]["calib"] == DEFAULT_CALIB and prov["options"]["eval_limit"] == 20  # resolved, not None
    assert {"versions", "machine", "date", "cwd"} <= set(prov)


def test_cli_subprocess_no_traceback(tmp_path):
    """The real entry point: ``python -m convert`` prints one error line, no traceback."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    p = subprocess.run([sys.executable, "-m", "convert", str(tmp_path / "missing"), "--int8"],
                       cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 3 and p.stderr.strip().splitlines() == [f"error: run folder not found: {tmp_path / 'missing'}"]
    p = subprocess.run([sys.executable, "-m", "convert", "--help"], cwd=ROOT, capture_output=True, text=True,
                       env=env, timeout=120)
    assert p.returncode == 0 and "--int8" in p.stdout and "--max-drop" in p.stdout


@pytest.mark.slow
def test_export_int8_without_random_layers(tmp_path, sample_csv):
    """Regression: a model with no augmentation layers (train --no-augment) once failed int8
    calibration with READ_VARIABLE left in the graph (concrete-function conversion, TF 2.21)."""
    from convert.export import export_int8, float_ops
    from train.data import load_fer2013
    from train.models import build_model

    faces = load_fer2013(sample_csv).faces[:60]
    path = export_int8(build_model("vanilla_cnn", augment=False), tmp_path, faces)
    assert path.name == "model_int8.tflite" and path.stat().st_size > 0
    assert float_ops(path) == []
