"""--max-fps (device/pace.py): the loop waits for each frame's slot, never bursts to catch up."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from device.pace import Pacer
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)

RUN_PY = Path(__file__).resolve().parents[2] / "device" / "run.py"


class FakeClock:
    """time that moves only when the pacer waits, or when a 'frame' takes some."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeStop(threading.Event):
    def __init__(self, clock):
        super().__init__()
        self.clock, self.waits = clock, []

    def wait(self, timeout=None):
        self.waits.append(round(timeout, 6))
        self.clock.now += timeout
        return False


def test_no_limit_never_waits():
    clock = FakeClock()
    stop = FakeStop(clock)
    p = Pacer(None, stop, clock)
    for _ in range(5):
        p.wait()
    assert stop.waits == [] and p.waited == 0


def test_waits_out_each_slot_and_does_not_burst_after_a_slow_frame():
    clock = FakeClock()
    stop = FakeStop(clock)
    p = Pacer(10, stop, clock)   # 100 ms slots
    p.wait()                     # the first frame starts at once
    clock.now += 0.03            # a 30 ms frame
    p.wait()                     # waits the other 70 ms
    clock.now += 0.25            # a 250 ms frame: late
    p.wait()                     # no wait, and the next slot counts from now
    clock.now += 0.01
    p.wait()
    assert stop.waits == [pytest.approx(0.07), pytest.approx(0.09)]
    assert p.waited == pytest.approx(0.16)


def test_stop_request_wakes_the_wait():
    stop = threading.Event()
    p = Pacer(0.1, stop)         # a 10 s slot
    p.wait()
    threading.Timer(0.2, stop.set).start()
    p.wait()
    assert p.waited < 5


def test_bad_rate():
    with pytest.raises(ValueError):
        Pacer(0)


def test_clip_plays_at_the_limit(faces_dir, model_int8, tmp_path):
    """run.py on the clip at --max-fps 20: 40 frames take about 2 s, and the summary says so."""
    p = subprocess.run([sys.executable, str(RUN_PY), "--source", str(faces_dir / "fer_test.mp4"), "--model",
                        str(model_int8), "--max-fps", "20", "--max-frames", "40", "--log", str(tmp_path / "r.jsonl")],
                       capture_output=True, text=True, timeout=patient(300), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout.strip().splitlines()[-1])
    assert s["frames"] == 40 and s["max_fps"] == 20
    assert 15 <= s["fps"] <= 20.5 and 0 < s["idle_share"] < 1


def test_bad_max_fps_flag(faces_dir, model_int8):
    p = subprocess.run([sys.executable, str(RUN_PY), "--source", str(faces_dir / "fer_justin.jpg"),
                        "--model", str(model_int8), "--max-fps", "0"], capture_output=True, text=True, timeout=patient(120))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "--max-fps" in p.stderr, p.stderr
