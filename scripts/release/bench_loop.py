"""Measure the device loop's end-to-end fps on a real clip (not a timed test).

    python scripts/release/bench_loop.py --model runs/X/model_int8.tflite \\
        [--video ../shared/data/faces/fer_test.mp4] [--threads 1] [--size 640x480] [--detect-every 1,3,5] \\
        [--detector haar]

Frames are decoded once and fitted into --size (a 640x480 camera by default; aspect kept,
padded), then the whole
loop runs on them as a camera would deliver them: the runtime's detector (BlazeFace unless
``--detector`` says otherwise; every N frames) with IoU tracking, crop, one batched int8 predict per frame, smoothing, kiosk aggregates and
the JSON records (built, not written). Prints fps and mean ms per stage for each --detect-every.
Decoding is left out so the number is the Pi camera's case (frames arrive already decoded).
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import click  # noqa: E402
import cv2  # noqa: E402

from device.contract import to_gray  # noqa: E402
from device.detect import DEFAULT_DETECTOR, IoUTracker, make_detector  # noqa: E402
from device.interpreter import TFLiteClassifier  # noqa: E402
from device.log import NullWriter  # noqa: E402
from device.stderr import quiet_native_stderr  # noqa: E402
from device.loop import Loop  # noqa: E402
from device.modes import KioskAggregator  # noqa: E402
from device.paths import shared_data  # noqa: E402
from device.run import detector_option  # noqa: E402
from device.sources import Frame, Source  # noqa: E402


class FramesSource(Source):
    """Pre-decoded frames replayed ``repeat`` times, timestamps at the clip's fps."""

    def __init__(self, grays, fps, repeat):
        self.grays, self.fps, self.repeat, self.i = grays, fps, repeat, 0
        self.description = "frames"

    def read(self):
        if self.i >= len(self.grays) * self.repeat:
            return None
        f = Frame(self.i, self.i / self.fps, self.grays[self.i % len(self.grays)], None)
        self.i += 1
        return f


@click.command()
@click.option("--model", type=click.Path(exists=True, dir_okay=False),
              default=str(ROOT / "device" / "models" / "default" / "model_int8.tflite"), show_default=True)
@click.option("--video", type=click.Path(exists=True, dir_okay=False),
              default=str(shared_data("faces", "fer_test.mp4")), show_default=True)
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--size", default="640x480", show_default=True, help="Resize frames to WxH (0 keeps the clip's).")
@click.option("--detect-every", default="1,3,5", show_default=True)
@detector_option(default=DEFAULT_DETECTOR, show_default=True)
@click.option("--detect-width", type=int, default=320, show_default=True, help="Haar: frames downscaled to this width.")
@click.option("--repeat", type=int, default=3, show_default=True, help="Play the clip this many times.")
def main(model, video, threads, size, detect_every, detector, detect_width, repeat):
    cap = cv2.VideoCapture(video)
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    grays = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if size != "0":  # fit inside WxH keeping the aspect ratio, pad the rest (faces keep their shape)
            w, h = (int(v) for v in size.split("x"))
            k = min(w / img.shape[1], h / img.shape[0])
            img = cv2.resize(img, (round(img.shape[1] * k), round(img.shape[0] * k)), interpolation=cv2.INTER_LINEAR)
            top, left = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
            img = cv2.copyMakeBorder(img, top, h - img.shape[0] - top, left, w - img.shape[1] - left,
                                     cv2.BORDER_CONSTANT)
        grays.append(to_gray(img).copy())
    cap.release()
    with quiet_native_stderr():
        clf = TFLiteClassifier(model, threads=threads)
    print(f"{Path(video).name}: {len(grays)} frames x{repeat} at {grays[0].shape[1]}x{grays[0].shape[0]}, "
          f"model {model}, {threads} thread(s), detector {detector}, OpenCV threads {cv2.getNumThreads()}")
    print(f"{'every':>5} {'fps':>7} {'faces/frame':>11} {'detect ms/frame':>15} {'detect ms/call':>14} "
          f"{'crop ms':>8} {'classify ms':>11} {'total ms':>9}")
    for n in (int(v) for v in detect_every.split(",")):
        det = make_detector(detector, detect_width=detect_width, threads=threads)
        loop = Loop(FramesSource(grays, fps, repeat), det, IoUTracker(), clf,
                    KioskAggregator(clf.labels), NullWriter(), detect_every=n, fps_every=0)
        s = loop.run()
        lat = s["latency_ms"]
        print(f"{n:>5} {s['fps']:7.1f} {s['faces'] / max(1, s['frames']):11.2f} {lat['detect']:15.2f} "
              f"{lat['detect_per_call']:14.2f} {lat['crop']:8.3f} {lat['classify']:11.3f} {lat['per_frame']:9.2f}")


if __name__ == "__main__":
    main()
