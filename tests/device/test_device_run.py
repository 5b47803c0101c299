"""device/run.py end to end on the real photos and clips, and its failure modes."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from device.contract import LABELS
from device.run import DEFAULT_MODEL
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "device" / "run.py"


def read_jsonl(path_or_text) -> list[dict]:
    text = Path(path_or_text).read_text() if isinstance(path_or_text, Path) else path_or_text
    assert text.endswith("\n"), "the log must end with a whole line"
    return [json.loads(line) for line in text.splitlines()]


def check_log(records: list[dict], frames: int) -> dict:
    """A complete log: start first, one frame record per frame, well-formed faces, summary last."""
    assert records[0]["type"] == "start" and records[0]["labels"] == list(LABELS)
    assert records[-1]["type"] == "summary"
    assert sum(r["type"] == "summary" for r in records) == 1
    frame_recs = [r for r in records if r["type"] == "frame"]
    assert [r["frame"] for r in frame_recs] == list(range(frames))
    for r in frame_recs:
        for f in r["faces"]:
            assert set(f) == {"track", "box", "label", "probs"}
            assert len(f["box"]) == 4 and f["box"][2] > 0 and f["box"][3] > 0
            assert list(f["probs"]) == list(LABELS) and f["label"] in LABELS
            assert sum(f["probs"].values()) == pytest.approx(1.0, abs=0.05)
            assert f["label"] == max(f["probs"], key=f["probs"].get)
    s = records[-1]
    assert s["frames"] == frames
    assert s["faces"] == sum(len(r["faces"]) for r in frame_recs)
    assert set(s["latency_ms"]) >= {"capture", "detect", "classify"}
    return s


def test_photos_folder(faces_dir, model_int8, tmp_path, run_cli):
    log = tmp_path / "photos.jsonl"
    res = run_cli("--source", faces_dir, "--model", model_int8, "--log", log)
    assert res.exit_code == 0, res.output
    records = read_jsonl(log)
    s = check_log(records, frames=5)
    assert s["status"] == "end_of_source"
    per_image = {r["image"]: len(r["faces"]) for r in records if r["type"] == "frame"}
    assert per_image == {"facerec_biden.jpg": 1, "facerec_obama.jpg": 1, "facerec_two_people.jpg": 2,
                         "fer_justin.jpg": 1, "skimage_astronaut.png": 1}
    # the summary also goes to stdout when the log is a file
    assert json.loads(res.stdout.strip().splitlines()[-1]) == s
    assert "ferlite: 5 frames, 6 faces" in res.stderr


def test_clip_driver_mode_log_on_stdout(faces_dir, model_int8, run_cli):
    res = run_cli("--source", faces_dir / "fer_test.mp4", "--model", model_int8, "--mode", "driver",
                 "--absent-after", "0.5", "--fps-every", "25")
    assert res.exit_code == 0, res.stderr
    records = read_jsonl(res.stdout)
    s = check_log(records, frames=115)
    assert s["status"] == "end_of_source" and s["faces"] >= 100
    frames = [r for r in records if r["type"] == "frame"]
    assert frames[10]["t"] == pytest.approx(10 / 24.7, abs=0.01)  # clip time: frame index / fps
    assert len({f["track"] for r in frames for f in r["faces"]}) <= 3  # one woman, tracked
    assert [r["frame"] for r in records if r["type"] == "fps"] == [24, 49, 74, 99]
    assert not [r for r in records if r["type"] == "event" and r["event"] == "absent"]


def test_clip_kiosk_aggregates_are_deterministic(faces_dir, model_int8, tmp_path, run_cli):
    def events(name):
        res = run_cli("--source", faces_dir / "fer_test.mp4", "--model", model_int8, "--mode", "kiosk",
                     "--interval", "1", "--log", tmp_path / name)
        assert res.exit_code == 0
        return [r for r in read_jsonl(tmp_path / name) if r["type"] == "event"]

    first = events("a.jsonl")
    assert [e["event"] for e in first] == ["aggregate"] * 5
    assert [e["start"] for e in first] == [0.0, 1.0, 2.0, 3.0, 4.0] and first[-1]["partial"]
    assert all(e["faces_seen"] >= 1 for e in first)
    assert sum(e["frames"] for e in first) == 115
    assert events("b.jsonl") == first


def test_max_frames_and_save_video(faces_dir, model_int8, tmp_path, run_cli):
    out = tmp_path / "out.mp4"
    log = tmp_path / "log.jsonl"
    res = run_cli("--source", faces_dir / "fer_woman2.mp4", "--model", model_int8, "--max-frames", "12",
                 "--save-video", out, "--log", log)
    assert res.exit_code == 0, res.stderr
    s = check_log(read_jsonl(log), frames=12)
    assert s["status"] == "max_frames"
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 12 and (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (596, 336)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.jsonl", "out.mp4"]  # no partial file left


def test_nothing_written_without_flags(faces_dir, model_int8, tmp_path, monkeypatch, run_cli):
    monkeypatch.chdir(tmp_path)
    res = run_cli("--source", faces_dir / "fer_justin.jpg", "--model", model_int8)
    assert res.exit_code == 0
    assert list(tmp_path.iterdir()) == []


def test_preview_without_display_is_one_clear_error(faces_dir, model_int8, monkeypatch, run_cli):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = run_cli("--source", faces_dir / "fer_justin.jpg", "--model", model_int8, "--preview")
    assert res.exit_code == 4  # a missing display, like a missing package
    assert res.stderr.startswith("error: --preview needs a display") and res.stderr.count("\n") == 1


def test_camera_grab_failing_mid_run_retries_then_exits_1(model_int8, faces_dir, tmp_path, monkeypatch, run_cli):
    """The camera hardware is the one stand-in: a capture that delivers 3 real frames, then fails."""
    frame = cv2.imread(str(faces_dir / "fer_justin.jpg"))
    sleeps = []

    class FlakyCamera:
        def __init__(self, index):
            self.reads = 0

        def isOpened(self):
            return True

        def set(self, prop, value):
            return True

        def get(self, prop):
            return 30.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def read(self):
            self.reads += 1
            return (True, frame.copy()) if self.reads <= 3 else (False, None)

        def release(self):
            pass

    monkeypatch.setattr("device.sources.cv2.VideoCapture", FlakyCamera)
    monkeypatch.setattr("device.sources.time.sleep", sleeps.append)
    log = tmp_path / "cam.jsonl"
    res = run_cli("--source", "0", "--model", model_int8, "--log", log)
    assert res.exit_code == 1
    assert res.stderr == "error: camera:0: frame grab failed 6 times in a row (camera disconnected or stalled)\n"
    assert sleeps == [0.05, 0.1, 0.2, 0.4, 0.8]  # exponential backoff
    s = read_jsonl(log)[-1]
    assert s["type"] == "summary" and s["status"] == "error" and s["frames"] == 3 and "frame grab failed" in s["error"]


# -- real processes: exit codes, one-line errors, signals ------------------------------------------

def run_py(*args, env=None, timeout=60, cwd=ROOT):
    return subprocess.run([sys.executable, str(RUN_PY), *map(str, args)], capture_output=True, text=True,
                          timeout=patient(timeout), env=env, cwd=cwd)


def one_error_line(proc, code, start):
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("error: " + start), proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.skipif(DEFAULT_MODEL.exists(), reason="the default model is installed")
def test_missing_default_model_says_pass_model(faces_dir):
    p = run_py("--source", faces_dir / "fer_justin.jpg")
    one_error_line(p, 3, "no default model at")
    assert "--model" in p.stderr


def test_missing_model_file(faces_dir, tmp_path):
    one_error_line(run_py("--source", faces_dir / "fer_justin.jpg", "--model", tmp_path / "nope.tflite"),
                   3, "model file not found")


def test_an_unknown_model_name_lists_the_shipped_ones(faces_dir):
    p = run_py("--source", faces_dir / "fer_justin.jpg", "--model", "nosuchmodel")
    one_error_line(p, 3, "--model nosuchmodel: no such file, and no shipped model of that name (shipped: ")


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="the default model is not installed")
def test_a_shipped_model_by_name_is_the_one_in_its_folder(faces_dir):
    """``--model default`` is device/models/default/ (as ``--model ferplus`` is device/models/ferplus/)."""
    named, implicit = (run_py("--source", faces_dir / "fer_justin.jpg", *args) for args in (("--model", "default"), ()))
    assert named.returncode == implicit.returncode == 0, named.stderr + implicit.stderr
    start = [json.loads(line) for line in named.stdout.splitlines() if '"start"' in line][0]
    assert start["model"] == str(DEFAULT_MODEL)
    faces = [[r["faces"] for r in map(json.loads, p.stdout.splitlines()) if r["type"] == "frame"] for p in (named, implicit)]
    assert faces[0] == faces[1] and faces[0][0], faces  # the same boxes, labels and probabilities


@pytest.mark.skipif(not (DEFAULT_MODEL.parents[1] / "ferplus" / "model_int8.tflite").exists(),
                    reason="the FER+ model is not installed")
def test_the_shipped_ferplus_model_reports_eight_labels(faces_dir):
    p = run_py("--source", faces_dir / "fer_justin.jpg", "--model", "ferplus")
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in p.stdout.splitlines()]
    assert records[0]["labels"][-1] == "Contempt" and len(records[0]["labels"]) == 8
    face = [r for r in records if r["type"] == "frame"][0]["faces"][0]
    assert list(face["probs"]) == records[0]["labels"] and abs(sum(face["probs"].values()) - 1) < 0.02


def test_model_with_wrong_input_shape(faces_dir, device_model, tmp_path):
    data = (device_model / "model_int8.tflite").read_bytes()
    for pattern in (np.array([48, 48, 1], "<i4").tobytes(),):
        assert pattern in data
        data = data.replace(pattern, np.array([64, 64, 3], "<i4").tobytes())
    (tmp_path / "model_int8.tflite").write_bytes(data)
    shutil.copy(device_model / "metadata.json", tmp_path)
    p = run_py("--source", faces_dir / "fer_justin.jpg", "--model", tmp_path / "model_int8.tflite")
    one_error_line(p, 3, str(tmp_path / "model_int8.tflite") + ": model input is (64, 64, 3)")


def test_unreadable_image(model_int8, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_text("not a jpeg")
    one_error_line(run_py("--source", bad, "--model", model_int8), 3, f"cannot read image {bad}")


def test_camera_that_cannot_open(model_int8):
    one_error_line(run_py("--source", "9", "--model", model_int8), 3, "cannot open camera 9")


@pytest.mark.parametrize("args, start", [
    (("--frobnicate",), "No such option '--frobnicate'"),
    (("--threads", "0"), "Invalid value for '--threads'"),
    (("--mode", "driver", "--alert-labels", "Bored"), "--alert-labels: alert labels ['Bored'] must be"),
])
def test_bad_flags_exit_2(faces_dir, model_int8, args, start):
    one_error_line(run_py("--source", faces_dir / "fer_justin.jpg", "--model", model_int8, *args), 2, start)


def test_missing_bench_video_exits_3(tmp_path):
    p = run_py("bench", "--float", tmp_path / "f.tflite", "--int8", tmp_path / "i.tflite",
               "--faces", tmp_path / "eval_faces.npz", "--video", tmp_path / "clip.mp4")
    one_error_line(p, 3, f"video not found: {tmp_path / 'clip.mp4'}")


def test_missing_interpreter_package_names_pip(faces_dir, model_int8):
    code = ("import sys, runpy; sys.modules['ai_edge_litert'] = None; sys.modules['tflite_runtime'] = None; "
            f"sys.argv = ['run.py', '--source', {str(faces_dir / 'fer_justin.jpg')!r}, '--model', {str(model_int8)!r}]; "
            f"runpy.run_path({str(RUN_PY)!r}, run_name='__main__')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=patient(60))
    one_error_line(p, 4, "no LiteRT interpreter found: install one with 'pip install ai-edge-litert'")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_flushes_log_and_exits_0(faces_dir, model_int8, tmp_path, sig):
    log = tmp_path / "sig.jsonl"
    proc = subprocess.Popen([sys.executable, str(RUN_PY), "--source", str(faces_dir / "fer_woman2.mp4"),
                             "--model", str(model_int8), "--detect-every", "1", "--log", str(log)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + patient(30)
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count('"type":"frame"') >= 3:
                break
            time.sleep(0.05)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=patient(30))
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    records = read_jsonl(log)
    s = records[-1]
    assert s["type"] == "summary" and s["status"] == sig.name
    assert 3 <= s["frames"] < 464
    assert json.loads(out.strip().splitlines()[-1]) == s
    assert err.startswith("ferlite: ")


def test_runs_from_a_copied_device_folder_without_tensorflow(faces_dir, model_int8, tmp_path):
    """A plain-script run from a copy of device/ alone; neither tensorflow nor keras gets imported."""
    shutil.copytree(ROOT / "device", tmp_path / "pi" / "device", ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "pi" / "device" / "run.py"
    code = ("import sys, runpy\n"
            f"sys.argv = ['run.py', '--source', {str(faces_dir / 'fer_test.mp4')!r}, '--model', {str(model_int8)!r},"
            " '--max-frames', '5', '--mode', 'driver']\n"
            "try:\n"
            f"    runpy.run_path({str(script)!r}, run_name='__main__')\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            "import device\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'train', 'convert'))\n"
            "print('DEVICE', device.__file__)\n"
            "print('HEAVY', heavy)\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=patient(60), cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert f"DEVICE {tmp_path / 'pi' / 'device' / '__init__.py'}" in lines
    assert "HEAVY []" in lines
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records[-1]["type"] == "summary" and records[-1]["frames"] == 5
