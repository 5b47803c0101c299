"""The picamera2 source against a stand-in camera (the only stand-in: the camera hardware).

The stand-in offers exactly the picamera2 calls the adapter uses and serves real frames from a
real clip: the main stream as RGB888 (BGR byte order) and the lores stream as YUV420 (I420).
"""
from __future__ import annotations

import json
import sys
import types

import cv2
import numpy as np
import pytest

from device.sources import Picamera2Source, SourceStopped


class FakeRequest:
    def __init__(self, cam, bgr, ts):
        self.cam, self.bgr, self.ts = cam, bgr, ts

    def make_array(self, name):
        assert self.cam.open_requests == 1, "buffers used outside captured_request()"
        self.cam.arrays.append(name)
        if name == "main":
            return cv2.resize(self.bgr, self.cam.config["main"]["size"])
        if name == "lores":
            w, h = self.cam.config["lores"]["size"]
            yuv = cv2.cvtColor(cv2.resize(self.bgr, (w, h)), cv2.COLOR_BGR2YUV_I420)  # (h * 3 / 2, w), Y 16..235
            if self.cam.config.get("colour_space") == "sYCC":  # full-range luma
                yuv[:h] = cv2.cvtColor(cv2.resize(self.bgr, (w, h)), cv2.COLOR_BGR2GRAY)
            return yuv
        raise KeyError(name)

    def get_metadata(self):
        return {"SensorTimestamp": self.ts}


class FakeCapturedRequest:
    def __init__(self, cam, req):
        self.cam, self.req = cam, req

    def __enter__(self):
        self.cam.open_requests += 1
        return self.req

    def __exit__(self, *exc):
        self.cam.open_requests -= 1
        self.cam.released += 1


def make_fake_module(frames, fail_after=None, fail_for=None):
    """``fail_after`` N frames every capture times out, for ``fail_for`` tries (None: for good)."""
    class Picamera2:
        instances = []

        def __init__(self, camera_num=0):
            self.config, self.started, self.closed = None, False, False
            self.open_requests, self.released, self.captures, self.arrays = 0, 0, 0, []
            self.failures = 0
            Picamera2.instances.append(self)

        def create_video_configuration(self, main=None, lores=None, colour_space=None):
            return {"main": dict(main), "lores": dict(lores), **({"colour_space": colour_space} if colour_space else {})}

        def configure(self, config):
            self.config = config

        def start(self):
            assert self.config is not None
            self.started = True

        def captured_request(self, flush=None):
            if fail_after is not None and self.captures >= fail_after and (fail_for is None or self.failures < fail_for):
                self.failures += 1
                raise TimeoutError("camera frontend has timed out")
            bgr = frames[self.captures % len(frames)]
            ts = 1_000_000_000 + self.captures * 33_333_333  # ns, 30 fps
            self.captures += 1
            return FakeCapturedRequest(self, FakeRequest(self, bgr, ts))

        def stop(self):
            self.started = False

        def close(self):
            self.closed = True

    return types.SimpleNamespace(Picamera2=Picamera2)


@pytest.fixture(scope="module")
def clip_frames(faces_dir):
    cap = cv2.VideoCapture(str(faces_dir / "fer_test.mp4"))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    return frames


@pytest.mark.parametrize("libcamera", [True, False], ids=["full-range-requested", "limited-range-stretched"])
def test_picamera2_source_reads_the_y_plane(monkeypatch, clip_frames, libcamera):
    fake = make_fake_module(clip_frames)
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    monkeypatch.setitem(sys.modules, "libcamera", types.SimpleNamespace(
        ColorSpace=types.SimpleNamespace(Sycc=lambda: "sYCC")) if libcamera else None)
    src = Picamera2Source(want_image=False, main_size=(1280, 720), lores_size=(640, 480))
    cam = fake.Picamera2.instances[0]
    assert cam.config == {"main": {"size": (1280, 720), "format": "RGB888"},
                          "lores": {"size": (640, 480), "format": "YUV420"},
                          **({"colour_space": "sYCC"} if libcamera else {})}
    assert cam.started
    f0, f1 = src.read(), src.read()
    assert f0.gray.shape == (480, 640) and f0.gray.dtype == np.uint8 and f0.gray.flags.c_contiguous
    assert f0.image is None and cam.arrays == ["lores", "lores"]  # no colour stream unless drawing
    # the Y plane is the gray frame, close to OpenCV's own gray conversion
    ref = cv2.cvtColor(cv2.resize(clip_frames[0], (640, 480)), cv2.COLOR_BGR2GRAY)
    assert np.abs(f0.gray.astype(int) - ref).mean() < 1.5
    assert (f0.t, round(f1.t, 4)) == (0.0, 0.0333)  # sensor timestamps
    assert cam.released == 2 and cam.open_requests == 0  # every buffer went back to the camera
    src.close()
    assert cam.closed and not cam.started


def test_run_with_picamera2_source(monkeypatch, clip_frames, model_int8, tmp_path, run_cli):
    fake = make_fake_module(clip_frames)
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    log, out = tmp_path / "pi.jsonl", tmp_path / "pi.mp4"
    res = run_cli("--source", "picamera2", "--model", model_int8, "--max-frames", "15", "--mode", "driver",
                  "--main-size", "640x360", "--camera-size", "640x360", "--save-video", out, "--log", log)
    assert res.exit_code == 0, res.stderr
    records = [json.loads(x) for x in log.read_text().splitlines()]
    frames = [r for r in records if r["type"] == "frame"]
    assert len(frames) == 15 and sum(len(r["faces"]) for r in frames) >= 12
    assert records[0]["source"] == "picamera2:0" and records[-1]["status"] == "max_frames"
    cam = fake.Picamera2.instances[0]
    assert cam.captures == 15 and cam.released == 15 and cam.closed
    assert cam.arrays.count("main") == 15  # colour only because --save-video asked for it
    assert out.is_file() and out.stat().st_size > 0


def test_picamera2_capture_failing_mid_run(monkeypatch, clip_frames, tmp_path):
    fake = make_fake_module(clip_frames, fail_after=2)
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    src = Picamera2Source(sleep=lambda s: None)
    assert src.read() is not None and src.read() is not None
    with pytest.raises(SourceStopped, match="frame capture failed 6 times in a row .TimeoutError") as e:
        src.read()
    assert e.value.exit_code == 1  # failed while running


def test_picamera2_not_installed(monkeypatch, model_int8, faces_dir, run_cli):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import picamera2 -> ImportError
    res = run_cli("--source", "picamera2", "--model", model_int8)
    assert res.exit_code == 4
    assert res.stderr.startswith("error: picamera2 is not installed: on Raspberry Pi OS run "
                                 "'sudo apt install python3-picamera2'")


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_camera_lost_mid_run_exits_1_saying_why_then_the_restart_runs(monkeypatch, clip_frames, model_int8,
                                                                      tmp_path, run_cli):
    """A camera gone for good after 8 frames: the capture is retried (backoff), then the loop ends with
    exit 1 (what the systemd unit restarts on), one error line, and a summary that says why; the
    camera is closed, so the next run (systemd's restart, the camera back) opens it and goes on."""
    lost = make_fake_module(clip_frames, fail_after=8)
    monkeypatch.setitem(sys.modules, "picamera2", lost)
    log = tmp_path / "lost.jsonl"
    res = run_cli("--source", "picamera2", "--model", model_int8, "--mode", "driver", "--log", log)
    why = "picamera2:0: frame capture failed 6 times in a row (TimeoutError: camera frontend has timed out)"
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [f"error: {why}"]
    records = read_log(log)
    assert [r["frame"] for r in records if r["type"] == "frame"] == list(range(8))
    summary = records[-1]
    assert summary["type"] == "summary" and summary["status"] == "error" and summary["error"] == why
    cam = lost.Picamera2.instances[0]
    assert (cam.captures, cam.failures, cam.closed, cam.open_requests) == (8, 6, True, 0)

    back = make_fake_module(clip_frames)
    monkeypatch.setitem(sys.modules, "picamera2", back)
    res = run_cli("--source", "picamera2", "--model", model_int8, "--mode", "driver", "--log", log,
                  "--max-frames", "5")
    assert res.exit_code == 0, res.stderr
    assert read_log(log)[-1]["status"] == "max_frames" and back.Picamera2.instances[0].captures == 5


def test_camera_hiccup_shorter_than_the_retries_is_ridden_out(monkeypatch, clip_frames, model_int8, tmp_path,
                                                             run_cli):
    """Three timed-out captures in a row (fewer than the 5 retries): the run goes on, frames keep counting."""
    fake = make_fake_module(clip_frames, fail_after=5, fail_for=3)
    monkeypatch.setitem(sys.modules, "picamera2", fake)
    log = tmp_path / "hiccup.jsonl"
    res = run_cli("--source", "picamera2", "--model", model_int8, "--log", log, "--max-frames", "12")
    assert res.exit_code == 0, res.stderr
    records = read_log(log)
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["frame"] for r in frames] == list(range(12)) and records[-1]["status"] == "max_frames"
    assert fake.Picamera2.instances[0].failures == 3
    assert [r["t"] for r in frames][4:7] == [0.133, 0.167, 0.2]  # sensor time runs on over the gap
