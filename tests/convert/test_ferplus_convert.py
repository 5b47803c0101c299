"""An 8-class FER+ model end to end: `python -m train --labels ferplus` (a tiny run on sample.csv with
FER+'s real votes), `python -m convert --int8`, then the device: `device/run.py` on a still photo in
driver and kiosk modes, `run.py bench` on the converted eval faces, the overlay, and the cross-check
script. Every stage reads the labels from the run's metadata: nothing assumes FER2013's seven."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}


def _run(*args, timeout=600):
    r = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                       cwd=ROOT, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def ferplus_run(sample_ferplus, tmp_path_factory) -> Path:
    """A FER+ run folder (soft scheme, 1 epoch), converted to float32 and int8 in place."""
    out = tmp_path_factory.mktemp("ferplus") / "run"
    _run("-m", "train", "--data", sample_ferplus / "sample.csv", "--out", out, "--labels", "ferplus",
         "--label-scheme", "soft", "--split", "random80", "--epochs", "1", "--limit", "200")
    _run("-m", "convert", out, "--int8", "--calib", "50", "--latency-runs", "3", "--eval-faces", "60", "-q")
    return out


@pytest.mark.slow
def test_convert_reports_eight_labels(ferplus_run):
    from train.ferplus import LABELS
    report = json.loads((ferplus_run / "report.json").read_text())
    assert report["run"]["config"]["labels"] == "ferplus" and report["run"]["config"]["label_scheme"] == "soft"
    for name in ("keras", "float32", "int8"):
        assert list(report["models"][name]["per_class"]) == list(LABELS), name
    assert "Contempt" in report["models"]["int8"]["drop_vs_float32"]["per_class_recall_pp"]
    assert any("FER+" in n for n in report["notes"])
    # the evaluation faces are the run's own, scored on FER+ majority labels (the count training reported)
    assert report["evaluation"]["n"] == json.loads((ferplus_run / "metrics.json").read_text())["n"]
    with np.load(ferplus_run / "eval_faces.npz") as z:
        assert list(z["label_names"]) == list(LABELS) and z["labels"].max() < len(LABELS)
    assert json.loads((ferplus_run / "metadata.json").read_text())["labels"] == list(LABELS)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["driver", "kiosk"])
def test_device_runs_the_int8_model_on_a_photo(ferplus_run, faces_dir, tmp_path, mode):
    from train.ferplus import LABELS
    log = tmp_path / "run.jsonl"
    _run("device/run.py", "--source", faces_dir / "fer_justin.jpg", "--model", ferplus_run / "model_int8.tflite",
         "--mode", mode, "--log", log)
    recs = _records(log)
    assert recs[0]["type"] == "start" and recs[0]["labels"] == list(LABELS)
    faces = [f for r in recs if r["type"] == "frame" for f in r["faces"]]
    assert faces and all(list(f["probs"]) == list(LABELS) and f["label"] in LABELS for f in faces)
    assert abs(sum(faces[0]["probs"].values()) - 1) < 0.05
    if mode == "kiosk":
        agg = [r for r in recs if r.get("event") == "aggregate"]
        assert agg and list(agg[-1]["distribution"]) == list(LABELS)
    else:
        assert recs[0]["alert_labels"] == ["Angry", "Fear", "Sad"]  # FER2013's alert labels exist in FER+'s set
    assert recs[-1]["type"] == "summary"


@pytest.mark.slow
def test_bench_scores_eight_labels(ferplus_run, tmp_path):
    out = tmp_path / "bench.json"
    _run("device/run.py", "bench", "--float", ferplus_run / "model_float32.tflite", "--int8",
         ferplus_run / "model_int8.tflite", "--faces", ferplus_run / "eval_faces.npz", "--runs", "5", "--warmup", "1",
         "--json", out)
    bench = json.loads(out.read_text())
    assert "Contempt" in bench["models"]["int8"]["per_class"] and len(bench["models"]["int8"]["confusion"]) == 8


@pytest.mark.slow
def test_crosscheck_scores_a_ferplus_model_against_fer2013_labels(ferplus_run, sample_ferplus, tmp_path):
    out = tmp_path / "check.json"
    _run("-m", "convert", "crosscheck", "--model", ferplus_run / "model_int8.tflite", "--data",
         sample_ferplus / "sample.csv", "--usage", "Training", "--json", out)
    check = json.loads(out.read_text())
    s = check["scores"]
    assert s["fer2013_7"]["n"] == check["faces"]["scored"] == 420  # no face in the sample is NF
    assert list(s["fer2013_7"]["per_class"]) == list(check["model_labels"][:7])  # Contempt left out of the argmax
    assert "Contempt" in s["ferplus_8"]["per_class"]
    assert s["ferplus_7"]["n"] + check["faces"]["ferplus_majority_contempt"] + \
        check["faces"]["no_ferplus_majority"] == 420


def test_overlay_has_a_colour_for_every_ferplus_label():
    from device.overlay import COLOURS, DEFAULT_COLOUR, annotate
    from train.ferplus import LABELS
    assert set(LABELS) <= set(COLOURS) and len({COLOURS[k] for k in LABELS}) == len(LABELS)
    img = annotate(np.zeros((120, 160), np.uint8), (120, 160),
                   [{"box": [20, 20, 60, 60], "label": "Contempt", "track": 1, "score": 0.7}])
    assert tuple(int(v) for v in img[50, 20]) == COLOURS["Contempt"] != DEFAULT_COLOUR  # the box's left edge


def test_driver_mode_works_with_the_ferplus_labels():
    from device.modes import DriverMonitor
    from train.ferplus import LABELS
    probs = np.full(len(LABELS), 0.02, np.float32)
    probs[LABELS.index("Sad")] = 0.86
    mon = DriverMonitor(LABELS, alert_after=0.5)
    events = [e for t in (0.0, 0.4, 0.8) for e in mon.update(t, [{"track": 1, "box": [0, 0, 50, 50], "probs": probs}])]
    assert [(e["event"], e["phase"], e["label"]) for e in events] == [("alert", "start", "Sad")]
