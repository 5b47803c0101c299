"""Frame sources under faults: a folder with unreadable images, files vanishing mid-run, and --loop."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from device.sources import ImageSource, LoopUnsupported, SourceUnavailable, VideoSource, open_source
from timing import patient  # noqa: E402  (hang guards, stretched under emulation)

ROOT = Path(__file__).resolve().parents[2]
RUN_PY = ROOT / "device" / "run.py"
PHOTOS = ("facerec_biden.jpg", "facerec_obama.jpg", "facerec_two_people.jpg", "fer_justin.jpg",
          "skimage_astronaut.png")


def run_py(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_PY), *map(str, args)], capture_output=True, text=True,
                          timeout=patient(300), env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


@pytest.fixture
def photos_with_bad_ones(faces_dir, tmp_path) -> Path:
    """The five real photos and three that cannot be read: not an image, empty, a truncated PNG header."""
    d = tmp_path / "photos"
    d.mkdir()
    for name in PHOTOS:
        shutil.copy(faces_dir / name, d / name)
    (d / "c_notes.jpg").write_text("not a jpeg")
    (d / "d_empty.png").write_bytes(b"")
    (d / "z_cut.png").write_bytes((faces_dir / "skimage_astronaut.png").read_bytes()[:40])
    return d


def test_folder_with_unreadable_images(photos_with_bad_ones, model_int8, tmp_path):
    log = tmp_path / "photos.jsonl"
    p = run_py("--source", photos_with_bad_ones, "--model", model_int8, "--log", log)
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    skipped = [r for r in records if r["type"] == "skipped"]
    assert [(r["image"], r["reason"].split(" (")[0]) for r in skipped] == [
        ("c_notes.jpg", "not an image OpenCV can decode"), ("d_empty.png", "empty file"),
        ("z_cut.png", "not an image OpenCV can decode")]
    assert all(r["path"] == str(photos_with_bad_ones / r["image"]) for r in skipped)
    frames = [r for r in records if r["type"] == "frame"]
    assert [r["image"] for r in frames] == list(PHOTOS) and [r["frame"] for r in frames] == [0, 1, 2, 3, 4]
    assert sum(len(r["faces"]) for r in frames) == 6  # the same faces as the clean folder
    s = records[-1]
    assert s["type"] == "summary" and s["frames"] == 5 and s["skipped"] == 3 and s["status"] == "end_of_source"


def test_clean_folder_counts_zero_skipped(faces_dir, model_int8, tmp_path):
    log = tmp_path / "photos.jsonl"
    assert run_py("--source", faces_dir, "--model", model_int8, "--log", log).returncode == 0
    assert json.loads(log.read_text().splitlines()[-1])["skipped"] == 0


def test_folder_where_nothing_can_be_read(model_int8, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_text("no")
    (d / "b.png").write_bytes(b"")
    p = run_py("--source", d, "--model", model_int8)
    assert p.returncode == 3 and p.stdout == ""
    assert p.stderr.splitlines() == [f"error: none of the 2 images in {d} could be read (first: a.jpg: "
                                     "not an image OpenCV can decode (corrupt, truncated or another format))"]


def test_first_images_unreadable(photos_with_bad_ones):
    """Bad files before the first good one are reported too (they are found while opening)."""
    (photos_with_bad_ones / "0_bad.jpg").write_text("x")
    src = ImageSource(photos_with_bad_ones)
    assert [r["image"] for r in src.take_skipped()] == ["0_bad.jpg", "c_notes.jpg", "d_empty.png"]
    names = []
    while (f := src.read()) is not None:
        names.append(f.name)
    assert names == list(PHOTOS)
    assert [r["image"] for r in src.take_skipped()] == ["z_cut.png"]


def test_image_deleted_after_listing(photos_with_bad_ones):
    src = ImageSource(photos_with_bad_ones)
    (photos_with_bad_ones / "fer_justin.jpg").unlink()
    names = [f.name for f in iter(src.read, None)]
    assert names == ["facerec_biden.jpg", "facerec_obama.jpg", "facerec_two_people.jpg", "skimage_astronaut.png"]
    gone = [r for r in src.take_skipped() if r["image"] == "fer_justin.jpg"]
    assert gone and gone[0]["reason"] == "cannot open it: No such file or directory"


def test_images_loop(photos_with_bad_ones):
    src = ImageSource(photos_with_bad_ones, loop=True)
    frames = [src.read() for _ in range(12)]
    assert [f.name for f in frames] == list(PHOTOS) * 2 + list(PHOTOS[:2])
    assert [f.index for f in frames] == list(range(12))
    assert len(src.take_skipped()) == 3  # said once, then left out of every later pass


def test_clip_loop(faces_dir):
    clip = faces_dir / "fer_test.mp4"
    once = VideoSource(clip)
    first = [f.gray for f in iter(once.read, None)]
    once.close()
    assert len(first) == 115
    with VideoSource(clip, loop=True) as src:
        frames = [src.read() for _ in range(300)]
        assert src.plays == 3
    assert [f.index for f in frames] == list(range(300))
    assert np.allclose(np.diff([f.t for f in frames]), 1 / src.fps)  # clip time runs on
    for k in (0, 57, 114):  # each play decodes the same frames
        assert np.array_equal(frames[k].gray, first[k]) and np.array_equal(frames[115 + k].gray, first[k])


def test_loop_needs_a_file_source():
    with pytest.raises(LoopUnsupported, match="0 is a camera"):
        open_source("0", loop=True)
    with pytest.raises(SourceUnavailable):
        open_source("/nonexistent/clip.mp4", loop=True)


def test_cli_loop(faces_dir, model_int8, tmp_path):
    log = tmp_path / "loop.jsonl"
    p = run_py("--source", faces_dir / "fer_test.mp4", "--loop", "--max-frames", "250", "--model", model_int8,
               "--log", log, "--fps-every", "0")
    assert p.returncode == 0, p.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["loop"] is True
    assert [r["frame"] for r in records if r["type"] == "frame"] == list(range(250))
    assert records[-1]["status"] == "max_frames" and records[-1]["frames"] == 250


def test_cli_loop_with_a_camera_is_a_usage_error(model_int8):
    p = run_py("--source", "0", "--loop", "--model", model_int8)
    assert p.returncode == 2 and p.stderr.splitlines() == ["error: --loop plays a video or images again; 0 is a camera"]
