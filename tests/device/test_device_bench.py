"""run.py bench on a small labelled set of real FER2013 faces, and on the real clip."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from device.contract import LABELS
from device.detect import DEFAULT_DETECTOR, DETECTORS
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


def runtime_faces(run_cli, model, clip, frames, log, *detector) -> int:
    """Faces the runtime itself (``run.py --source CLIP``) finds in the clip's first ``frames`` frames."""
    res = run_cli("--source", clip, "--model", model, "--max-frames", frames, "--log", log, *detector)
    assert res.exit_code == 0, res.stderr
    summary = json.loads(log.read_text().splitlines()[-1])
    assert summary["type"] == "summary" and summary["frames"] == frames
    return summary["faces"]


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
    assert r["detector"] == prov["options"]["detector"] == DEFAULT_DETECTOR  # the runtime's, untold
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
               and line.endswith(" ms per call") and f"; {DEFAULT_DETECTOR} detection " in line
               for line in table.splitlines()) == 2
    assert f"loop: {faces_dir / 'fer_test.mp4'}, detector {DEFAULT_DETECTOR}" in table.splitlines()
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


def test_bench_loop_is_the_runtimes_loop(model_int8, faces_dir, tmp_path, run_cli):
    """bench's loop detects faces as run.py does, with its default and with --detector: the same faces on the
    same frames of the real clip. The whole of fer_test.mp4 tells the detectors apart on x86 and on aarch64
    (its first 30 frames do not under emulation, where the clip decodes a little differently: docs/AARCH64.md),
    so a bench on the wrong detector would not match."""
    clip, frames, found = faces_dir / "fer_test.mp4", 115, {}  # all its frames
    for detector in ((), ("--detector", "haar")):
        out = tmp_path / f"bench{len(found)}.json"
        res = run_cli("bench", "--int8", model_int8, "--video", clip, "--max-frames", frames, "--runs", 2,
                      "--warmup", 0, "--json", out, *detector)
        assert res.exit_code == 0, res.stderr
        r = json.loads(out.read_text())
        name = detector[1] if detector else DEFAULT_DETECTOR
        assert r["detector"] == r["provenance"]["options"]["detector"] == name
        assert f", detector {name}" in res.stdout and f"; {name} detection " in res.stdout
        loop = r["models"]["int8"]["loop"]["1"]
        assert loop["frames"] == frames
        found[name] = loop["faces"]
        assert found[name] == runtime_faces(run_cli, model_int8, clip, frames, tmp_path / f"{name}.jsonl", *detector)
    assert found[DEFAULT_DETECTOR] != found["haar"], found


def test_bench_detector_option_is_run_pys(model_int8, faces_dir, run_cli):
    """One --detector: the same choices and help text as the loop's, the loop's default for a clip; a wrong
    name is one error line and exit 2, like every other bad flag of run.py."""
    from device.run import bench, cli
    ours, loops = ({p.name: p for p in cmd.params}["detector"] for cmd in (bench, cli))
    assert tuple(ours.type.choices) == tuple(loops.type.choices) == DETECTORS and ours.help == loops.help
    assert ours.default == DEFAULT_DETECTOR
    res = run_cli("bench", "--int8", model_int8, "--video", faces_dir / "fer_test.mp4", "--detector", "dlib")
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.startswith("error: Invalid value for '--detector': 'dlib' is not one of 'haar', 'blazeface'")
    assert len(res.stderr.strip().splitlines()) == 1


def test_bench_without_the_blazeface_model_stops_before_timing(model_int8, faces_dir, tmp_path, run_cli, monkeypatch):
    """The default detector's model missing: one error line naming fetch-models, exit 3, nothing timed or written."""
    import device.detect
    monkeypatch.setattr(device.detect, "BLAZEFACE_DIR", tmp_path / "empty")
    out = tmp_path / "bench.json"
    res = run_cli("bench", "--int8", model_int8, "--video", faces_dir / "fer_test.mp4", "--json", out)
    assert res.exit_code == 3 and res.stdout == "" and not out.exists()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: blazeface model not found: ") and "fetch-models" in lines[0]
