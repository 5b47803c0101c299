"""convert/select.py (python -m convert select): candidates scored on the validation faces only, with the members' rule of convert."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convert import select as val_select
from convert.cli import main as convert_main

ROOT = Path(__file__).resolve().parents[2]


def select_cli(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convert", "select", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=timeout)


def test_candidates_are_every_subset_plain_and_mirrored():
    rows = val_select.candidates(3)
    assert [name for name, _, _ in rows[6:]] == ["runs 1+2", "runs 1+2 + flip", "runs 1+3", "runs 1+3 + flip",
                                                 "runs 2+3", "runs 2+3 + flip", "ensemble of 3",
                                                 "ensemble of 3 + flip"]
    assert len(val_select.candidates(4)) == 2 * (2 ** 4 - 1)
    assert len({members + (flip,) for _, members, flip in val_select.candidates(4)}) == 30  # no repeats


def test_paired_counts_the_faces_only_one_model_gets_right():
    import numpy as np
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1], bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], bool)
    assert val_select.paired(a, b) == {"only_this_right": 3, "only_other_right": 1, "z": 1.0}
    assert val_select.paired(a, a) == {"only_this_right": 0, "only_other_right": 0, "z": 0.0}


@pytest.mark.slow
def test_every_candidate_on_the_validation_faces(tiny_run, tmp_path, sample_csv, new_run):
    from convert import calibration as cal
    from convert.pipeline import read_config
    from device.metadata import read_metadata
    other = new_run(tmp_path / "other", sample_csv, epochs=3, init_seed=7)
    rows, refs = val_select.select([str(tiny_run), str(other)])
    assert refs == [] and [r["candidate"] for r in rows] == ["run 1", "run 1 + flip", "run 2", "run 2 + flip",
                                              "ensemble of 2", "ensemble of 2 + flip"]
    assert [r["passes_per_face"] for r in rows] == [1, 2, 1, 2, 2, 4]
    rd = cal.load_run_data(tiny_run, read_config(tiny_run), read_metadata(tiny_run))
    assert {r["n"] for r in rows} == {len(rd.val)} and len(rd.val) != len(rd.test)  # validation, not test
    assert all(0 <= r["val_accuracy"] <= 1 for r in rows)
    # a candidate's probabilities are its converted file's: the mean of every member on the face (and mirror)
    import numpy as np

    from convert.pipeline import load_keras_model
    from convert.report import keras_predict
    from train.models import averaged
    faces = cal.preprocess(rd.faces[rd.val])
    models = [load_keras_model(d / "model.keras", 7) for d in (tiny_run, other)]
    probs = {}
    for i, m in enumerate(models):
        probs[i, False], probs[i, True] = val_select.view_probs(keras_predict(m), faces)
    for members, flip in (((0,), True), ((0, 1), False), ((0, 1), True)):
        got, passes = val_select.mean_probs(probs, members, flip)
        want = keras_predict(averaged([models[i] for i in members], flip))(faces)
        np.testing.assert_allclose(got, want, atol=1e-5)
        assert passes == len(members) * (1 + flip)


@pytest.mark.slow
def test_a_converted_reference_is_scored_on_the_same_faces(tiny_run, converted):
    """--reference: the shipped model weighed on the candidates' validation faces by LiteRT, never chosen."""
    from device.interpreter import TFLiteClassifier
    from device.metrics import evaluate
    rows, refs = val_select.select([str(tiny_run)], references=[converted.out_dir])
    tflite = converted.out_dir / "model_float32.tflite"  # a folder's float32 model first, as --teacher takes it
    assert [r["model"] for r in refs] == [str(tflite)] and refs[0]["n"] == rows[0]["n"]
    from convert import calibration as cal
    from convert.pipeline import read_config
    from device.metadata import read_metadata
    rd = cal.load_run_data(tiny_run, read_config(tiny_run), read_metadata(tiny_run))
    want = evaluate(TFLiteClassifier(tflite).predict, cal.preprocess(rd.faces[rd.val]), rd.labels[rd.val],
                    class_names=read_metadata(tiny_run)["labels"])
    assert refs[0]["val_accuracy"] == want["accuracy"]
    # the float32 Keras model and its float32 .tflite twin agree on these faces
    assert abs(refs[0]["val_accuracy"] - rows[0]["val_accuracy"]) <= 2 / rows[0]["n"]
    assert (refs[0]["correct"] == (want["probs"].argmax(1) == rd.labels[rd.val])).all()


@pytest.mark.slow
def test_references_are_paired_with_the_best_and_the_first_reference(tiny_run, converted, tmp_path, capsys):
    """Each reference gets the faces only the best candidate gets right and only it does; a second
    reference is also weighed against the first (the shipped file against a candidate's int8 file)."""
    out = tmp_path / "sel.json"
    int8, f32 = converted.out_dir / "model_int8.tflite", converted.out_dir / "model_float32.tflite"
    assert convert_main(["select", tiny_run, "--reference", int8, "--reference", f32, "--json", out]) == 0
    doc = json.loads(out.read_text())
    first, second = doc["references"]
    best = next(r for r in doc["rows"] if r["candidate"] == doc["best"])
    assert first["this_vs_first_reference"] is None and "correct" not in first and "correct" not in best
    for ref, other, pair in ((first, best, first["best_vs_this"]), (second, best, second["best_vs_this"]),
                             (first, second, second["this_vs_first_reference"])):
        # accuracy gap = (faces only the one gets right - faces only the other gets right) / faces
        gap = (pair["only_this_right"] - pair["only_other_right"]) / ref["n"]
        assert abs((other["val_accuracy"] - ref["val_accuracy"]) - gap) < 1e-9
    assert "against the first reference: faces only this gets right" in capsys.readouterr().out


@pytest.mark.slow
def test_cli_writes_json_and_refuses_another_split(tiny_run, tmp_path, sample_csv, new_run):
    out = tmp_path / "sel.json"
    p = select_cli(tiny_run, "--max-passes", 1, "--json", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert doc["best"] == "run 1" and doc["max_passes"] == 1 and "<- best on validation" in p.stdout
    p = select_cli(tiny_run, "--max-passes", 0, timeout=60)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(err) == 1 and err[0].startswith("error: ") and "--max-passes" in err[0]
    assert doc["provenance"]["command"].startswith("python -m convert select")
    leak = new_run(tmp_path / "leak", sample_csv, epochs=1, seed=3)
    p = select_cli(tiny_run, leak)
    err = p.stderr.strip().splitlines()
    assert p.returncode == 3 and len(err) == 1 and "seed differ" in err[0], p.stderr
    p = select_cli(tiny_run, "--reference", tmp_path / "none.tflite")
    assert p.returncode == 3 and p.stderr.strip().splitlines() == [f"error: --reference {tmp_path / 'none.tflite'}: no such file"]
