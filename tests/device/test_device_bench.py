"""run.py bench on a small labelled set of real FER2013 faces, and on the real clip."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from device.contract import LABELS
from device.interpreter import TFLiteClassifier
from device.metrics import agreement, evaluate
from device.paths import portable, portable_record, portable_text
from device.reliability import expected_calibration_error


@pytest.fixture(scope="module")
def eval_faces(tmp_path_factory, sample_faces):
    faces, labels = sample_faces
    path = tmp_path_factory.mktemp("bench") / "eval_faces.npz"
    np.savez(path, faces=faces[:120], labels=labels[:120], split=np.array("sample"),
             label_names=np.array(LABELS))
    return path


def test_bench_table_and_json(pair_model, eval_faces, faces_dir, tmp_path, sample_faces, run_cli):
    out = tmp_path / "bench.json"
    argv = ["bench", "--float", str(pair_model / "model_float32.tflite"), "--int8", str(pair_model / "model_int8.tflite"),
            "--faces", str(eval_faces), "--video", str(faces_dir / "fer_test.mp4"), "--max-frames", "30",
            "--threads", "1,2", "--runs", "20", "--warmup", "2", "--json", str(out)]
    res = run_cli(*argv)
    assert res.exit_code == 0, res.stderr
    r = json.loads(out.read_text())
    # what ran, as typed (paths as records hold them: device/paths.py), and the options it resolved to
    prov = r.pop("provenance")
    assert prov["argv"] == portable_record(argv[1:])
    assert prov["command"] == portable_text("python device/run.py bench " + shlex.join(argv[1:]))
    assert prov["options"]["threads"] == [1, 2] and prov["options"]["runs"] == 20
    assert {"versions", "machine", "date", "cwd"} <= set(prov)
    assert r["faces"] == {"path": portable(eval_faces), "n": 120, "split": "sample"}
    # the same scoring as device.metrics, face for face
    faces, labels = sample_faces
    probs = {}
    for name in ("float32", "int8"):
        ev = evaluate(TFLiteClassifier(pair_model / f"model_{name}.tflite", threads=1).predict,
                      faces[:120], labels[:120])
        probs[name] = ev["probs"]
        assert r["models"][name]["accuracy"] == pytest.approx(ev["accuracy"])
        assert r["models"][name]["macro_f1"] == pytest.approx(ev["macro_f1"])
        assert r["models"][name]["ece"] == pytest.approx(expected_calibration_error(ev["probs"], labels[:120]))
        assert set(r["models"][name]["latency"]) == set(r["models"][name]["loop"]) == {"1", "2"}
        for lat in r["models"][name]["latency"].values():
            assert lat["median_ms"] > 0 and lat["fps"] > 0 and lat["runs"] == 20
        for loop in r["models"][name]["loop"].values():
            assert loop["frames"] == 30 and loop["faces"] >= 25 and loop["fps"] > 0
    assert r["accuracy_drop"] == pytest.approx(r["models"]["float32"]["accuracy"] - r["models"]["int8"]["accuracy"])
    assert r["agreement"] == pytest.approx(agreement(probs["int8"], probs["float32"]))
    table = res.stdout
    assert "int8/float32 agreement: top-1" in table and "drop (float32 - int8)" in table
    assert any(line.split()[:5] == ["model", "accuracy", "macro-F1", "ECE", "mean"] for line in table.splitlines())
    # everything an issue needs: the command, the machine and the package versions, then per-stage ms
    head = table.splitlines()[:3]
    assert head[0] == f"ferlite bench, {prov['date']}: {prov['command']}"
    assert head[1].startswith("machine: ") and f"{prov['machine']['cpu_count']} CPUs" in head[1]
    assert f"numpy {prov['versions']['numpy']}" in head[2] and "ai-edge-litert" in head[2]
    assert sum(line.startswith("loop int8 threads=") and "detect " in line and "classify " in line
               for line in table.splitlines()) == 2
    assert sum(line.split()[:2] in (["int8", "1"], ["int8", "2"], ["float32", "1"], ["float32", "2"])
               for line in table.splitlines()) == 4


def test_bench_bad_faces_file(pair_model, tmp_path, run_cli):
    bad = tmp_path / "eval_faces.npz"
    np.savez(bad, faces=np.zeros((3, 32, 32), np.uint8), labels=np.zeros(3, np.int64))
    res = run_cli("bench", "--float", pair_model / "model_float32.tflite", "--int8", pair_model / "model_int8.tflite",
                  "--faces", bad)
    assert res.exit_code == 3
    assert res.stderr.startswith(f"error: {bad}: faces must be uint8 (N, 48, 48)")


def test_bench_the_int8_model_alone_without_faces(pair_model, faces_dir, tmp_path, run_cli):
    """What a Pi with only the shipped default has: its latency and loop speed, no accuracy."""
    out = tmp_path / "bench.json"
    res = run_cli("bench", "--int8", pair_model / "model_int8.tflite", "--video", faces_dir / "fer_test.mp4",
                  "--max-frames", "20", "--runs", "10", "--warmup", "1", "--json", out)
    assert res.exit_code == 0, res.stderr
    r = json.loads(out.read_text())
    assert set(r["models"]) == {"int8"} and "faces" not in r and "accuracy_drop" not in r
    assert r["models"]["int8"]["latency"]["1"]["median_ms"] > 0 and r["models"]["int8"]["loop"]["1"]["frames"] == 20
    assert "no labelled faces" in res.stdout and "float32" not in res.stdout.split("\n", 3)[3]
    res = run_cli("bench", "--video", faces_dir / "fer_test.mp4")
    assert res.exit_code == 2 and "give --int8 and/or --float" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
