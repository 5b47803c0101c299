"""train --teacher (train/distill.py): finished runs distilled into a student of one network."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")

from device.contract import LABELS, as_batch  # noqa: E402
from device.errors import InputError  # noqa: E402
from device.interpreter import TFLiteClassifier  # noqa: E402
from device.metadata import make_metadata, write_metadata  # noqa: E402
from train import distill  # noqa: E402
from train.config import ConfigError, resolve  # noqa: E402
from train.models import build_model  # noqa: E402
from train.warm_start import WarmStartError  # noqa: E402
from train_cli import run_train  # noqa: E402  (tests/train/train_cli.py)

ROOT = Path(__file__).resolve().parents[2]


def test_targets_mix_the_tempered_teacher_with_the_label():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    labels = np.array([1, 2])
    y = distill.distill_targets(probs, labels, 0.7, 1.0)
    np.testing.assert_allclose(y.sum(1), 1, atol=1e-6)
    np.testing.assert_allclose(y[0], 0.7 * probs[0] + 0.3 * np.eye(3)[1], atol=1e-6)
    np.testing.assert_allclose(distill.distill_targets(probs, labels, 0.0, 1.0), np.eye(3)[labels])
    hot = distill.distill_targets(probs, labels, 1.0, 100.0)  # a high temperature flattens the teacher
    assert hot.max() - hot.min() < 0.01
    sharp = distill.distill_targets(probs, labels, 1.0, 0.1)  # a low one sharpens it to its top class
    np.testing.assert_allclose(sharp.argmax(1), probs.argmax(1))
    assert sharp.max(1).min() > 0.99


def test_teacher_probs_average_face_and_mirror_and_are_cached(tmp_path, monkeypatch):
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    model = build_model("vanilla_cnn", augment=False, seed=3, num_classes=7)
    model.save(teacher / "model.keras")
    faces = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    out = tmp_path / "student"
    out.mkdir()
    probs = distill.teacher_probs([teacher / "model.keras"], faces, out, batch_size=4)
    want = (model.predict(as_batch(faces), verbose=0) + model.predict(as_batch(faces[:, :, ::-1]), verbose=0)) / 2
    np.testing.assert_allclose(probs, want, atol=1e-5)
    assert (out / distill.CACHE).is_file()

    def no_load(*a, **k):
        raise AssertionError("the cached probabilities should have been used")
    monkeypatch.setattr(keras.models, "load_model", no_load)
    np.testing.assert_array_equal(distill.teacher_probs([teacher / "model.keras"], faces, out), probs)


def converted_teacher(folder: Path, model, **data) -> Path:
    """``model`` as convert writes it: model_float32.tflite and a metadata.json that names its data and split."""
    from convert.export import export_float32
    folder.mkdir()
    write_metadata(folder, make_metadata("vanilla_cnn", data=data) if data else make_metadata("vanilla_cnn"))
    return export_float32(model, folder)


def test_a_converted_model_teaches_as_the_pi_runs_it(tmp_path):
    """The shipped default is committed while run folders are not: a .tflite folder or file is a teacher,
    run by LiteRT on each face and its mirror, once its metadata says it held out this run's faces."""
    model = build_model("vanilla_cnn", augment=False, seed=3, num_classes=7)
    held_out = dict(sha256="abc", split="official", seed=0, val_fraction=0.1)
    tflite = converted_teacher(tmp_path / "teacher", model, **held_out)
    cfg = resolve("default", data="d.csv", out=str(tmp_path / "student"), teachers=[str(tflite.parent), str(tflite)])
    assert distill.check_teachers(cfg, "abc", LABELS) == [tflite, tflite]

    faces = np.random.default_rng(0).integers(0, 256, (10, 48, 48), dtype=np.uint8)
    out = tmp_path / "student"
    out.mkdir()
    probs = distill.teacher_probs([tflite], faces, out, batch_size=4)
    clf = TFLiteClassifier(tflite)
    np.testing.assert_allclose(probs, (clf.predict(faces) + clf.predict(faces[:, :, ::-1].copy())) / 2, atol=1e-6)
    keras_probs = (model.predict(as_batch(faces), verbose=0) + model.predict(as_batch(faces[:, :, ::-1]), verbose=0)) / 2
    np.testing.assert_allclose(probs, keras_probs, atol=1e-4)

    with pytest.raises(WarmStartError, match=r"held out other faces \(seed was 0, its data file differs"):
        distill.check_teachers(resolve("default", data="d.csv", out="o", seed=5, teachers=[str(tflite)]), "xyz", LABELS)
    with pytest.raises(WarmStartError, match="does not say which faces it held out"):
        distill.check_teachers(resolve("default", data="d.csv", out="o", teachers=[
            str(converted_teacher(tmp_path / "anonymous", model))]), "abc", LABELS)
    with pytest.raises(ConfigError, match="it predicts"):
        distill.check_teachers(cfg, "abc", [*LABELS, "Contempt"])
    with pytest.raises(InputError, match="no such file"):
        distill.check_teachers(resolve("default", data="d.csv", out="o", teachers=[str(tmp_path / "x.tflite")]),
                               "abc", LABELS)


@pytest.mark.slow
def test_cli_distils_a_run_and_refuses_a_teacher_that_held_out_other_faces(sample_csv, tmp_path):
    common = ("--data", sample_csv, "--split", "random80", "--epochs", "1", "--limit", "120", "--model", "vanilla_cnn")
    teacher = tmp_path / "teacher"
    r = run_train(*common, "--out", teacher)
    assert r.returncode == 0, r.stderr[-2000:]
    student = tmp_path / "student"
    r = run_train(*common, "--out", student, "--teacher", teacher, "--distill-weight", "0.5", "--init-seed", "1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "distilling 1 teacher(s)" in r.stdout
    cfg = json.loads((student / "config.json").read_text())
    assert cfg["teachers"] == [str(teacher)] and cfg["distill_weight"] == 0.5
    assert (student / distill.CACHE).is_file() and (student / "model.keras").is_file()

    # the same teacher, converted (model_float32.tflite beside the run's metadata.json, as convert writes it)
    from convert.export import export_float32
    converted = tmp_path / "converted"
    converted.mkdir()
    shutil.copy(teacher / "metadata.json", converted)
    export_float32(keras.models.load_model(teacher / "model.keras", compile=False), converted)
    r = run_train(*common, "--out", tmp_path / "from-tflite", "--teacher", converted, "--init-seed", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"teacher {converted / 'model_float32.tflite'}:" in r.stdout and "distilling 1 teacher(s)" in r.stdout
    files = json.loads((tmp_path / "from-tflite" / "config.json").read_text())["teacher_files"]
    assert files == [{"path": str(converted / "model_float32.tflite"),
                      "sha256": hashlib.sha256((converted / "model_float32.tflite").read_bytes()).hexdigest()}]

    other = tmp_path / "other-seed"
    r = run_train(*common, "--out", other, "--seed", "5", "--teacher", teacher)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "--teacher" in lines[0] and "held out other faces (seed was 0)" in lines[0]
    assert not (other / "config.json").exists()
    r = run_train(*common, "--out", tmp_path / "soft", "--teacher", teacher, "--labels", "ferplus",
             "--ferplus", sample_csv, "--label-scheme", "soft")
    assert r.returncode == 2 and "--teacher needs one label per face" in r.stderr


def test_resume_refuses_a_teacher_file_that_changed(tmp_path):
    """device/models/default is replaced when a better default ships: a run resumed after that would
    change its targets mid-run, so --resume refuses it in one line."""
    teacher = tmp_path / "model_int8.tflite"
    teacher.write_bytes(b"the default the run started with")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(distill.fingerprints([teacher])))
    distill.check_unchanged(run / "config.json", distill.fingerprints([teacher]))  # the same file: fine
    teacher.write_bytes(b"a newer default")
    with pytest.raises(ConfigError, match=r"cannot resume .*changed since the run started .*give the file it started"):
        distill.check_unchanged(run / "config.json", distill.fingerprints([teacher]))
    (run / "config.json").write_text(json.dumps({"model": "vgg_cnn"}))  # older runs lack teacher_files
    distill.check_unchanged(run / "config.json", distill.fingerprints([teacher]))
